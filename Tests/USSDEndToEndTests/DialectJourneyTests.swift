import AfricasTalking
import Basics
import Curl
import Foundation
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Menus
import NIOCore
import Postgres
import TestSupport
import Testing
import USSDChannel
import USSDGateway
import Wallet

@Suite struct DialectJourneyTests {
    /// Registration, an M-Pesa deposit and a send through each latest-input dialect's route, with
    /// repeated hops answered byte for byte and money moved once. The numbers are Kenyan (the
    /// test process serves Kenya): which country is the deployment's setting, tested on its own.
    @Test(arguments: DialectPhone.Dialect.allCases)
    func registrationDepositAndSendThroughTheRoute(_ dialect: DialectPhone.Dialect) async throws {
        let rig = try await dialectRig()
        let (local, otieno) = (freshLocal(), freshLocal())
        let recipient = try await rig.harness.customer(otieno, name: "Otieno", pin: TypedPINs.otieno)
        try await rig.harness.run(.live) { client in
            var phone = DialectPhone(client, dialect, local, graph: rig.harness.graph, clock: rig.harness.clock)
            #expect(try await phone.dial() == "CON Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name")
            #expect(try await phone.repeatLast() == "CON Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name", "a repeated dial")
            #expect(try await phone.type("Akosua Mensah").hasPrefix("CON Choose your language"))
            #expect(try await phone.type("1") == "CON Choose a 4-digit PIN")
            #expect(try await phone.type(TypedPINs.achieng) == "CON Enter the PIN again to confirm. You accept our privacy notice: dial *384*96*7#")
            #expect(try await phone.repeatLast() == "CON Enter the PIN again to confirm. You accept our privacy notice: dial *384*96*7#", "a repeat is not the confirmation")
            // The same four digits again, typed on the next screen: the confirmation.
            #expect(try await phone.type(TypedPINs.achieng) == "END Welcome Akosua Mensah! Your wallet is ready. Dial again to use it.")
            let msisdn = try #require(MSISDN(parsing: local, plan: .kenya))

            _ = try await phone.dial()
            #expect(try await phone.type("2").contains("Enter amount"))
            _ = try await phone.type("1000")
            _ = try await phone.type("1")
            let pushed = try await phone.type(TypedPINs.achieng)
            #expect(pushed.hasPrefix("END Check your phone"), "\(pushed)")
            #expect(try await phone.repeatLast() == pushed, "a repeated PIN hop pushes nothing new")
            let checkout = try await rig.checkout(msisdn)
            try await callback(
                client, "/mpesa/stk/callback",
                MPesaRig.stkSuccess(checkout, shillings: 1000, receipt: "NLJ7RT61S\(dialect.rawValue.count)", phone: msisdn.value))
            #expect(try await rig.balance(msisdn) == 100_000)

            _ = try await phone.dial()
            #expect(try await phone.type("4") == "CON Send money. Enter the phone number")
            #expect(try await phone.type(otieno) == "CON Enter amount to send (KES)")
            #expect(try await phone.type("300").hasPrefix("CON Send KES 300 to \(masked(otieno))?"))
            #expect(try await phone.type("1") == "CON Enter your 4-digit PIN")
            let done = try await phone.type(TypedPINs.achieng)
            #expect(done.hasPrefix("END Sent KES 300 to \(masked(otieno)). Fee KES 7. New balance KES 693. Ref "), "\(done)")
            let copy = phone
            async let again = copy.repeatLast()
            async let andAgain = copy.repeatLast()
            #expect(try await [again, andAgain] == [done, done], "byte for byte, even side by side")
            #expect(try await rig.balance(msisdn) == 69_300)
        }
        #expect(rig.fake.requests("/mpesa/stkpush/v1/processrequest").count == 1, "one push")
        #expect(try await rig.harness.wallet.balances(recipient).main == .shillings(300))
        #expect(try await rig.harness.movements(kind: "p2p") == 1)
        try await rig.harness.audit()
        await rig.finish()
    }

    /// Nalo's hops alternating between two gateways on one Redis: a repeat is told from the next
    /// answer by what Redis keeps (the answer's time), not by one process's memory.
    @Test func latestInputHopsAlternatingBetweenReplicas() async throws {
        let harness = try await USSDHarness.make { $0.ussd.dialects = USSDSettings.knownDialects }
        let other = try buildApplication(config: harness.config, logger: harness.capture.logger, menus: harness.graph)
        let local = freshLocal()
        try await harness.run { first async throws in
            try await other.test(.live) { second async throws in
                var phone = DialectPhone(first, .nalo, local, graph: harness.graph, clock: harness.clock)
                #expect(try await phone.dial() == "CON Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name")
                #expect(try await phone.on(second).repeatLast() == "CON Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name", "the dial again, on the other")
                phone = phone.on(second)
                #expect(try await phone.type("Esi Mensah").hasPrefix("CON Choose your language"))
                phone = phone.on(first)
                #expect(try await phone.type("1") == "CON Choose a 4-digit PIN")
                phone = phone.on(second)
                #expect(try await phone.type(TypedPINs.achieng) == "CON Enter the PIN again to confirm. You accept our privacy notice: dial *384*96*7#")
                #expect(try await phone.on(first).repeatLast() == "CON Enter the PIN again to confirm. You accept our privacy notice: dial *384*96*7#", "a repeat, on the other")
                phone = phone.on(first)
                #expect(try await phone.type(TypedPINs.achieng) == "END Welcome Esi Mensah! Your wallet is ready. Dial again to use it.")
            }
        }
        #expect(try await harness.wallet.profile(MSISDN(parsing: local, plan: .kenya)!).name == "Esi Mensah")
        await harness.finish()
    }

    /// The extra digits of the dial string open a shortcut: Hubtel's, Nalo's and Arkesel's dial in
    /// full, Flares' without `*` and `#` (one extra segment only). Bad digits get the screen's error.
    @Test(arguments: DialectPhone.Dialect.allCases)
    func dialInShortcutsFromTheDialString(_ dialect: DialectPhone.Dialect) async throws {
        let rig = try await dialectRig()
        let (achieng, sender, otieno, _) = try await rig.harness.senderAndRecipient()
        try await rig.harness.run(.live) { client async throws in
            var phone = DialectPhone(client, dialect, achieng, graph: rig.harness.graph, clock: rig.harness.clock)
            phone.dialString = "*384*96*1#"
            #expect(try await phone.dial() == "CON Enter your 4-digit PIN", "Check Balance's PIN screen")
            #expect(try await phone.type(TypedPINs.achieng) == "END Balance: KES 1,000\nSavings: KES 0")
            if dialect != .flares {
                phone.dialString = "*384*96*4*\(otieno)*300#"
                #expect(try await phone.dial().hasPrefix("CON Send KES 300 to \(masked(otieno))?"))
                #expect(try await phone.type("1") == "CON Enter your 4-digit PIN")
                #expect(try await phone.type(TypedPINs.achieng).hasPrefix("END Sent KES 300"))
                phone.dialString = "*384*96*4*07*300#"
                #expect(try await phone.dial() == "CON Enter a Safaricom or Airtel number, e.g. 0712345678.\nSend money. Enter the phone number")
            }
        }
        if dialect != .flares { #expect(try await rig.harness.wallet.balances(sender).main == .shillings(693)) }
        await rig.finish()
    }

    /// Hubtel numbers its hops: a repeat is the same `Sequence` (replayed even long after), a hop
    /// that skips one is refused politely, and `Release` / `Timeout` close the session.
    @Test func hubtelSequencesIdentifyHopsAndReleaseClosesTheSession() async throws {
        let rig = try await dialectRig()
        let (achieng, _, _, _) = try await rig.harness.senderAndRecipient()
        try await rig.harness.run(.live) { client in
            var phone = DialectPhone(client, .hubtel, achieng, graph: rig.harness.graph, clock: rig.harness.clock)
            _ = try await phone.dial()
            #expect(try await phone.type("1") == "CON Enter your 4-digit PIN")
            rig.harness.clock.advance(by: .seconds(60))
            #expect(try await phone.repeatLast() == "CON Enter your 4-digit PIN", "the same Sequence is the same hop, however late")
            #expect(try await phone.post(first: false, input: "1", sequence: 9) == "END Sorry, something went wrong. Please try again.")

            // Another customer (this one left a session unfinished: dialling again offers to resume it).
            let other = freshLocal()
            _ = try await rig.harness.customer(other, name: "Kofi", pin: TypedPINs.otieno)
            phone = DialectPhone(client, .hubtel, other, graph: rig.harness.graph, clock: rig.harness.clock)
            #expect(try await phone.dial().hasPrefix("CON Welcome Kofi"))
            let released = try await phone.close(timeout: false)
            #expect(released.status == .ok)
            let json = String(buffer: released.body)
            #expect(json.contains(#""Type":"Release""#) && json.contains(#""Message":"""#), "\(json)")
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains(#"ussd_sessions_ended_total{status="incomplete",last_screen="main"}"#), "the session closed on the main menu")

            let third = freshLocal()
            _ = try await rig.harness.customer(third, name: "Adwoa", pin: TypedPINs.otieno)
            var airtel = DialectPhone(client, .flares, third, graph: rig.harness.graph, clock: rig.harness.clock)
            _ = try await airtel.dial()
            let cleaned = try await airtel.close(timeout: true)
            #expect(cleaned.status == .ok && cleaned.headers[HTTPField.Name("Freeflow")!] == "FB")
            let after = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(after.contains(#"ussd_sessions_ended_total{status="failed",last_screen="main"}"#), "a timed-out Flares session")
        }
        await rig.finish()
    }

    /// Malformed hops are refused with 400 and a logged reason, whatever the dialect; a number of
    /// a country not served too; Flares' operator credentials are checked when configured.
    @Test func malformedHopsAreRefusedAndFlaresCredentialsChecked() async throws {
        let rig = try await MPesaRig.make {
            $0.ussd.dialects = USSDSettings.knownDialects
            ($0.ussd.flaresUser, $0.ussd.flaresPassword) = ("airtel-ke", "s3cret-flares")
        }
        try await rig.harness.run(.live) { client in
            for (path, body) in [
                ("/ussd/hubtel", #"{"Type":"Initiation","Mobile":"254712345678","SessionId":"a b","Message":"*384*96#"}"#),
                ("/ussd/nalo", #"{"USERID":"x","MSISDN":"254712345678","USERDATA":"1","SESSIONID":"s1"}"#),
                ("/ussd/arkesel", #"{"sessionID":"s1","userID":"x","newSession":true,"msisdn":"233241234567","userData":"*384*96#"}"#),
                ("/ussd/arkesel", "not json"),
            ] {
                let response = try await client.execute(
                    uri: path, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body))
                #expect(response.status == .badRequest, "\(path) \(body)")
            }
            let query = "SessionID=\(DialectPhone.newSession())&MSISDN=254\(freshLocal().dropFirst())&MSC=airtel&input=38496"
            #expect(try await client.execute(uri: "/ussd/flares?" + query, method: .get).status == .badRequest, "no credentials")
            #expect(try await client.execute(uri: "/ussd/flares?" + query + "&userid=airtel-ke&password=wrong", method: .get).status == .badRequest)
            let right = try await client.execute(uri: "/ussd/flares?" + query + "&userid=airtel-ke&password=s3cret-flares", method: .get)
            #expect(right.status == .ok && String(buffer: right.body).hasPrefix("Welcome"), "\(String(buffer: right.body))")
        }
        let reasons = rig.harness.capture.all.filter { $0.message == "malformed callback" }.compactMap { $0.metadata["reason"] }
        #expect(reasons.contains { $0.contains("SessionId") } && reasons.contains { $0.contains("MSGTYPE") }, "\(reasons)")
        #expect(reasons.contains { $0.contains("country served") } && reasons.contains { $0.contains("FLARES_USERID") }, "\(reasons)")
        #expect(!rig.harness.capture.all.contains { "\($0.message) \($0.metadata)".contains("s3cret-flares") }, "the password is never logged")
        await rig.finish()
    }
}

/// A deployment in Ghana (`MSISDN_COUNTRIES=GH`, the gateway as its own process): Hubtel, Nalo and
/// Arkesel hops from Ghanaian numbers register customers under those numbers, and a send to a
/// Ghanaian number typed in its local form (`024...`) finds its recipient; a Kenyan number is
/// refused as not served.
@Suite struct GhanaDeploymentTests {
    static func freshGhanaian() -> String { "024" + String(format: "%07d", Int.random(in: 0..<10_000_000)) }

    @Test func ghanaianNumbersThroughHubtelNaloAndArkesel() async throws {
        let database = try await TestServers.freshDatabase("ghana")
        let postgres = PostgresClient(configuration: database)
        try await postgres.migrate(try GatewayMigrations.all())
        let port = try await PrivateServer.freePort()
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "LOG_LEVEL": "warning", "ENVIRONMENT": "development", "MENUS_PATH": RepoFiles.menus, "HTTP_PORT": String(port),
            "DATABASE_URL": database.connectionString, "MSISDN_COUNTRIES": "GH", "USSD_DIALECTS": "hubtel,nalo,arkesel",
            "USSD_REPEAT_WINDOW_MS": "300",
        ]) { $1 }
        let server = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment)
        let curl = CurlClient()
        let base = "http://127.0.0.1:\(port)"
        #expect(try await waitUntilReady(curl, base + "/readyz")?.status == 200, "\(server.errorOutput)")
        func post(_ path: String, _ members: [String: JSONValue]) async throws -> (Int, JSONValue?) {
            let response = try await curl.execute(
                CurlRequest(
                    method: "POST", url: base + path, headers: [("Content-Type", "application/json")],
                    body: Array(JSONValue.object(members).serialized.utf8))
            )
            return (response.status, JSONValue.parse(response.body))
        }
        /// One session of typed inputs through a dialect; the last reply's text.
        func session(_ dialect: String, _ number: String, _ inputs: [String]) async throws -> String {
            let id = DialectPhone.newSession()
            var text = ""
            for (index, input) in ([""] + inputs).enumerated() {
                // The gateway is a process of its own, on the real clock: the same input again waits out its
                // repeat window (USSD_REPEAT_WINDOW_MS, 300 ms), as a person would.
                if index > 1 && input == inputs[index - 2] { try await Task.sleep(for: .milliseconds(500)) }
                let first = index == 0
                let data = first ? "*384*96#" : input
                let reply: JSONValue?
                switch dialect {
                case "hubtel":
                    reply = try await post(
                        "/ussd/hubtel",
                        [
                            "Type": .string(first ? "Initiation" : "Response"), "Mobile": .string(number), "SessionId": .string(id),
                            "ServiceCode": .string("384"),
                            "Message": .string(data), "Operator": .string("mtn"), "Sequence": .integer(Int64(index + 1)),
                        ]
                    ).1
                    text = reply?["Message"]?.string ?? "?"
                case "nalo":
                    reply = try await post(
                        "/ussd/nalo",
                        [
                            "USERID": .string("NALO"), "MSISDN": .string(number), "USERDATA": .string(data), "MSGTYPE": .bool(first),
                            "NETWORK": .string("MTN"),
                            "SESSIONID": .string(id),
                        ]
                    ).1
                    text = reply?["MSG"]?.string ?? "?"
                default:
                    reply = try await post(
                        "/ussd/arkesel",
                        [
                            "sessionID": .string(id), "userID": .string("ARK"), "newSession": .bool(first), "msisdn": .string(number),
                            "userData": .string(data),
                            "network": .string("Vodafone"),
                        ]
                    ).1
                    text = reply?["message"]?.string ?? "?"
                }
            }
            return text
        }
        let (ama, kojo, yaw) = (Self.freshGhanaian(), Self.freshGhanaian(), Self.freshGhanaian())
        for (dialect, local, name) in [("hubtel", ama, "Ama Owusu"), ("nalo", kojo, "Kojo Asante"), ("arkesel", yaw, "Yaw Boateng")] {
            let done = try await session(dialect, "233" + local.dropFirst(), [name, "1", TypedPINs.achieng, TypedPINs.achieng])
            #expect(done == "Welcome \(name)! Your wallet is ready. Dial again to use it.", "\(dialect): \(done)")
        }
        let numbers = try await postgres.query("SELECT msisdn FROM customers ORDER BY id").map { try $0.decode(String.self, column: 0) }
        #expect(numbers == [ama, kojo, yaw].map { "233" + $0.dropFirst() }, "stored as Ghanaian E.164")
        // The recipient typed in Ghana's local form is found (the balance is empty: the send stops there).
        let refused = try await session("hubtel", "233" + ama.dropFirst(), ["4", kojo, "50", "1", TypedPINs.achieng])
        #expect(refused == "Your balance is not enough for this.", "\(refused)")
        let kenyan = try await post(
            "/ussd/nalo",
            [
                "USERID": .string("NALO"), "MSISDN": .string("254712345678"), "USERDATA": .string("*384*96#"), "MSGTYPE": .bool(true),
                "SESSIONID": .string("k1"),
            ])
        #expect(kenyan.0 == 400, "a number of a country not served")
        server.signal(SIGTERM)
        #expect(await server.wait() == 0)
        await postgres.shutdown()
        await curl.shutdown()
    }
}
