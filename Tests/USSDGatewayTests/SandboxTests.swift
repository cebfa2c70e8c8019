import AfricasTalking
import Basics
import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Menus
import MPesa
@testable import MPesaGateway
import Sandbox
@testable import SMSChannel
import Settings
import Testing
import TestSupport
@testable import USSDChannel
@testable import USSDGateway
import MPesaBook
import Wallet

/// The embedded sandbox: the gateway's real Daraja and Africa's Talking clients against the
/// simulated providers on its own listener, the callbacks and delivery reports coming back over
/// HTTP, and the production switch that keeps all of it off.
@Suite struct SandboxTests {
    /// A development gateway on a known free port with both providers simulated: deposits approved
    /// after 200 ms, a reconciler that runs every second.
    /// `adjust` changes what a test needs on top.
    static func harness(_ adjust: @escaping (inout GatewayConfig) -> Void = { _ in }) async throws -> USSDHarness {
        try await USSDHarness.make { config in
            config.httpPort = try! freeListeningPort(host: "127.0.0.1")
            config.sandbox.mpesa = true
            config.sandbox.sms = true
            config.sandbox.delay = .milliseconds(200)
            config.sandbox.deliveryDelay = .milliseconds(50)
            config.mpesa.stkDelay = .milliseconds(50)
            config.mpesa.reconcileInterval = .seconds(1)
            config.sms.pollInterval = .milliseconds(100)
            config.ussd.rateLimitPerMinute = 0
            adjust(&config)
            config.applySandbox(port: config.httpPort)
        }
    }

    /// Polls `condition` every 50 ms until it holds, for up to a minute (TestSupport's
    /// `eventually`); whether it came true.
    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        try await TestSupport.eventually(within: .seconds(60), every: .milliseconds(50), condition)
    }

    static func available(_ harness: USSDHarness, _ msisdn: MSISDN) async throws -> Int64 {
        try await harness.wallet.balances(msisdn).available.cents / 100
    }

    static func inbox(_ http: CurlClient, _ base: String, _ msisdn: MSISDN) async throws -> [(from: String, text: String, status: String)] {
        let response = try await http.execute(CurlRequest(url: base + "/sandbox/inbox?phone=%2B\(msisdn.value)", timeout: .seconds(5)))
        guard response.status == 200, let json = JSONValue.parse(response.body) else { return [] }
        return (json["messages"]?.array ?? []).map { ($0["from"]?.string ?? "", $0["text"]?.string ?? "", $0["status"]?.string ?? "") }
    }

    /// The payouts as `shillings status`, by amount, once their statuses are `expected` (each pass
    /// makes the open ones due for the reconciler), or as they are when that does not happen.
    static func payoutsOnceSettled(_ harness: USSDHarness, _ expected: [String]) async throws -> [String] {
        var payouts: [String] = []
        _ = try await TestSupport.eventually(within: .seconds(30), every: .milliseconds(50)) {
            try await harness.postgres.query("UPDATE payouts SET next_check_at = now() - interval '1 second' WHERE status IN ('sent', 'unknown')")
            payouts = try await harness.postgres.query("SELECT amount / 100 || ' ' || status FROM payouts ORDER BY amount").map { try $0.decode(String.self, column: 0) }
            return payouts.map({ String($0.split(separator: " ")[1]) }) == expected
        }
        return payouts
    }

    /// Dials and walks main menu -> `option` -> amount -> confirm -> PIN; the last screen.
    static func mobileMoney(_ phone: inout SimulatedPhone, _ option: String, shillings: Int, pin: String) async throws -> String {
        _ = try await phone.dial()
        _ = try await phone.answer(option)
        _ = try await phone.answer(String(shillings))
        _ = try await phone.answer("1")
        return try await phone.answer(pin).text
    }

    @Test func everyOutcomeRuleSettlesTheWalletOnceThroughTheRealCallbacksAndReconciler() async throws {
        let harness = try await Self.harness()
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Amina", pin: TypedPINs.achieng)
        let http = CurlClient()
        try await harness.serve { base in
            var phone = SimulatedPhone(url: base + "/ussd/africastalking", phone: local, serviceCode: "*384*96#", http: http)!
            let pin = TypedPINs.achieng
            // Approved: credited after the delay, with M-Pesa's confirmation and our receipt in the inbox.
            let approved = try await Self.mobileMoney(&phone, "2", shillings: 500, pin: pin)
            #expect(approved.hasPrefix("Check your phone"), "\(approved)")
            #expect(try await Self.eventually { try await Self.available(harness, msisdn) == 500 }, "the approved deposit was credited")
            #expect(try await Self.eventually { try await Self.inbox(http, base, msisdn).contains { $0.text.contains("KES 500 from M-Pesa is in your wallet") } })
            let afterDeposit = try await Self.inbox(http, base, msisdn)
            #expect(afterDeposit.contains { $0.from == "MPESA" && $0.text.contains("Ksh500.00 sent to WALLET 174379") })

            // Ends in 1: cancelled by the customer (1032); nothing credited.
            _ = try await Self.mobileMoney(&phone, "2", shillings: 501, pin: pin)
            #expect(try await Self.eventually {
                try await harness.postgres.query("SELECT count(*) FROM deposits WHERE status = 'failed' AND result_code = 1032").single()!.decode(Int.self, column: 0) == 1
            }, "the cancelled push failed its deposit")

            // Ends in 8: the callback comes twice and credits once.
            _ = try await Self.mobileMoney(&phone, "2", shillings: 508, pin: pin)
            #expect(try await Self.eventually { try await Self.available(harness, msisdn) == 1008 })
            #expect(try await Self.eventually { harness.capture.all.contains { $0.metadata["outcome"] == "already_final" } }, "the second callback was taken as a repeat")

            // Ends in 7: no callback at all; the reconciler's STK Query credits it.
            _ = try await Self.mobileMoney(&phone, "2", shillings: 507, pin: pin)
            #expect(try await throughout(.milliseconds(600)) { try await Self.available(harness, msisdn) == 1008 }, "no callback, no credit yet")
            #expect(try await Self.eventually {
                try await harness.postgres.query("UPDATE deposits SET next_check_at = now() - interval '1 second' WHERE status = 'pending'")
                return try await Self.available(harness, msisdn) == 1515
            }, "the STK Query settled the deposit whose callback never came")

            // Withdrawals: paid; refused (ends in 1, the hold released); timed out (ends in 7, settled by status query).
            #expect(try await Self.mobileMoney(&phone, "3", shillings: 100, pin: pin).contains("on its way"))
            _ = try await Self.mobileMoney(&phone, "3", shillings: 101, pin: pin)
            _ = try await Self.mobileMoney(&phone, "3", shillings: 107, pin: pin)
            let payouts = try await Self.payoutsOnceSettled(harness, ["paid", "failed", "paid"])
            #expect(payouts == ["100 paid", "101 failed", "107 paid"], "each payout settled as its rule says")
            // Paid: 100 and 107 with their fees (5 and 10); the refused payout's fee came back with it.
            #expect(try await Self.available(harness, msisdn) == 1515 - 100 - 5 - 107 - 10)
            let held = try await harness.wallet.balances(msisdn).held.cents
            #expect(held == 0, "no hold left")

            // Every receipt went through the real client to the inbox and was reported delivered.
            let delivered = try await Self.eventually {
                try await harness.postgres.query("SELECT count(*) FILTER (WHERE delivery_status = 'Success'), count(*) FROM outbox WHERE recipient = \(msisdn.value)")
                    .single().map { row in let (delivered, all) = try row.decode((Int, Int).self); return delivered == all && all > 0 } ?? false
            }
            let messages = try await harness.postgres.query(
                "SELECT template || ' ' || status || ' ' || coalesce(delivery_status, '-') || ' attempts ' || attempts || ' ' || coalesce(provider_message_id, 'no id') || ' ' || coalesce(last_error, '') FROM outbox WHERE recipient = \(msisdn.value) ORDER BY id"
            ).map { try $0.decode(String.self, column: 0) }
            let handset = try await Self.inbox(http, base, msisdn).map { "\($0.text.prefix(30)) \($0.status)" }
            #expect(delivered, "every message delivered: \(messages); the handset's: \(handset)")
            // The sandbox marks a message delivered once the gateway has taken its report (just after
            // the outbox row says so).
            var inbox = try await Self.inbox(http, base, msisdn)
            #expect(try await Self.eventually {
                inbox = try await Self.inbox(http, base, msisdn)
                return inbox.allSatisfy { $0.status == "Success" }
            }, "every message in the inbox reported delivered")
            #expect(inbox.contains { $0.text == "KES 507 from M-Pesa is in your wallet." }, "a query-confirmed credit has no receipt to show")
            #expect(inbox.filter { $0.from == "MPESA" }.count == 5, "M-Pesa confirmed three deposits and two payouts: \(inbox.map(\.text))")
            for pin in TypedPINs.all { #expect(!inbox.contains { $0.text.contains(pin) }) }
            // What `ussd-gateway simulate` prints: the same inbox, from a given message on.
            let reader = SimulatedInbox(baseURL: base, phoneNumber: "+" + msisdn.value, http: http)
            let all = try #require(try await reader.messages())
            #expect(all.map(\.text) == inbox.map(\.text))
            #expect(try await reader.messages(after: all[1].sequence)?.map(\.text) == Array(inbox.dropFirst(2).map(\.text)))
        }
        let review = try await harness.postgres.query("SELECT count(*) FROM mpesa_review").single()!.decode(Int.self, column: 0)
        #expect(review == 0, "nothing for a person to look at")
        try await harness.audit()
        await http.shutdown()
        await harness.finish()
    }

    /// `make run`'s paybill path: the simulator's "Pay bill" (the sandbox's pay-bill route) and
    /// `ussd-gateway sandbox paybill` have a simulated customer pay the paybill; the sandbox
    /// validates and confirms it at the gateway's routes, the gateway asks the sandbox's Transaction
    /// Status about the receipt, and credits the wallet on its answer, once.
    @Test func aPaybillPaymentMadeInTheSandboxIsCreditedOnceTransactionStatusConfirmsIt() async throws {
        let harness = try await Self.harness()
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Halima", pin: TypedPINs.achieng)
        let http = CurlClient()
        try await harness.serve { base in
            let response = try await http.execute(
                CurlRequest(
                    method: "POST", url: base + "/sandbox/daraja/paybill", headers: [("Content-Type", "application/json")],
                    body: Array(#"{"account":"\#(local)","amount":350}"#.utf8), timeout: .seconds(10)
                )
            )
            let answer = JSONValue.parse(response.body)
            #expect(response.status == 200 && answer?["confirmed"] == .bool(true), "\(String(decoding: response.body, as: UTF8.self))")
            let receipt = try #require(answer?["TransID"]?.string)
            #expect(answer?["message"]?.string?.hasPrefix("Paid KES 350 to paybill 174379") == true)
            #expect(try await Self.eventually { try await Self.available(harness, msisdn) == 350 }, "credited once Transaction Status confirmed it")
            let query = try #require(try await harness.book.statusQueries(subject: .c2b, reference: receipt).first)
            #expect(query.conversationID != nil && query.id.count == 34)
            #expect(try await Self.eventually { try await Self.inbox(http, base, msisdn).contains { $0.text.contains("KES 350 from M-Pesa is in your wallet") } })
            #expect(try await Self.inbox(http, base, msisdn).contains { $0.from == "MPESA" && $0.text.contains("Ksh350.00 sent to WALLET 174379 for account \(local)") })

            // The same from the command line.
            var environment = ProcessInfo.processInfo.environment
            environment["LOG_LEVEL"] = "warning"
            let paid = try await ChildProcess.run(GatewayBinary.path, ["sandbox", "paybill", local, "120", "--url", base], environment: environment)
            #expect(paid.hasPrefix("Paid KES 120 to paybill 174379 for account \(local)"), "\(paid)")
            #expect(try await Self.eventually { try await Self.available(harness, msisdn) == 470 })
            // An account that names nobody: refused at validation, nothing paid.
            let refused = try await ChildProcess.run(GatewayBinary.path, ["sandbox", "paybill", freshLocal(), "120", "--url", base], environment: environment)
            #expect(refused.contains("refused the payment at validation (C2B00012)"), "\(refused)")
            let wrong = try ChildProcess.start(GatewayBinary.path, ["sandbox", "paybill", local, "0", "--url", base], environment: environment)
            #expect(await wrong.wait() != 0)
            #expect(try await Self.available(harness, msisdn) == 470)
            #expect(try await harness.notices(msisdn, "deposit_received") == 2)
        }
        let review = try await harness.postgres.query("SELECT count(*) FROM mpesa_review").single()!.decode(Int.self, column: 0)
        #expect(review == 0, "nothing for a person to look at")
        try await harness.audit()
        await http.shutdown()
        await harness.finish()
    }

    /// `make run`'s Jobs option: without JOBS_API_URL the sample jobs API answers, and an
    /// application is confirmed by SMS in the simulated inbox.
    @Test func theJobsOptionWorksAgainstTheSampleJobsAPI() async throws {
        let harness = try await Self.harness()
        #expect(harness.config.sandbox.jobs && harness.config.backendValues["JOBS_API_URL"]?.hasSuffix("/sandbox/jobs") == true)
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Muthoni", pin: TypedPINs.achieng)
        let http = CurlClient()
        try await harness.serve { base in
            var phone = SimulatedPhone(url: base + "/ussd/africastalking", phone: local, serviceCode: "*384*96#", http: http)!
            _ = try await phone.dial()
            #expect(try await phone.answer("6").text.hasPrefix("Jobs: choose a category\n1. Driving"))
            #expect(try await phone.answer("1").text.hasPrefix("Driving jobs\n1. Boda boda rider, Westlands, KES 1,200/day"))
            #expect(try await phone.answer("1").text.hasPrefix("Boda boda rider\nWestlands"))
            _ = try await phone.answer("1")
            let sent = try await phone.answer("1")
            #expect(sent.text == "Application sent for Boda boda rider. You will get an SMS." && !sent.continues)
            #expect(try await Self.eventually { try await Self.inbox(http, base, msisdn).contains { $0.text.contains("You applied for Boda boda rider") } })
            // The same job again: the API says 409, the menu says so.
            _ = try await phone.dial()
            for input in ["6", "1", "1", "1"] { _ = try await phone.answer(input) }
            #expect(try await phone.answer("1").text == "You have already applied for this job.")
        }
        await http.shutdown()
        await harness.finish()
    }

    @Test func theSimulatedDarajaHoldsTheRealClientToDarajasRules() async throws {
        let harness = try await Self.harness()
        let http = CurlClient()
        try await harness.serve { _ in
            let configuration = harness.config.mpesa.daraja(publicBaseURL: harness.config.publicBaseURL, callbackToken: nil)!
            let daraja = DarajaClient(configuration: configuration, http: http)
            let id = "sandbox-test-\(UUID().uuidString.prefix(8))"
            _ = try await daraja.b2c(originatorConversationID: id, phone: "254712000009", shillings: 100, remarks: "Wallet withdrawal")
            await #expect(throws: DarajaError.self) { _ = try await daraja.b2c(originatorConversationID: id, phone: "254712000009", shillings: 100, remarks: "Again") }
            do throws(DarajaError) {
                _ = try await daraja.b2c(originatorConversationID: id, phone: "254712000009", shillings: 100, remarks: "Again")
            } catch {
                #expect(error.isDuplicateOriginator, "a reused OriginatorConversationID is refused as Daraja refuses it: \(error)")
            }
            // A client with the wrong secret gets no token; one with a wrong passkey gets a 400.
            var wrong = configuration
            wrong.consumerSecret = "not-the-secret"
            await #expect(throws: DarajaError.self) { _ = try await DarajaClient(configuration: wrong, http: http).stkQuery(checkoutRequestID: "ws_CO_1") }
            wrong = configuration
            wrong.passkey = "not-the-passkey"
            do throws(DarajaError) {
                _ = try await DarajaClient(configuration: wrong, http: http).stkPush(phone: "254712000009", shillings: 10, accountReference: "Wallet", description: "Deposit")
                Issue.record("a push with a wrong Password was taken")
            } catch {
                #expect(error.description.contains("Password"), "\(error)")
            }
            // An unknown CheckoutRequestID is an error, not "pending".
            await #expect(throws: DarajaError.self) { _ = try await daraja.stkQuery(checkoutRequestID: "ws_CO_unknown") }
        }
        await http.shutdown()
        await harness.finish()
    }

    @Test func readinessTheStartUpLogAndTheBrowserPhoneSaySandbox() async throws {
        let token = "at-token-for-the-browser-phone-0123"
        let harness = try await USSDHarness.make { config in
            config.httpPort = try! freeListeningPort(host: "127.0.0.1")
            config.sandbox.mpesa = true
            config.sandbox.sms = true
            config.sandbox.simulator = true
            config.africasTalkingCallbackToken = token
        }
        try await harness.run(.live) { client in
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(String(buffer: ready.body).contains("mpesa: sandbox\nsms: sandbox"))
            let page = try await client.execute(uri: "/simulator", method: .get)
            #expect(page.status == .ok && page.headers[.contentType] == "text/html; charset=utf-8")
            let policy = try #require(page.headers[.contentSecurityPolicy])
            #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"))
            let html = String(buffer: page.body)
            #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script>"), "nothing fetched from elsewhere, no inline script")
            let script = String(buffer: try await client.execute(uri: "/simulator/simulator.js", method: .get).body)
            #expect(!script.contains("innerHTML") && !script.contains("insertAdjacentHTML") && !script.contains("document.write"), "replies are text, never HTML")
            let settings = String(buffer: try await client.execute(uri: "/simulator/settings.json", method: .get).body)
            #expect(settings.contains(#""ussdPath":"\/ussd\/africastalking\/\#(token)""#), "\(settings)")
            #expect(settings.contains(#""serviceCodes":["*384*96#"]"#))
            #expect(settings.contains(#""paybillPath":"\/sandbox\/daraja\/paybill""#) && settings.contains(#""paybill":"174379""#), "\(settings)")
            #expect(html.contains("Pay bill") && script.contains("payBill"))
            let badPhone = try await client.execute(uri: "/sandbox/inbox?phone=hello", method: .get)
            #expect(badPhone.status == .badRequest)
        }
        let notices = harness.capture.all.filter { $0.level == .notice }.map(\.message)
        #expect(notices.contains { $0.hasPrefix("M-Pesa: sandbox") } && notices.contains { $0.hasPrefix("SMS: sandbox") }, "\(notices)")
        await harness.finish()
    }

    @Test func developmentSimulatesOnlyTheProvidersWithoutCredentials() throws {
        let development = ["ENVIRONMENT": "development", "HTTP_PORT": "8080"]
        let plain = try GatewayConfig.load(environment: development)
        #expect(plain.sandbox.mpesa && plain.sandbox.sms && plain.sandbox.simulator)
        #expect(plain.mpesa.baseURL == "http://127.0.0.1:8080/sandbox/daraja" && plain.publicBaseURL == "http://127.0.0.1:8080")
        #expect(plain.sms.baseURL == "http://127.0.0.1:8080/sandbox/africastalking" && plain.sms.configuration != nil)
        #expect(plain.mpesa.daraja(publicBaseURL: plain.publicBaseURL, callbackToken: nil) != nil, "M-Pesa works with no credentials set")

        let withAT = try GatewayConfig.load(environment: development.merging(["AT_USERNAME": "acme", "AT_API_KEY": "key"]) { $1 })
        #expect(withAT.sandbox.mpesa && !withAT.sandbox.sms && withAT.sms.baseURL == AfricasTalkingSMS.Configuration.liveURL)
        let withDaraja = try GatewayConfig.load(environment: development.merging(["MPESA_CONSUMER_KEY": "k", "PUBLIC_BASE_URL": "https://gw.example.com"]) { $1 })
        #expect(!withDaraja.sandbox.mpesa && withDaraja.sandbox.sms && withDaraja.mpesa.baseURL == DarajaConfiguration.sandboxURL)
        let off = try GatewayConfig.load(environment: development.merging(["SANDBOX": "off", "SIMULATOR": "off"]) { $1 })
        #expect(!off.sandbox.isOn && !off.sandbox.simulator && off.publicBaseURL == nil)
        let kept = try GatewayConfig.load(environment: development.merging(["PUBLIC_BASE_URL": "https://tunnel.example.com"]) { $1 })
        #expect(kept.publicBaseURL == "https://tunnel.example.com", "a PUBLIC_BASE_URL set is where the sandbox's callbacks go")
        let delay = try GatewayConfig.load(environment: development.merging(["SANDBOX_DELAY_MS": "50"]) { $1 })
        #expect(delay.sandbox.delay == .milliseconds(50))
    }

    @Test func productionNeverRunsTheSandboxOrTheBrowserPhone() async throws {
        let production = ["ENVIRONMENT": "production", "PIN_KEY": "1:612d70726f64756374696f6e2d7065707065722d6f662d33322d627974657321", "PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": TestPersonalData.productionStore, "AT_CALLBACK_TOKEN": String(repeating: "t", count: 32)]
        let quiet = try GatewayConfig.load(environment: production)
        #expect(!quiet.sandbox.isOn && !quiet.sandbox.simulator, "auto is off in production")
        #expect(throws: ConfigError.self) { try GatewayConfig.load(environment: production.merging(["SANDBOX": "on"]) { $1 }) }
        do {
            _ = try GatewayConfig.load(environment: production.merging(["SANDBOX": "on"]) { $1 })
        } catch {
            #expect(error.variable == "SANDBOX")
        }
        do {
            _ = try GatewayConfig.load(environment: production.merging(["SIMULATOR": "on"]) { $1 })
            Issue.record("SIMULATOR=on was taken in production")
        } catch {
            #expect(error.variable == "SIMULATOR")
        }
        // A configuration built in code is checked again where the application is built.
        for change in [{ (config: inout GatewayConfig) in config.sandbox.mpesa = true }, { $0.sandbox.sms = true }, { $0.sandbox.simulator = true }] {
            var config = quiet
            change(&config)
            #expect(throws: ConfigError.self) { _ = try buildApplication(config: config, menus: try loadCheckedMenus(at: "menus.json")) }
        }
    }
}

