import Foundation
import Postgres
import TestSupport
import Testing
import Wallet

@testable import USSDGateway

/// Every operator command, as the support desk and finance run it: the `ussd-gateway` binary
/// against a real Postgres.
@Suite struct OperatorCommandTests {
    struct Desk {
        let harness: USSDHarness
        let environment: [String: String]

        static func make() async throws -> Desk {
            let harness = try await USSDHarness.make()
            var environment = ProcessInfo.processInfo.environment
            environment["ENVIRONMENT"] = "development"
            environment["DATABASE_URL"] = harness.config.postgres.connectionString
            environment["LOG_LEVEL"] = "warning"
            return Desk(harness: harness, environment: environment)
        }

        /// Runs a command that must succeed; its standard output.
        @discardableResult
        func run(_ arguments: String...) async throws -> String { try await self.run(arguments) }

        @discardableResult
        func run(_ arguments: [String]) async throws -> String {
            try await ChildProcess.run(GatewayBinary.path, arguments, environment: self.environment)
        }

        /// Runs a command; its exit code, output and error output.
        func status(_ arguments: String...) async throws -> (Int32, String, String) { try await self.status(arguments) }

        func status(_ arguments: [String]) async throws -> (Int32, String, String) {
            let child = try ChildProcess.start(GatewayBinary.path, arguments, environment: self.environment)
            let code = await child.wait()
            return (code, child.output, child.errorOutput)
        }
    }

    @Test func customerCommandsResetBlockAndTierWithTheirAuditRows() async throws {
        let desk = try await Desk.make()
        let (achieng, sender, otieno, recipient) = try await desk.harness.senderAndRecipient()
        let who = ["--operator", "wanjiru", "--reason", "caller verified with national ID"]

        #expect(try await desk.run(["customer", "reset-pin", achieng] + who).contains("PIN reset"))
        await #expect(throws: WalletError.pinResetRequired) { try await desk.harness.wallet.verifyPIN(sender, pin: TypedPINs.achieng) }
        #expect(try await desk.run(["customer", "show", achieng]).contains("PIN reset: the next dial must set a new PIN"))
        try await desk.harness.wallet.completePINReset(sender, new: TypedPINs.newPIN)

        #expect(try await desk.run(["customer", "block", achieng] + who).contains("blocked \(sender.value)"))
        #expect(try await desk.run(["customer", "block", achieng] + who).contains("already blocked"))
        await #expect(throws: WalletError.blocked) {
            try await desk.harness.wallet.send(from: sender, to: recipient, amount: .shillings(10), key: IdempotencyKey("cli-1")!)
        }
        let shown = try await desk.run(["customer", "show", achieng, "--json"])
        let view = try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any]
        #expect(view?["status"] as? String == "blocked" && view?["tier"] as? String == "default", "\(shown)")
        #expect(try await desk.run(["customer", "unblock", achieng] + who).contains("unblocked"))
        _ = try await desk.harness.wallet.send(from: sender, to: recipient, amount: .shillings(10), key: IdempotencyKey("cli-2")!)

        let unknownTier = try await desk.status(["customer", "tier", otieno, "platinum"] + who)
        #expect(unknownTier.0 == 1 && unknownTier.2.contains("no tier platinum"), "\(unknownTier)")
        try await desk.harness.wallet.applyConfiguration(
            tiers: [
                KYCTier(name: "standard", perTransaction: 100, daily: 100, maxBalance: 100),
                KYCTier(name: "full", perTransaction: 100, daily: 100, maxBalance: 100),
            ],
            defaultTier: "standard", settings: [:]
        )
        #expect(try await desk.run(["customer", "tier", otieno, "full"] + who).contains("tier full"))
        #expect(try await desk.harness.wallet.customer(recipient).tier == "full")
        let missingReason = try await desk.status("customer", "block", otieno, "--operator", "wanjiru", "--reason", " ")
        #expect(missingReason.0 == 2)

        let trail = try await desk.run("audit", "--number", achieng)
        for action in ["pin.reset", "pin.reset_completed", "customer.blocked", "customer.unblocked"] {
            #expect(trail.contains(" \(action)"), "\(action) in \(trail)")
        }
        #expect(try await desk.run("audit", "--number", otieno).contains("wanjiru customer.tier — caller verified with national ID"))
        await desk.harness.finish()
    }

    @Test func ledgerCommandsNeedASecondOperatorAndTheAuditExitsNonZeroOnABreach() async throws {
        let desk = try await Desk.make()
        let (achieng, sender, otieno, recipient) = try await desk.harness.senderAndRecipient()
        let maker = ["--operator", "wanjiru", "--reason", "M-Pesa paid, wallet not credited (ticket 8812)"]
        let checker = ["--operator", "kamau", "--reason", "checked the M-Pesa statement"]

        let asked = try await desk.run(["ledger", "adjust", "--to", otieno, "--amount", "250.50", "--from-suspense"] + maker)
        let id = try #require(asked.split(separator: " ").dropFirst().first.flatMap { Int($0.dropFirst().dropLast()) }, "\(asked)")
        #expect(asked.contains("adjustment: KES 250.50 to \(recipient.value) from suspense"), "\(asked)")
        #expect(try await desk.run("ledger", "requests").contains("#\(id)\tpending"))
        #expect(try await desk.harness.wallet.balances(recipient).main == .zero, "nothing moves before approval")
        let own = try await desk.status(["ledger", "approve", String(id)] + maker)
        #expect(own.0 == 1 && own.2.contains("another operator must"), "\(own)")
        #expect(try await desk.harness.wallet.balances(recipient).main == .zero)
        #expect(try await desk.run(["ledger", "approve", String(id)] + checker).contains("approved #\(id)"))
        #expect(try await desk.harness.wallet.balances(recipient).main == Amount(cents: 25_050))
        let both = try await desk.status(
            "ledger", "adjust", "--to", otieno, "--amount", "1", "--from-suspense", "--to-suspense", "--operator", "a", "--reason", "b")
        #expect(both.0 == 2)

        // A wrong send, reversed by two operators.
        let sent = try await desk.harness.wallet.send(from: sender, to: recipient, amount: .shillings(100), key: IdempotencyKey("cli-wrong")!)
        let reversal = try await desk.run(["ledger", "reverse", sent.key] + maker)
        let reversalID = try #require(reversal.split(separator: " ").dropFirst().first.flatMap { Int($0.dropFirst().dropLast()) })
        #expect(try await desk.run(["ledger", "approve", String(reversalID)] + checker).contains("transfer reversal:\(sent.key)"))
        #expect(try await desk.harness.wallet.balances(sender).main == .shillings(1_000), "the 100 came back")
        let rejected = try await desk.run(["ledger", "adjust", "--to", achieng, "--amount", "5", "--to-suspense"] + maker)
        let rejectedID = try #require(rejected.split(separator: " ").dropFirst().first.flatMap { Int($0.dropFirst().dropLast()) })
        #expect(try await desk.run(["ledger", "reject", String(rejectedID)] + checker).contains("rejected #\(rejectedID)"))
        #expect(try await desk.run("ledger", "requests").contains("no requests"))
        #expect(try await desk.run("ledger", "requests", "--all").split(separator: "\n").count == 3)

        let audit = try await desk.run("ledger", "audit")
        #expect(audit.contains("ok      balances sum to zero") && audit.contains("ledger audit passed"), "\(audit)")
        // A hold no payout explains: the audit names it and exits 1.
        try await desk.harness.postgres.query(
            """
            INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status)
            SELECT 'orphan-hold', a.id, p.id, 100, 'withdrawal', 'pending' FROM accounts a JOIN customers c ON c.id = a.customer_id, accounts p
            WHERE c.msisdn = \(sender.value) AND a.kind = 'main' AND p.kind = 'payouts_in_flight'
            """
        )
        let breach = try await desk.status("ledger", "audit", "--json")
        #expect(breach.0 == 1 && breach.1.contains("orphan-hold"), "\(breach)")
        await desk.harness.finish()
    }

    @Test func reviewItemsAreResolvedAndTheDailyReportReconcilesInCSV() async throws {
        let desk = try await Desk.make()
        let (achieng, sender, otieno, recipient) = try await desk.harness.senderAndRecipient()
        _ = try await desk.harness.wallet.send(
            from: sender, to: recipient, amount: .shillings(500), fee: .shillings(7), key: IdempotencyKey("cli-fee")!)
        try await desk.harness.wallet.keepForReview(kind: "stk", reference: "ws_CO_nobody", reason: "unknown CheckoutRequestID", body: "{}")
        let items = try await desk.run("mpesa", "review")
        #expect(items.contains("ws_CO_nobody"))
        let item = try #require(try await desk.harness.wallet.reviewItems().first)
        let resolved = try await desk.run(
            "mpesa", "resolve", "#\(item.id)", "--outcome", "refunded", "--note", "refunded on the M-Pesa portal, ref RFD1", "--operator", "kamau"
        )
        #expect(resolved.contains("resolved #\(item.id): refunded"))
        #expect(try await desk.run("mpesa", "review").contains("nothing to review"))
        #expect(try await desk.run("mpesa", "review", "--all").contains("resolved refunded by kamau"))
        #expect(try await desk.status("mpesa", "resolve", "\(item.id)", "--outcome", "credited", "--note", "again", "--operator", "kamau").0 == 1)

        let today = try await desk.harness.postgres.query("SELECT to_char(now() AT TIME ZONE 'Africa/Nairobi', 'YYYY-MM-DD')").single()!.decode(
            String.self, column: 0)
        let csv = try await desk.run("report", "daily", "--date", today, "--csv")
        let lines = csv.split(separator: "\n").map(String.init)
        #expect(lines.first == "date,section,item,count,amount_kes")
        // The funding deposit of 1,000 credited; a fee of 7 earned; nothing unexplained.
        #expect(lines.contains("\(today),deposits,credited,1,1000.00"), "\(csv)")
        #expect(lines.contains("\(today),fees,earned,,7.00"), "\(csv)")
        #expect(lines.contains("\(today),ledger,mpesa_float net,,-1000.00"), "\(csv)")
        #expect(lines.filter { $0.contains(",difference,") }.allSatisfy { $0.hasSuffix(",0.00") }, "\(csv)")
        let text = try await desk.run("report", "daily", "--date", today)
        #expect(text.contains("everything reconciles"), "\(text)")
        #expect(try await desk.status("report", "daily", "--date", "2026-13-01").0 == 1)
        _ = (achieng, otieno)
        await desk.harness.finish()
    }
}
