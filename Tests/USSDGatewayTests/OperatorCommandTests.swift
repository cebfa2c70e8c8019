import Basics
import Foundation
@testable import GatewayTestSupport
import Postgres
import Testing
import TestSupport
import MPesaBook
import Wallet

@testable import USSDGateway

/// Every operator command, as the support desk and finance run it: the `ussd-gateway` binary
/// against a real Postgres.
@Suite struct OperatorCommandTests {
    /// The commands as the desk runs them: each person with their own login (the database knows
    /// who they are; nobody types a name), in production, with none of the serving secrets.
    struct Desk {
        let harness: USSDHarness
        let environment: [String: String]
        /// Each person's connection string, and the login the database knows them by.
        let logins: [String: (url: String, name: String)]

        static func make() async throws -> Desk {
            let harness = try await USSDHarness.make()
            var environment = ProcessInfo.processInfo.environment
            environment["ENVIRONMENT"] = "production"
            for secret in ["PIN_PEPPER", "PIN_KEY", "PIN_KEY_FILE", "CALLBACK_TOKEN", "MPESA_CALLBACK_TOKEN", "AT_CALLBACK_TOKEN", "AT_API_KEY", "MPESA_CONSUMER_SECRET"] {
                environment[secret] = nil
            }
            environment["LOG_LEVEL"] = "warning"
            // Reading a customer opens their name: the desk holds the personal-data key.
            environment.merge(harness.personalDataEnvironment) { $1 }
            var logins: [String: (String, String)] = [:]
            for (person, role) in [("wanjiru", "ussd_operator"), ("kamau", "ussd_approver"), ("chebet", "ussd_approver"), ("auditor", "ussd_report")] {
                let url = try await TestServers.login(person, in: role, to: harness.postgres.configuration).connectionString
                logins[person] = (url, URLComponents(string: url)?.user ?? person)
            }
            return Desk(harness: harness, environment: environment, logins: logins)
        }

        func name(_ person: String) -> String { self.logins[person]!.name }

        /// Runs a command as `person` that must succeed; its standard output.
        @discardableResult
        func run(as person: String, _ arguments: String...) async throws -> String { try await self.run(as: person, arguments) }

        @discardableResult
        func run(as person: String, _ arguments: [String]) async throws -> String {
            try await ChildProcess.run(GatewayBinary.path, arguments, environment: self.environment(person))
        }

        /// Runs a command as `person`; its exit code, output and error output.
        func status(as person: String, _ arguments: String...) async throws -> (Int32, String, String) { try await self.status(as: person, arguments) }

        func status(as person: String, _ arguments: [String]) async throws -> (Int32, String, String) {
            let child = try ChildProcess.start(GatewayBinary.path, arguments, environment: self.environment(person))
            let code = await child.wait()
            return (code, child.output, child.errorOutput)
        }

        func environment(_ person: String) -> [String: String] {
            var environment = self.environment
            environment["DATABASE_URL"] = self.logins[person]!.url
            return environment
        }
    }

    @Test func customerCommandsResetBlockAndTierWithTheirAuditRows() async throws {
        let desk = try await Desk.make()
        let (achieng, sender, otieno, recipient) = try await desk.harness.senderAndRecipient()
        let who = ["--reason", "caller verified with national ID"]

        // A PIN reset is asked by one person and approved by another.
        let asked = try await desk.run(as: "wanjiru", ["customer", "reset-pin", achieng] + who)
        #expect(asked.contains("PIN reset for \(sender.masked), asked by \(desk.name("wanjiru"))"), "\(asked)")
        let resetID = try #require(asked.split(separator: " ").dropFirst().first.flatMap { Int($0.dropFirst().dropLast()) }, "\(asked)")
        try await desk.harness.wallet.verifyPIN(sender, pin: TypedPINs.achieng)
        let operatorOnly = try await desk.status(as: "wanjiru", ["ledger", "approve", String(resetID), "--reason", "mine"])
        #expect(operatorOnly.0 == 1 && operatorOnly.2.contains("only an approver"), "\(operatorOnly)")
        #expect(try await desk.run(as: "kamau", ["ledger", "approve", String(resetID), "--reason", "ID seen"]).contains("the next dial sets a new PIN"))
        await #expect(throws: WalletError.pinResetRequired) { try await desk.harness.wallet.verifyPIN(sender, pin: TypedPINs.achieng) }
        #expect(try await desk.run(as: "wanjiru", ["customer", "show", achieng, "--reason", "caller verified"]).contains("PIN reset: the next dial must set a new PIN"))
        try await desk.harness.wallet.completePINReset(sender, new: TypedPINs.newPIN)

        #expect(try await desk.run(as: "wanjiru", ["customer", "block", achieng] + who).contains("blocked \(sender.value)"))
        #expect(try await desk.run(as: "wanjiru", ["customer", "block", achieng] + who).contains("already blocked"))
        // A report login reads, and changes nothing.
        #expect(try await desk.status(as: "auditor", ["customer", "unblock", achieng] + who).0 == 1)
        await #expect(throws: WalletError.blocked) {
            try await desk.harness.wallet.send(from: sender, to: recipient, amount: .shillings(10), key: IdempotencyKey("cli-1")!)
        }
        let shown = try await desk.run(as: "auditor", ["customer", "show", achieng, "--json", "--reason", "reconciliation sample"])
        let view = try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any]
        #expect(view?["status"] as? String == "blocked" && view?["tier"] as? String == "default", "\(shown)")
        #expect(try await desk.run(as: "wanjiru", ["customer", "unblock", achieng] + who).contains("unblocked"))
        _ = try await desk.harness.wallet.send(from: sender, to: recipient, amount: .shillings(10), key: IdempotencyKey("cli-2")!)

        let unknownTier = try await desk.status(as: "wanjiru", ["customer", "tier", otieno, "platinum"] + who)
        #expect(unknownTier.0 == 1 && unknownTier.2.contains("no tier platinum"), "\(unknownTier)")
        try await desk.harness.wallet.applyConfiguration(
            tiers: [
                KYCTier(name: "standard", perTransaction: 100, daily: 100, maxBalance: 100),
                KYCTier(name: "full", perTransaction: 100, daily: 100, maxBalance: 100),
            ],
            defaultTier: "standard", settings: [:]
        )
        #expect(try await desk.run(as: "wanjiru", ["customer", "tier", otieno, "full"] + who).contains("tier full"))
        #expect(try await desk.harness.wallet.customer(recipient).tier == "full")
        let missingReason = try await desk.status(as: "wanjiru", "customer", "block", otieno, "--reason", " ")
        #expect(missingReason.0 == 2)
        // An SMS from the desk is audited like every other change.
        #expect(try await desk.run(as: "wanjiru", ["sms", "send", "--to", otieno, "--text", "Your case 8812 is closed", "--reason", "ticket 8812"]).contains("queued"))

        let trail = try await desk.run(as: "auditor", "audit", "--number", achieng)
        for action in ["pin.reset_requested", "pin.reset", "ledger.pin_reset_approved", "pin.reset_completed", "customer.blocked", "customer.unblocked"] {
            #expect(trail.contains(" \(action)"), "\(action) in \(trail)")
        }
        let otienoTrail = try await desk.run(as: "auditor", "audit", "--number", otieno)
        #expect(otienoTrail.contains("\(desk.name("wanjiru")) customer.tier — caller verified with national ID"), "\(otienoTrail)")
        #expect(otienoTrail.contains("\(desk.name("wanjiru")) sms.sent — ticket 8812"), "\(otienoTrail)")
        await desk.harness.finish()
    }

    /// A data subject's erasure from the command line: one person closes the empty wallet and asks,
    /// another approves; the approval destroys the customer's data key, and the desk then sees the
    /// customer as erased while the ledger stays balanced.
    @Test func anErasureIsAskedByOnePersonAndApprovedByAnother() async throws {
        let desk = try await Desk.make()
        let local = freshLocal()
        let msisdn = try await desk.harness.customer(local, name: "Erasable Wanjiru", pin: TypedPINs.achieng)
        let who = ["--reason", "data subject request DSR-7, identity checked"]
        let (open, _, openError) = try await desk.status(as: "wanjiru", ["customer", "erase", local] + who)
        #expect(open == 1 && openError.contains("only a closed wallet is erased"), "\(openError)")
        #expect(try await desk.run(as: "wanjiru", ["customer", "close", local] + who).contains("closed \(msisdn.value)"))
        // A close is one person's change: it may be undone, until an erasure is asked for.
        #expect(try await desk.run(as: "wanjiru", ["customer", "reopen", local] + who).contains("reopened \(msisdn.value)"))
        #expect(try await desk.run(as: "wanjiru", ["customer", "close", local] + who).contains("closed \(msisdn.value)"))
        let asked = try await desk.run(as: "wanjiru", ["customer", "erase", local] + who)
        #expect(asked.contains("erasure of the personal data of \(msisdn.masked), asked by \(desk.name("wanjiru"))"), "\(asked)")
        let id = try #require(asked.split(separator: " ").dropFirst().first.flatMap { Int($0.dropFirst().dropLast()) }, "\(asked)")
        let (reopened, _, reopenError) = try await desk.status(as: "wanjiru", ["customer", "reopen", local] + who)
        #expect(reopened == 1 && reopenError.contains("waits for an approver"), "\(reopenError)")
        let (own, _, ownError) = try await desk.status(as: "wanjiru", ["ledger", "approve", String(id)] + who)
        #expect(own != 0 && ownError.contains("approver"), "an operator may not approve: \(ownError)")
        let approved = try await desk.run(as: "kamau", ["ledger", "approve", String(id)] + who)
        #expect(approved.contains("approved #\(id)") && approved.contains("keys sweep"), "\(approved)")
        // The number is no longer anyone's: support finds nobody under it.
        let (shown, _, shownError) = try await desk.status(as: "chebet", ["customer", "show", local] + who)
        #expect(shown == 1 && shownError.contains("is not registered"), "\(shownError)")
        // The key custodian's sweep (the key store's owner: the desk's PERSONAL_DATA_KEYS_URL) destroys it, once.
        #expect(try await desk.run(as: "chebet", ["keys", "sweep"]).contains("destroyed 1 data key(s)"))
        #expect(try await desk.run(as: "chebet", ["keys", "sweep"]).contains("destroyed 0 data key(s)"))
        try await desk.harness.audit()
        await desk.harness.finish()
    }

    @Test func ledgerCommandsNeedASecondOperatorAndTheAuditExitsNonZeroOnABreach() async throws {
        let desk = try await Desk.make()
        let (achieng, sender, otieno, recipient) = try await desk.harness.senderAndRecipient()
        let maker = ["--reason", "M-Pesa paid, wallet not credited (ticket 8812)"]
        let checker = ["--reason", "checked the M-Pesa statement"]

        let asked = try await desk.run(as: "chebet", ["ledger", "adjust", "--to", otieno, "--amount", "250.50", "--from-suspense"] + maker)
        let id = try #require(asked.split(separator: " ").dropFirst().first.flatMap { Int($0.dropFirst().dropLast()) }, "\(asked)")
        #expect(asked.contains("adjustment: KES 250.50 to \(recipient.masked) from suspense"), "\(asked)")
        #expect(try await desk.run(as: "auditor", "ledger", "requests").contains("#\(id)\tpending"))
        #expect(try await desk.harness.wallet.balances(recipient).main == .zero, "nothing moves before approval")
        let own = try await desk.status(as: "chebet", ["ledger", "approve", String(id)] + maker)
        #expect(own.0 == 1 && own.2.contains("another approver must"), "\(own)")
        #expect(try await desk.harness.wallet.balances(recipient).main == .zero)
        #expect(try await desk.run(as: "kamau", ["ledger", "approve", String(id)] + checker).contains("approved #\(id)"))
        #expect(try await desk.harness.wallet.balances(recipient).main == Amount(cents: 25_050))
        let both = try await desk.status(
            as: "chebet", "ledger", "adjust", "--to", otieno, "--amount", "1", "--from-suspense", "--to-suspense", "--reason", "b")
        #expect(both.0 == 2)
        let typedName = try await desk.status(
            as: "chebet", "ledger", "adjust", "--to", otieno, "--amount", "1", "--from-suspense", "--operator", "kamau", "--reason", "b")
        #expect(typedName.0 == 64 || typedName.0 == 2, "--operator is gone: who asks is the login")

        // A wrong send, reversed by two operators.
        let sent = try await desk.harness.wallet.send(from: sender, to: recipient, amount: .shillings(100), key: IdempotencyKey("cli-wrong")!)
        let reversal = try await desk.run(as: "wanjiru", ["ledger", "reverse", sent.key] + maker)
        let reversalID = try #require(reversal.split(separator: " ").dropFirst().first.flatMap { Int($0.dropFirst().dropLast()) })
        #expect(try await desk.run(as: "kamau", ["ledger", "approve", String(reversalID)] + checker).contains("transfer reversal:\(sent.key)"))
        #expect(try await desk.harness.wallet.balances(sender).main == .shillings(1_000), "the 100 came back")
        let rejected = try await desk.run(as: "wanjiru", ["ledger", "adjust", "--to", achieng, "--amount", "5", "--to-suspense"] + maker)
        let rejectedID = try #require(rejected.split(separator: " ").dropFirst().first.flatMap { Int($0.dropFirst().dropLast()) })
        #expect(try await desk.run(as: "kamau", ["ledger", "reject", String(rejectedID)] + checker).contains("rejected #\(rejectedID)"))
        #expect(try await desk.run(as: "auditor", "ledger", "requests").contains("no requests"))
        #expect(try await desk.run(as: "auditor", "ledger", "requests", "--all").split(separator: "\n").count == 3)

        let audit = try await desk.run(as: "auditor", "ledger", "audit")
        #expect(audit.contains("ok      balances sum to zero") && audit.contains("ledger audit passed"), "\(audit)")
        // A hold no payout explains: the audit names it and exits 1.
        try await desk.harness.postgres.query(
            """
            INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status)
            SELECT 'orphan-hold', a.id, p.id, 100, 'withdrawal', 'pending' FROM accounts a JOIN customers c ON c.id = a.customer_id, accounts p
            WHERE c.msisdn = \(sender.value) AND a.kind = 'main' AND p.kind = 'payouts_in_flight'
            """
        )
        let breach = try await desk.status(as: "auditor", "ledger", "audit", "--json")
        #expect(breach.0 == 1 && breach.1.contains("orphan-hold"), "\(breach)")
        // The hold is written by hand: the audit also names it as a transfer with no cause.
        let text = try await desk.status(as: "auditor", "ledger", "audit")
        #expect(text.0 == 1 && text.1.contains("BREACH  every transfer names its cause") && text.1.contains("transfer orphan-hold (withdrawal"), "\(text)")
        await desk.harness.finish()
    }

    @Test func reviewItemsAreResolvedAndTheDailyReportReconcilesInCSV() async throws {
        let desk = try await Desk.make()
        let (achieng, sender, otieno, recipient) = try await desk.harness.senderAndRecipient()
        _ = try await desk.harness.wallet.send(
            from: sender, to: recipient, amount: .shillings(500), fee: .shillings(7), key: IdempotencyKey("cli-fee")!)
        try await desk.harness.book.keepForReview(kind: "stk", reference: "ws_CO_nobody", reason: "unknown CheckoutRequestID", body: "{}")
        let items = try await desk.run(as: "auditor", "mpesa", "review")
        #expect(items.contains("ws_CO_nobody"))
        let item = try #require(try await desk.harness.book.reviewItems().first)
        let resolved = try await desk.run(
            as: "kamau", "mpesa", "resolve", "#\(item.id)", "--outcome", "refunded", "--note", "refunded on the M-Pesa portal, ref RFD1"
        )
        #expect(resolved.contains("resolved #\(item.id): refunded"))
        #expect(try await desk.run(as: "auditor", "mpesa", "review").contains("nothing to review"))
        #expect(try await desk.run(as: "auditor", "mpesa", "review", "--all").contains("resolved refunded by \(desk.name("kamau"))"))
        #expect(try await desk.status(as: "kamau", "mpesa", "resolve", "\(item.id)", "--outcome", "credited", "--note", "again").0 == 1)

        let today = try await desk.harness.postgres.query("SELECT to_char(now() AT TIME ZONE 'Africa/Nairobi', 'YYYY-MM-DD')").single()!.decode(
            String.self, column: 0)
        let csv = try await desk.run(as: "auditor", "report", "daily", "--date", today, "--csv")
        let lines = csv.split(separator: "\n").map(String.init)
        #expect(lines.first == "date,section,item,count,amount_kes")
        // The funding deposit of 1,000 credited; a fee of 7 earned; nothing unexplained.
        #expect(lines.contains("\(today),deposits,credited,1,1000.00"), "\(csv)")
        #expect(lines.contains("\(today),fees,earned,,7.00"), "\(csv)")
        #expect(lines.contains("\(today),ledger,mpesa_float net,,-1000.00"), "\(csv)")
        #expect(lines.filter { $0.contains(",difference,") }.allSatisfy { $0.hasSuffix(",0.00") }, "\(csv)")
        let text = try await desk.run(as: "auditor", "report", "daily", "--date", today)
        #expect(text.contains("everything reconciles"), "\(text)")
        #expect(try await desk.status(as: "auditor", "report", "daily", "--date", "2026-13-01").0 == 1)
        _ = (achieng, otieno)
        await desk.harness.finish()
    }
}
