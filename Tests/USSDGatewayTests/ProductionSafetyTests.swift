import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Postgres
@testable import MPesaGateway
@testable import SMSChannel
import Settings
import Testing
import TestSupport
@testable import USSDChannel
@testable import USSDGateway
import Wallet

/// No open doors in production: a configured provider's callback routes without a token refuse
/// start-up, each provider has a token of its own, and readiness and metrics can leave the public port.
@Suite struct ProductionSafetyTests {
    static let pepper = "a-production-pepper-of-32-bytes!"
    /// `PIN_KEY` as a secret store would hold it: version 1, the hex of a 32-byte key.
    static let pinKey = "1:612d70726f64756374696f6e2d7065707065722d6f662d33322d627974657321"
    static let atToken = "at-token-0123456789abcdefghij"
    static let mpesaToken = "mpesa-token-0123456789abcdefg"
    static let mpesa = [
        "PUBLIC_BASE_URL": "https://gw.example.com", "MPESA_CONSUMER_KEY": "k", "MPESA_CONSUMER_SECRET": "s", "MPESA_SHORTCODE": "174379",
        "MPESA_PASSKEY": "p", "MPESA_B2C_SHORTCODE": "600992", "MPESA_INITIATOR_NAME": "testapi", "MPESA_SECURITY_CREDENTIAL": "c",
    ]

    /// The key store is named outside development, and is never the ledger's own database however
    /// the two connection strings spell it; a command does not guess one either.
    @Test func theKeyStoreIsNamedAndApartFromTheLedgersDatabase() throws {
        let base = ["PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "AT_CALLBACK_TOKEN": Self.atToken, "DATABASE_URL": "postgres://ussd_app@db.internal:5432/ussd"]
        let missing = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: base) }
        #expect(missing?.variable == "PERSONAL_DATA_KEYS_URL")
        for same in ["postgres://keys_owner@db.internal/ussd", "host=db.internal port=5432 dbname=ussd user=keys_owner", "postgresql://db.internal:5432/ussd?sslmode=require"] {
            let refused = #expect(throws: ConfigError.self, "\(same)") { try GatewayConfig.load(environment: base.merging(["PERSONAL_DATA_KEYS_URL": same]) { $1 }) }
            #expect(refused?.variable == "PERSONAL_DATA_KEYS_URL", "\(same)")
        }
        for apart in ["postgres://keys@db.internal/ussd_keys", "host=keys.internal dbname=ussd user=keys"] {
            #expect(throws: Never.self, "\(apart)") { try GatewayConfig.load(environment: base.merging(["PERSONAL_DATA_KEYS_URL": apart]) { $1 }) }
        }
        var command = try GatewayConfig.load(environment: base.merging(["PERSONAL_DATA_KEYS_URL": "postgres://keys@db.internal/ussd_keys"]) { $1 })
        command.personalDataStore = nil
        #expect(throws: PINKeyError.self, "no key store guessed next to the ledger") { try command.openPersonalData() }
    }

    /// Another aggregator's routes are served only when named, and in production only behind a
    /// token of their own (or the shared one); Flares' operator credentials come as a pair.
    @Test func dialectRoutesNeedATokenInProductionAndFlaresCredentialsComeTogether() throws {
        let base = ["PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "AT_CALLBACK_TOKEN": Self.atToken]
        #expect(try GatewayConfig.load(environment: base).ussd.dialects.isEmpty, "none by default")
        let open = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: base.merging(["USSD_DIALECTS": "hubtel, flares"]) { $1 }) }
        #expect(open?.variable == "DIALECT_CALLBACK_TOKEN")
        let guarded = try GatewayConfig.load(environment: base.merging(["USSD_DIALECTS": "Hubtel,flares", "DIALECT_CALLBACK_TOKEN": Self.mpesaToken]) { $1 })
        #expect(guarded.ussd.dialects == ["hubtel", "flares"] && guarded.dialectToken == Self.mpesaToken && guarded.africasTalkingToken == Self.atToken)
        let unknown = #expect(throws: ConfigError.self) {
            try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "USSD_DIALECTS": "hubtel,vodafone"])
        }
        #expect(unknown?.variable == "USSD_DIALECTS")
        let half = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "FLARES_USERID": "airtel"]) }
        #expect(half?.variable == "FLARES_PASSWORD")
        let window = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "USSD_REPEAT_WINDOW_MS": "60000"]) }
        #expect(window?.variable == "USSD_REPEAT_WINDOW_MS")
        let audited = try GatewayConfig.load(
            environment: ["ENVIRONMENT": "development", "USSD_DIALECTS": "nalo", "FLARES_USERID": "airtel", "FLARES_PASSWORD": "flares-secret-1"]
        ).auditedSettings(menus: try loadCheckedMenus(at: "menus.json").document)
        #expect(audited["ussd.dialects"] == "nalo" && audited["flares.credentials"] == "set" && !audited.values.contains("flares-secret-1"))
        // Every setting that decides whose money moves where is in the audit trail when it changes.
        let money = try GatewayConfig.load(environment: [
            "ENVIRONMENT": "development", "SANDBOX": "off", "MPESA_C2B_SHORTCODE": "600111", "MPESA_C2B_MAX_AMOUNT": "70000", "MPESA_TILL_NUMBER": "5012345",
            "LEDGER_DUAL_APPROVAL_ABOVE": "20000", "LEDGER_ADJUST_MAX": "90000", "PIN_RESET_COOLDOWN_HOURS": "12", "MSISDN_COUNTRIES": "KE,GH",
            "MPESA_ALLOWED_CIDRS": "196.201.214.0/24",
        ]).auditedSettings(menus: try loadCheckedMenus(at: "menus.json").document)
        #expect(money["mpesa.c2b_shortcode"] == "600111" && money["mpesa.c2b_max_amount"] == "70000" && money["mpesa.till_number"] == "5012345")
        #expect(money["ledger.dual_approval_above"] == "2000000" && money["ledger.adjust_max"] == "9000000", "in cents, as the ledger keeps them")
        #expect(money["pin.reset_cooldown_hours"] == "12" && money["msisdn.countries"] == "KE,GH")
        #expect(money["mpesa.allowed_cidrs"] == "196.201.214.0/24")
        // The staff desk's switch and sign-in rules too, never its key.
        let desk = try GatewayConfig.load(environment: [
            "ENVIRONMENT": "development", "DESK": "on", "ADMIN_PORT": "9099", "DESK_DATABASE_URL": "postgres://desk@127.0.0.1/ussd", "DESK_IDLE_MINUTES": "10", "DESK_LOCKOUT_ATTEMPTS": "4", "DESK_SESSION_KEY": String(repeating: "cd", count: 32),
        ]).auditedSettings(menus: try loadCheckedMenus(at: "menus.json").document)
        #expect(desk["desk"] == "on" && desk["desk.idle_minutes"] == "10" && desk["desk.lockout"] == "4 tries, 15 minutes" && desk["desk.tls"] == "not set")
        #expect(!desk.values.contains { $0.contains("cdcd") })
        #expect(money["desk"] == "off")
    }

    @Test func productionRefusesUnguardedCallbackRoutesNamingTheVariable() throws {
        let noToken = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: ["PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore]) }
        #expect(noToken?.variable == "AT_CALLBACK_TOKEN")
        let mpesaOpen = #expect(throws: ConfigError.self) {
            try GatewayConfig.load(environment: Self.mpesa.merging(["PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "AT_CALLBACK_TOKEN": Self.atToken]) { $1 })
        }
        #expect(mpesaOpen?.variable == "MPESA_CALLBACK_TOKEN")
        // A paybill shortcode alone serves /paybill/confirm: it needs the token as much.
        let paybillOpen = #expect(throws: ConfigError.self) {
            try GatewayConfig.load(environment: ["PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "AT_CALLBACK_TOKEN": Self.atToken, "MPESA_C2B_SHORTCODE": "600000"])
        }
        #expect(paybillOpen?.variable == "MPESA_CALLBACK_TOKEN" && paybillOpen?.description.contains("paybill") == true)
        let short = #expect(throws: ConfigError.self) {
            try GatewayConfig.load(environment: ["PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "CALLBACK_TOKEN": "only-sixteen-chr"])
        }
        #expect(short?.variable == "CALLBACK_TOKEN" && short?.description.contains("only-sixteen") == false, "the value is never echoed")

        // Per provider: a leak at one opens nothing at the other.
        let both = try GatewayConfig.load(
            environment: Self.mpesa.merging(["PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "AT_CALLBACK_TOKEN": Self.atToken, "MPESA_CALLBACK_TOKEN": Self.mpesaToken]) { $1 }
        )
        #expect(both.africasTalkingToken == Self.atToken && both.mpesaToken == Self.mpesaToken)
        #expect(both.mpesa.daraja(publicBaseURL: both.publicBaseURL, callbackToken: both.mpesaToken)?.stkCallbackURL.hasSuffix(Self.mpesaToken) == true)
        // One shared token covers both; development needs none.
        let shared = try GatewayConfig.load(environment: Self.mpesa.merging(["PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "CALLBACK_TOKEN": Self.atToken]) { $1 })
        #expect(shared.africasTalkingToken == Self.atToken && shared.mpesaToken == Self.atToken)
        #expect(try GatewayConfig.load(environment: Self.mpesa.merging(["ENVIRONMENT": "development"]) { $1 }).productionProblem == nil)

        // MoMo in production: its own callback token, a market's https host and target, never MTN's sandbox.
        let momo = [
            "PIN_KEY": Self.pinKey, "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore,
            "AT_CALLBACK_TOKEN": Self.atToken, "MOBILE_MONEY": "mtn-momo", "CURRENCY": "GHS", "PUBLIC_BASE_URL": "https://gw.example.com",
            "MOMO_COLLECTION_SUBSCRIPTION_KEY": "k1", "MOMO_COLLECTION_API_USER": "u1", "MOMO_COLLECTION_API_KEY": "s1",
            "MOMO_DISBURSEMENT_SUBSCRIPTION_KEY": "k2", "MOMO_DISBURSEMENT_API_USER": "u2", "MOMO_DISBURSEMENT_API_KEY": "s2",
            "MOMO_BASE_URL": "https://proxy.momoapi.mtn.com", "MOMO_TARGET_ENVIRONMENT": "mtnghana",
        ]
        let momoOpen = #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: momo) }
        #expect(momoOpen?.variable == "MOMO_CALLBACK_TOKEN")
        let guarded = momo.merging(["MOMO_CALLBACK_TOKEN": Self.mpesaToken]) { $1 }
        #expect(try GatewayConfig.load(environment: guarded).momoToken == Self.mpesaToken)
        for (name, value, variable) in [
            ("MOMO_TARGET_ENVIRONMENT", "sandbox", "MOMO_TARGET_ENVIRONMENT"), ("MOMO_BASE_URL", "https://sandbox.momodeveloper.mtn.com", "MOMO_BASE_URL"),
            ("MOMO_BASE_URL", "http://proxy.momoapi.mtn.com", "MOMO_BASE_URL"), ("MOMO_CURRENCY", "EUR", "MOMO_CURRENCY"),
        ] {
            let refused = #expect(throws: ConfigError.self, "\(name)=\(value)") { try GatewayConfig.load(environment: guarded.merging([name: value]) { $1 }) }
            #expect(refused?.variable == variable, "\(name)=\(value)")
        }

        let clash = #expect(throws: ConfigError.self) {
            try GatewayConfig.load(environment: ["ENVIRONMENT": "development", "HTTP_PORT": "8080", "ADMIN_PORT": "8080"])
        }
        #expect(clash?.variable == "ADMIN_PORT")
    }

    /// The schema's owner need not be a superuser (managed Postgres gives none): a login with
    /// CREATEROLE that owns the database migrates it, roles included; production then refuses it
    /// as the serving login, and development only warns; a login in ussd_app passes.
    @Test func aNonSuperuserOwnerMigratesAndProductionRefusesToServeAsIt() async throws {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let admin = PostgresClient(configuration: try TestServers.postgresConfiguration())
        try await admin.query("CREATE ROLE \(unescaped: "owner_" + suffix) LOGIN CREATEROLE")
        await admin.shutdown()
        let database = try await TestServers.freshDatabase("owned", owner: "owner_" + suffix)
        var owned = database
        owned.connectionString = URLComponents(string: database.connectionString).map { var c = $0; c.user = "owner_" + suffix; return c.string! }!
        let owner = PostgresClient(configuration: owned)
        try await owner.migrate(try GatewayMigrations.all())
        let pins = PINVault(key: Array(Self.pepper.utf8))
        var config = GatewayConfig()
        config.environment = .production
        let capture = LogCapture()
        await #expect(throws: UnsafeDatabaseLogin.self) {
            try await checkDatabaseLogin(config: config, wallet: Wallet(postgres: owner, pins: pins), logger: capture.logger)
        }
        config.environment = .development
        try await checkDatabaseLogin(config: config, wallet: Wallet(postgres: owner, pins: pins), logger: capture.logger)
        #expect(capture.all.contains { $0.message.contains("the schema's owner") })
        let app = PostgresClient(configuration: try await TestServers.login("app", in: "ussd_app", to: owned))
        config.environment = .production
        try await checkDatabaseLogin(config: config, wallet: Wallet(postgres: app, pins: pins), logger: capture.logger)
        await app.shutdown()
        await owner.shutdown()
    }

    @Test func serveExitsWithCode2AndOneLineWithoutTokensAndStartsWithThem() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["ENVIRONMENT"] = "production"
        environment["PIN_KEY"] = Self.pinKey
        environment.merge(["PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore]) { $1 }
        environment["MENUS_PATH"] = RepoFiles.menus
        environment["LOG_LEVEL"] = "warning"
        for name in ["CALLBACK_TOKEN", "AT_CALLBACK_TOKEN", "MPESA_CALLBACK_TOKEN"] { environment[name] = nil }
        let refused = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment.merging(Self.mpesa) { $1 }.merging(["AT_CALLBACK_TOKEN": Self.atToken]) { $1 })
        #expect(await refused.wait() == 2)
        let lines = refused.errorOutput.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.contains("MPESA_CALLBACK_TOKEN") == true, "\(refused.errorOutput)")
        // Neither the sandbox nor the browser phone can be switched on in production.
        for (variable, value) in [("SANDBOX", "on"), ("SIMULATOR", "on")] {
            let tokens = ["AT_CALLBACK_TOKEN": Self.atToken, "MPESA_CALLBACK_TOKEN": Self.mpesaToken, variable: value]
            let switchedOn = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment.merging(tokens) { $1 })
            #expect(await switchedOn.wait() == 2)
            let said = switchedOn.errorOutput.split(separator: "\n")
            #expect(said.count == 1 && said.first?.contains("\(variable): cannot be on in production") == true, "\(switchedOn.errorOutput)")
        }

        let port = try await PrivateServer.freePort()
        var admin = port
        while admin == port { admin = try await PrivateServer.freePort() }
        // Production serves only as a login in ussd_app: the schema's owner (here a superuser too)
        // is refused with one line, before anything listens.
        let database = try await TestServers.freshDatabase("prod")
        let owner = PostgresClient(configuration: database)
        try await owner.migrate(try GatewayMigrations.all())
        await owner.shutdown()
        let tokens = ["AT_CALLBACK_TOKEN": Self.atToken, "MPESA_CALLBACK_TOKEN": Self.mpesaToken, "HTTP_PORT": String(port), "ADMIN_PORT": String(admin)]
        let asOwner = try ChildProcess.start(
            GatewayBinary.path, ["serve"],
            environment: environment.merging(Self.mpesa) { $1 }.merging(tokens) { $1 }.merging(["DATABASE_URL": database.connectionString]) { $1 })
        #expect(await asOwner.wait() == 2)
        let ownerSaid = asOwner.errorOutput.split(separator: "\n")
        #expect(ownerSaid.count == 1 && ownerSaid.first?.contains("a superuser: serve with a login in ussd_app") == true, "\(asOwner.errorOutput)")
        let app = try await TestServers.login("app", in: "ussd_app", to: database)
        let guarded = environment.merging(Self.mpesa) { $1 }.merging(tokens) { $1 }.merging(["DATABASE_URL": app.connectionString]) { $1 }
        let server = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: guarded)
        let curl = CurlClient()
        let ready = try await waitUntilReady(curl, "http://127.0.0.1:\(admin)/readyz")
        #expect(ready?.status == 200, "serve never became ready: \(server.errorOutput)")
        #expect(try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(admin)/metrics")).status == 200)
        #expect(try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(port)/healthz")).status == 200)
        #expect(try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(port)/metrics")).status == 404, "metrics left the public port")
        #expect(try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(port)/readyz")).status == 404)
        for path in ["/simulator", "/simulator/settings.json", "/sandbox/inbox?phone=%2B254712000001", "/sandbox/daraja/oauth/v1/generate?grant_type=client_credentials"] {
            #expect(try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(port)" + path)).status == 404, "\(path) is not served in production")
        }
        let mode = try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(admin)/readyz")).text
        #expect(mode.contains("mpesa: configured") && !mode.contains("sandbox"), "\(mode)")
        server.signal(SIGTERM)
        #expect(await server.wait() == 0, "\(server.errorOutput)")
        await curl.shutdown()
    }

    @Test func eachProviderAcceptsOnlyItsOwnToken() async throws {
        let harness = try await USSDHarness.make { config in
            config.africasTalkingCallbackToken = Self.atToken
            config.mpesaCallbackToken = Self.mpesaToken
        }
        try await harness.run { client in
            let form = Phone.form(["sessionId": "ATUid_tok", "phoneNumber": "+254712345678", "serviceCode": "*384*96#", "text": ""])
            func post(_ path: String, _ body: String, json: Bool = false) async throws -> HTTPResponse.Status {
                try await client.execute(
                    uri: path, method: .post, headers: [.contentType: json ? "application/json" : "application/x-www-form-urlencoded"], body: ByteBuffer(string: body)
                ).status
            }
            let own = try await post("/ussd/africastalking/" + Self.atToken, form)
            let crossed = try await post("/ussd/africastalking/" + Self.mpesaToken, form)
            let other = try await post("/mpesa/stk/callback/" + Self.atToken, "{}", json: true)
            #expect(own == .ok)
            #expect(crossed == .notFound, "M-Pesa's token opens nothing at Africa's Talking")
            #expect(other == .notFound, "Africa's Talking's token opens nothing at M-Pesa")
        }
        await harness.finish()
    }

    /// Metric labels come only from known values: an invented HTTP method is refused before the
    /// metrics see it, and an undocumented delivery status is counted as `other`.
    @Test func noCallerCanAddMetricSeries() async throws {
        let harness = try await USSDHarness.make()
        // An invented method reaches the router only in-process: on the wire, NIO's parser refuses it (400).
        try await harness.run(.router) { client in
            let invented = try await client.execute(uri: "/healthz", method: HTTPRequest.Method("EXFILTRATE")!)
            #expect(invented.status == .methodNotAllowed)
        }
        try await harness.run { client in
            let report = Phone.form(["id": "ATXid_unknown", "status": "Teleported"])
            let reported = try await client.execute(
                uri: "/sms/africastalking/delivery", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: report)
            )
            #expect(reported.status == .ok)
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(!metrics.contains("EXFILTRATE") && !metrics.contains("Teleported"))
            #expect(metrics.contains(#"sms_delivery_reports_total{status="other"}"#))
        }
        await harness.finish()
    }

    /// Two customers typing the same PIN on the same screen leave different seals in Redis: every
    /// seal is bound to its session (and a confirmed PIN's also to its variable).
    @Test func equalPINsNeverGiveEqualSealsInRedis() async throws {
        let harness = try await USSDHarness.make()
        let (first, second) = (freshLocal(), freshLocal())
        _ = try await harness.customer(first, name: "First", pin: TypedPINs.achieng)
        _ = try await harness.customer(second, name: "Second", pin: TypedPINs.achieng)
        try await harness.run(.live) { client in
            var seals: [String] = []
            for local in [first, second] {
                var phone = Phone(client, local, graph: harness.graph)
                _ = try await phone.dial()
                for input in ["98", "7", "2"] { _ = try await phone.type(input) }
                #expect(try await phone.type(TypedPINs.achieng) == "CON Choose a new 4-digit PIN")
                let store = USSDSessionStore(redis: harness.redis, ttlSeconds: 120, resumeWindowSeconds: 300)
                let record = try #require(try await store.load(phone.session)?.record)
                seals.append(record.textSeal)
                _ = try await phone.type(TypedPINs.newPIN)
                let confirming = try #require(try await store.load(phone.session)?.record)
                seals += confirming.state?.sealed.values.map { $0 } ?? []
                #expect(confirming.state?.variables.values.contains { $0.contains(TypedPINs.newPIN) || $0.contains(TypedPINs.achieng) } == false)
            }
            #expect(seals.count == 4 && Set(seals).count == 4, "\(seals.count) seals, \(Set(seals).count) distinct")
        }
        await harness.finish()
    }

    /// Money-moving keys carry their channel (`ussd:<session>:<hop>`, `sms:<id>`); a session id or an
    /// SMS id cannot hold a `:`, so no caller can pick a key another channel or the wallet's own
    /// transfers (`deposit:<id>`, `withdrawal:<key>`) use.
    @Test func idempotencyKeysAreNamespacedPerChannel() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, _) = try await harness.senderAndRecipient()
        try await harness.run(.live) { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            for input in ["", "4", otieno, "250", "1", TypedPINs.achieng] { _ = input.isEmpty ? try await phone.dial() : try await phone.type(input) }
            try await sms(client, from: sender, "SEND \(otieno) 100 \(TypedPINs.achieng)", id: "ATXid_namespaced")
            let forged = try await client.execute(
                uri: "/ussd/africastalking", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: Phone.form(["sessionId": "deposit:1", "phoneNumber": "+254" + achieng.dropFirst(), "serviceCode": "*384*96#", "text": ""]))
            )
            #expect(forged.status == .badRequest)
        }
        let ids = try await harness.postgres.query("SELECT id FROM transfers WHERE kind = 'p2p' ORDER BY created_at").map { try $0.decode(String.self, column: 0) }
        #expect(ids.count == 2 && ids[0].hasPrefix("ussd:ATUid_") && ids[1] == "sms:ATXid_namespaced", "\(ids)")
        await harness.finish()
    }

    @Test func aHopOfAKnownSessionFromAnotherNumberIsRefusedAndChangesNothing() async throws {
        let harness = try await USSDHarness.make()
        let (local, forger) = (freshLocal(), freshLocal())
        try await harness.customer(local, name: "Achieng", pin: TypedPINs.achieng, shillings: 100)
        try await harness.run(.live) { client in
            var phone = Phone(client, local, graph: harness.graph)
            let menu = try await phone.dial()
            _ = try await phone.type("1")
            let balance = try await phone.type(TypedPINs.achieng)
            #expect(balance.contains("KES 100"))
            // The same session id, from another number: neither the stored reply nor a new hop.
            for text in [phone.text, phone.text + "*0", ""] {
                let forged = try await phone.raw(Phone.form([
                    "sessionId": phone.session, "phoneNumber": "+254" + forger.dropFirst(), "serviceCode": "*384*96#", "text": text,
                ]))
                #expect(forged.status == .badRequest, "\(text.count)")
                #expect(!String(buffer: forged.body).contains("KES"))
            }
            #expect(try await phone.repeatLast() == balance, "the owner's session is untouched")
            _ = menu
        }
        await harness.finish()
    }
}
