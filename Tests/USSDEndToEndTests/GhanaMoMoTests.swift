import Basics
import Curl
import Foundation
@testable import GatewayTestSupport
import MPesaBook
import Postgres
import Sandbox
import TestSupport
import Testing
import USSDGateway
import Wallet

/// A Ghana deployment on MTN MoMo, the gateway as its own process (`MOBILE_MONEY=mtn-momo`,
/// `CURRENCY=GHS`, `CURRENCY_FRACTIONS=on`, `MSISDN_COUNTRIES=GH`) against the strict fake MoMo:
/// register, deposit by request to pay, send, withdraw by transfer, every screen and SMS in cedis
/// with pesewas; a callback delivered twice credits once; a transfer whose answer is lost is
/// settled by the status query and paid once; the ledger audit is clean.
@Suite struct GhanaMoMoTests {
    @Test func aGhanaianDepositsSendsAndWithdrawsInCedisThroughMoMo() async throws {
        let momo = try await FakeMoMo.start(environment: "mtnghana", currency: "GHS")
        momo.state.withLock { $0.callbackDelivery = .afterAnswer(times: 2) }
        let database = try await TestServers.freshDatabase("ghana_momo")
        let postgres = PostgresClient(configuration: database)
        try await postgres.migrate(try GatewayMigrations.all())
        let port = try await PrivateServer.freePort()
        let token = "momo-callback-token-" + DialectPhone.newSession()
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "LOG_LEVEL": "warning", "ENVIRONMENT": "development", "MENUS_PATH": RepoFiles.menus, "HTTP_PORT": String(port),
            "DATABASE_URL": database.connectionString, "MSISDN_COUNTRIES": "GH", "USSD_DIALECTS": "hubtel", "USSD_REPEAT_WINDOW_MS": "300",
            "CURRENCY": "GHS", "CURRENCY_FRACTIONS": "on", "MOBILE_MONEY": "mtn-momo", "MOMO_BASE_URL": momo.baseURL, "MOMO_TARGET_ENVIRONMENT": "mtnghana",
            "MOMO_COLLECTION_SUBSCRIPTION_KEY": FakeMoMo.collection.subscriptionKey, "MOMO_COLLECTION_API_USER": FakeMoMo.collection.apiUser,
            "MOMO_COLLECTION_API_KEY": FakeMoMo.collection.apiKey,
            "MOMO_DISBURSEMENT_SUBSCRIPTION_KEY": FakeMoMo.disbursement.subscriptionKey, "MOMO_DISBURSEMENT_API_USER": FakeMoMo.disbursement.apiUser,
            "MOMO_DISBURSEMENT_API_KEY": FakeMoMo.disbursement.apiKey, "MOMO_CALLBACK_TOKEN": token, "MOMO_TIMEOUT_MS": "1000",
            "MOMO_RECONCILE_INTERVAL_SECONDS": "1", "STK_DELAY_MS": "0", "USSD_RATE_LIMIT_PER_MINUTE": "0", "PUBLIC_BASE_URL": "http://127.0.0.1:\(port)",
        ]) { $1 }
        let server = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment)
        let curl = CurlClient()
        let base = "http://127.0.0.1:\(port)"
        #expect(try await waitUntilReady(curl, base + "/readyz")?.status == 200, "\(server.errorOutput)")

        /// One Hubtel session of typed inputs; every reply's text.
        func session(_ number: String, _ inputs: [String]) async throws -> [String] {
            let id = DialectPhone.newSession()
            var texts: [String] = []
            for (index, input) in ([""] + inputs).enumerated() {
                if index > 1 && input == inputs[index - 2] { try await Task.sleep(for: .milliseconds(500)) }
                let body = JSONValue.object([
                    "Type": .string(index == 0 ? "Initiation" : "Response"), "Mobile": .string(number), "SessionId": .string(id), "ServiceCode": .string("384"),
                    "Message": .string(index == 0 ? "*384*96#" : input), "Operator": .string("mtn"), "Sequence": .integer(Int64(index + 1)),
                ])
                let response = try await curl.execute(
                    CurlRequest(method: "POST", url: base + "/ussd/hubtel", headers: [("Content-Type", "application/json")], body: Array(body.serialized.utf8)))
                texts.append(JSONValue.parse(response.body)?["Message"]?.string ?? "?")
            }
            return texts
        }
        func inbox(_ number: String) async throws -> [String] {
            let response = try await curl.execute(CurlRequest(url: base + "/sandbox/inbox?phone=%2B\(number)", timeout: .seconds(5)))
            guard case .array(let messages)? = JSONValue.parse(response.body)?["messages"] else { return [] }
            return messages.compactMap { $0["text"]?.string }
        }
        func balance(_ number: String) async throws -> Int64 {
            try await postgres.query("SELECT a.balance FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = \(number) AND a.kind = 'main'")
                .single()!.decode(Int64.self, column: 0)
        }

        let (ama, kojo) = (GhanaDeploymentTests.freshGhanaian(), GhanaDeploymentTests.freshGhanaian())
        let (amaE164, kojoE164) = ("233" + ama.dropFirst(), "233" + kojo.dropFirst())
        for (number, name) in [(amaE164, "Ama Owusu"), (kojoE164, "Kojo Asante")] {
            let done = try await session(number, [name, "1", TypedPINs.achieng, TypedPINs.achieng]).last
            #expect(done == "Welcome \(name)! Your wallet is ready. Dial again to use it.", "\(done ?? "-")")
        }

        // Deposit GHS 120.50 by request to pay; MoMo's callback arrives twice.
        let deposit = try await session(amaE164, ["2", "120.50", "1", TypedPINs.achieng])
        #expect(deposit[1].hasPrefix("Deposit from MoMo. Enter amount (GHS)"), "\(deposit[1])")
        #expect(deposit[2].hasPrefix("Deposit GHS 120.50 from MoMo \(ama.prefix(4))***"), "\(deposit[2])")
        #expect(deposit[4] == "Check your phone: enter your MoMo PIN to pay GHS 120.50. We will SMS you when it arrives.", "\(deposit[4])")
        #expect(try await eventually { try await balance(amaE164) == 12_050 }, "credited once the status query says SUCCESSFUL")
        let requested = momo.requests("POST", "/collection/v1_0/requesttopay")
        #expect(requested.count == 1)
        #expect(requested.first?.json?["amount"]?.string == "120.50" && requested.first?.json?["currency"]?.string == "GHS")
        #expect(requested.first?.json?["payer"]?["partyId"]?.string == amaE164)
        #expect(requested.first?.headers["x-callback-url"]?.hasPrefix(base + "/momo/callback/" + token + "/") == true)
        let reference = requested.first?.headers["x-reference-id"] ?? ""
        #expect(try await eventually { momo.state.withLock { $0.callbacksPosted } >= 2 }, "both callbacks were delivered")
        // And twice more by hand: still one credit, one receipt.
        #expect(try await momo.postCallbacks(for: reference, times: 2, http: curl) == [200, 200])
        #expect(try await throughout(.seconds(1)) { try await balance(amaE164) == 12_050 })
        let receipts = try await inbox(amaE164).filter { $0.contains("is in your wallet") }
        #expect(receipts.count == 1 && receipts.first?.hasPrefix("GHS 120.50 from MoMo is in your wallet. MoMo ref ") == true, "\(receipts)")
        // A callback without the token, or naming no reference, is refused.
        let forged = try await curl.execute(CurlRequest(method: "PUT", url: base + "/momo/callback/" + reference, headers: [("Content-Type", "application/json")], body: Array("{}".utf8)))
        #expect(forged.status == 404 || forged.status == 401 || forged.status == 403, "\(forged.status)")
        let malformed = try await curl.execute(
            CurlRequest(method: "PUT", url: base + "/momo/callback/\(token)/not-a-uuid", headers: [("Content-Type", "application/json")], body: Array("{}".utf8)))
        #expect(malformed.status == 400)

        // Send GHS 20.25 to Kojo, typed in Ghana's local form.
        let send = try await session(amaE164, ["4", kojo, "20.25", "1", TypedPINs.achieng])
        #expect(send[2].hasPrefix("Enter amount to send (GHS)"), "\(send[2])")
        #expect(send[3].hasPrefix("Send GHS 20.25 to \(kojo.prefix(4))***"), "\(send[3])")
        #expect(send[5].hasPrefix("Sent GHS 20.25 to \(kojo.prefix(4))***"), "\(send[5])")
        let kojoBalance = try await balance(kojoE164)
        #expect(kojoBalance == 2_025)
        #expect(try await eventually { try await inbox(kojoE164).contains { $0.contains("GHS 20.25") } }, "Kojo's SMS names cedis")

        // Withdraw GHS 50.75 by transfer.
        let before = try await balance(amaE164)
        let withdraw = try await session(amaE164, ["3", "50.75", "1", TypedPINs.achieng])
        #expect(withdraw[1].hasPrefix("Withdraw to MoMo. Enter amount (GHS)"), "\(withdraw[1])")
        #expect(withdraw[2].hasPrefix("Withdraw GHS 50.75 to MoMo \(ama.prefix(4))***\(ama.suffix(3))? Fee GHS 5.00. Total GHS 55.75"), "\(withdraw[2])")
        #expect(withdraw[4].hasPrefix("GHS 50.75 is on its way to MoMo \(ama.prefix(4))***"), "\(withdraw[4])")
        #expect(try await eventually { try await postgres.query("SELECT count(*) FROM payouts WHERE status = 'paid'").single()!.decode(Int64.self, column: 0) == 1 })
        let after = try await balance(amaE164)
        #expect(before - after > 5_075, "the amount and its fee left: \(before) -> \(after)")
        let paidNotice = try await eventually { try await inbox(amaE164).contains { $0.hasPrefix("GHS 50.75 was sent to your MoMo") } }
        let amasInbox = try await inbox(amaE164)
        #expect(paidNotice, "\(amasInbox)")

        // A transfer whose answer is lost: the status query settles it, paid once.
        // No callback this time: only the reconciler's status query can settle it.
        momo.state.withLock { ($0.dropNextCreateAnswer, $0.callbackDelivery) = (true, .manual) }
        let lost = try await session(amaE164, ["3", "10", "1", TypedPINs.achieng])
        #expect(lost[4].hasPrefix("GHS 10.00 is on its way"), "\(lost[4])")
        #expect(try await eventually { try await postgres.query("SELECT count(*) FROM payouts WHERE outcome_unknown").single()!.decode(Int64.self, column: 0) == 1 })
        // The reconciler's next look is due at once (a test does not wait out its back-off).
        #expect(
            try await eventually(every: .milliseconds(500)) {
                try await postgres.query("UPDATE payouts SET next_check_at = now() WHERE status IN ('reserved', 'sent', 'unknown')")
                return try await postgres.query("SELECT count(*) FROM payouts WHERE status = 'paid'").single()!.decode(Int64.self, column: 0) == 2
            })
        let transfers = momo.requests("POST", "/disbursement/v1_0/transfer")
        let lostReference = transfers.last?.headers["x-reference-id"] ?? ""
        #expect(transfers.count >= 3 && transfers.dropFirst().allSatisfy { $0.headers["x-reference-id"] == lostReference }, "every attempt carries one reference")
        #expect(momo.paidCount(lostReference) == 1, "never paid twice")
        #expect(momo.state.withLock { $0.violations }.isEmpty, "\(momo.state.withLock { $0.violations })")

        // Two reports disagree: MoMo first says FAILED (the deposit fails, the customer is told),
        // then SUCCESSFUL. Nothing is credited on the second word; both go to a person.
        momo.state.withLock { ($0.outcomes[amaE164], $0.callbackDelivery) = (.failed(reason: "NOT_ENOUGH_FUNDS"), .afterAnswer(times: 1)) }
        let held = try await balance(amaE164)
        let second = try await session(amaE164, ["2", "60", "1", TypedPINs.achieng])
        #expect(second.last?.hasPrefix("Check your phone") == true, "\(second)")
        let short = try await eventually { try await inbox(amaE164).contains { $0.hasPrefix("Your {mobileMoney} balance".replacingOccurrences(of: "{mobileMoney}", with: "MoMo") + " was not enough for GHS 60.00") } }
        let told = try await inbox(amaE164)
        #expect(short, "the failure is told in the customer's words: \(told)")
        let failedReference = momo.requests("POST", "/collection/v1_0/requesttopay").last?.headers["x-reference-id"] ?? ""
        momo.settle(failedReference, .successful)
        let flipped = try await momo.postCallbacks(for: failedReference, http: curl)
        #expect(flipped == [200], "\(flipped): \(server.errorOutput.suffix(2000))")
        let reviewed = try await eventually {
            try await postgres.query("SELECT count(*) FROM mpesa_review WHERE kind = 'momo_deposit' AND reference = \(failedReference)").single()!.decode(Int64.self, column: 0) == 1
        }
        #expect(reviewed, "the disagreement waits for a person")
        #expect(try await balance(amaE164) == held, "nothing credited on MoMo's second word")

        // The ledger audit is clean, and nothing else was left for review.
        let book = MPesaBook(wallet: Wallet(postgres: postgres, pins: PINVault(key: SoftwarePINKeys.randomKey())))
        // A payout another rail left open on this ledger (held without MoMo's reference) is never
        // sent through MoMo, however often the reconciler looks.
        let sentBefore = momo.requests("POST", "/disbursement/v1_0/transfer").count
        let foreign = try await book.reserveWithdrawal(MSISDN(amaE164)!, amount: Amount(cents: 1_000), key: IdempotencyKey("mpesa-era-payout")!)
        let untouched = try await throughout(.seconds(3), every: .milliseconds(250)) {
            try await postgres.query("UPDATE payouts SET next_check_at = now() WHERE id = \(foreign.id)")
            return momo.requests("POST", "/disbursement/v1_0/transfer").count == sentBefore
        }
        #expect(untouched, "no MoMo transfer for another rail's payout")
        try await postgres.query("UPDATE payouts SET next_check_at = now() + interval '1 day' WHERE id = \(foreign.id)")
        let audit = try await book.auditLedger()
        #expect(audit.passed, "\(audit)")
        #expect(try await postgres.query("SELECT count(*) FROM mpesa_review").single()!.decode(Int64.self, column: 0) == 1)
        #expect(try await postgres.query("SELECT code FROM ledger_currency").single()?.decode(String.self, column: 0) == "GHS")
        // The day's reconciliation is in cedis too, and it reconciles.
        let report = try await book.dailyReport(date: DailyReport.yesterday(now: Date().addingTimeInterval(24 * 3600)))
        #expect(report.text.contains("credited: 1, GHS 120.50") && !report.text.contains("KES"), "\(report.text)")
        #expect(report.csv.hasPrefix("date,section,item,count,amount_ghs\n"))
        server.signal(SIGTERM)
        #expect(await server.wait() == 0)
        await postgres.shutdown()
        await curl.shutdown()
        await momo.stop()
    }

    /// `make run` with `MOBILE_MONEY=mtn-momo CURRENCY=GHS MSISDN_COUNTRIES=GH` and no MoMo
    /// credentials: MoMo is simulated on the gateway's own listener, and the browser phone's route
    /// walks a Ghanaian deposit, send and withdrawal in cedis, the amount's last digit choosing
    /// each outcome as the Daraja sandbox's rules say.
    @Test func theEmbeddedSandboxSimulatesMoMoForTheBrowserPhone() async throws {
        let database = try await TestServers.freshDatabase("ghana_sandbox")
        let postgres = PostgresClient(configuration: database)
        try await postgres.migrate(try GatewayMigrations.all())
        let port = try await PrivateServer.freePort()
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "LOG_LEVEL": "warning", "ENVIRONMENT": "development", "MENUS_PATH": RepoFiles.menus, "HTTP_PORT": String(port),
            "DATABASE_URL": database.connectionString, "MSISDN_COUNTRIES": "GH", "CURRENCY": "GHS", "CURRENCY_FRACTIONS": "on", "MOBILE_MONEY": "mtn-momo",
            "SANDBOX_DELAY_MS": "100", "STK_DELAY_MS": "0", "SANDBOX_SMTP_PORT": "0", "USSD_REPEAT_WINDOW_MS": "300",
        ]) { $1 }
        for name in environment.keys where name.hasPrefix("MOMO_") || name.hasPrefix("AT_") { environment[name] = nil }
        let server = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment)
        let curl = CurlClient()
        let base = "http://127.0.0.1:\(port)"
        #expect(try await waitUntilReady(curl, base + "/readyz")?.status == 200, "\(server.errorOutput)")
        let settings = JSONValue.parse(try await curl.execute(CurlRequest(url: base + "/simulator/settings.json")).body)
        #expect(settings?["rail"]?.string == "MoMo" && settings?["mpesa"]?.string == "sandbox")
        #expect(settings?["country"]?["code"]?.string == "233" && settings?["country"]?["samples"]?.array?.first?.string == "0241000001", "\(String(describing: settings))")

        let plan = NumberingPlan(countries: [.ghana])!
        let local = GhanaDeploymentTests.freshGhanaian()
        let number = "233" + local.dropFirst()
        func walk(_ inputs: [String]) async throws -> [String] {
            var phone = try #require(SimulatedPhone(url: base + "/ussd/africastalking", phone: local, serviceCode: "*384*96#", http: curl, plan: plan))
            var texts = [try await phone.dial().text]
            for input in inputs { texts.append(try await phone.answer(input).text) }
            return texts
        }
        func balance() async throws -> Int64 {
            try await postgres.query("SELECT a.balance FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = \(number) AND a.kind = 'main'")
                .single()?.decode(Int64.self, column: 0) ?? -1
        }
        func inbox() async throws -> [String] {
            let response = try await curl.execute(CurlRequest(url: base + "/sandbox/inbox?phone=%2B\(number)", timeout: .seconds(5)))
            guard case .array(let messages)? = JSONValue.parse(response.body)?["messages"] else { return [] }
            return messages.compactMap { $0["text"]?.string }
        }
        #expect(try await walk(["Esi Mensah", "1", TypedPINs.achieng, TypedPINs.achieng]).last == "Welcome Esi Mensah! Your wallet is ready. Dial again to use it.")
        // Approved (ends in 0): credited, and the handset has MoMo's message and the wallet's receipt.
        let deposit = try await walk(["2", "150.40", "1", TypedPINs.achieng])
        #expect(deposit.last == "Check your phone: enter your MoMo PIN to pay GHS 150.40. We will SMS you when it arrives.", "\(deposit)")
        #expect(try await eventually { try await balance() == 15_040 })
        #expect(try await eventually { try await inbox().contains { $0.hasPrefix("GHS 150.40 from MoMo is in your wallet.") } })
        #expect(try await inbox().contains { $0.hasPrefix("You have paid GHS 150.40 to WALLET.") })
        // Cancelled on the handset (ends in 1): nothing credited, the customer told so.
        _ = try await walk(["2", "31", "1", TypedPINs.achieng])
        let cancelled = try await eventually { try await inbox().contains { $0.hasPrefix("You cancelled the MoMo prompt for GHS 31.00") } }
        let esisInbox = try await inbox()
        #expect(cancelled, "\(esisInbox)")
        // Paid out (ends in 0): the money and its fee leave the wallet once.
        let withdraw = try await walk(["3", "40", "1", TypedPINs.achieng])
        #expect(withdraw.last?.hasPrefix("GHS 40.00 is on its way to MoMo") == true, "\(withdraw)")
        #expect(try await eventually { try await inbox().contains { $0.hasPrefix("GHS 40.00 was sent to your MoMo") } })
        #expect(try await postgres.query("SELECT count(*) FROM payouts WHERE status = 'paid'").single()!.decode(Int64.self, column: 0) == 1)
        #expect(try await balance() < 15_040 - 4_000)
        server.signal(SIGTERM)
        #expect(await server.wait() == 0)
        await postgres.shutdown()
        await curl.shutdown()
    }
}
