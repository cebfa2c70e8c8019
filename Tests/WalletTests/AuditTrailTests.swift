import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import MPesaBook
import Wallet

/// The audit trail: written with each effect, never changed, and what the support desk reads.
@Suite struct AuditTrailTests {
    let achieng = MSISDN("254712345678")!
    let otieno = MSISDN("254722000111")!

    @Test func aLockAndAnOperatorsUnlockAreInTheTrailWithWhoWhyAndTheValuesBeforeAndAfter() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
        for _ in 0..<3 { _ = try? await ledger.wallet.verifyPIN(self.achieng, pin: "9999") }
        #expect(try await ledger.wallet.customer(self.achieng).isLocked())

        let wanjiru = try await ledger.staff("wanjiru", "ussd_operator")
        let action = try OperatorAction(reason: "caller verified with ID")
        #expect(try await wanjiru.wallet.unlockPIN(self.achieng, by: action))
        try await ledger.wallet.verifyPIN(self.achieng, pin: "4826")
        #expect(try await wanjiru.wallet.unlockPIN(self.otieno, by: action) == false, "an unknown number changes nothing")

        let trail = try await ledger.wallet.auditTrail(self.achieng)
        #expect(trail.map(\.action) == ["pin.unlocked", "pin.locked"], "newest first")
        let unlock = trail[0], lock = trail[1]
        #expect(lock.actor == "system" && lock.reason == nil)
        #expect(lock.after?.contains("\"locks_in_a_row\": 1") == true, "\(lock.after ?? "")")
        #expect(unlock.actor == wanjiru.name && unlock.reason == "caller verified with ID" && unlock.msisdn == self.achieng.value)
        #expect(unlock.before?.contains("\"failed_pin_attempts\": 3") == true, "\(unlock.before ?? "")")
        #expect(unlock.before?.contains("\"locks_in_a_row\": 1") == true)
        #expect(unlock.after?.contains("\"locked_until\": null") == true, "\(unlock.after ?? "")")
        #expect(unlock.at >= lock.at)
        #expect(try await ledger.wallet.auditTrail(self.otieno).isEmpty)
        // A member of staff cannot write another name into the trail: the database records its own.
        try await wanjiru.client.query("INSERT INTO audit_log (actor, action, msisdn, reason) VALUES ('kamau', 'pin.unlocked', \(self.achieng.value), 'x')")
        let forged = try await ledger.postgres.query("SELECT actor, db_user FROM audit_log WHERE reason = 'x'").single()!.decode((String, String).self)
        #expect(forged == (wanjiru.name, wanjiru.name))
        await ledger.shutdown()
    }

    /// The gateway's own login (ussd_app) cannot rewrite the trail, switch its triggers off, write a
    /// transfer or a balance, or grant itself more: Postgres refuses each.
    @Test func theGatewaysLoginCannotRewriteTheTrailOrMoveMoneyByHand() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded(self.achieng.value, cents: 10_000)
        let app = try await ledger.staff("gateway", "ussd_app")
        // Granting itself more grants nothing (Postgres only warns): the DELETE below is still refused.
        try await app.client.query("GRANT DELETE, UPDATE ON audit_log TO CURRENT_USER")
        for statement: PostgresQuery in [
            "DELETE FROM audit_log", "UPDATE audit_log SET reason = 'nothing happened'", "TRUNCATE audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only", "ALTER TABLE transfers DISABLE TRIGGER transfers_apply",
            "INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status) SELECT 'minted', 1, id, 100, 'p2p', 'posted' FROM accounts LIMIT 1",
            "UPDATE accounts SET balance = balance + 100", "UPDATE account_shards SET balance = 0", "DELETE FROM transfers",
            "INSERT INTO accounts (customer_id, kind, balance) SELECT id, 'main', 100 FROM customers LIMIT 1",
            "CREATE TABLE sneaky (a int)",
            "INSERT INTO ledger_decisions (request_id, decision, reason) VALUES (1, 'approve', 'x')",
            "SELECT wallet_carry_out_decision()", "SELECT ledger_add(1, 100)",
            // The batch's fallback (it alone skips the batch's lock of every account) and the
            // trigger's per-row work.
            "SELECT * FROM ledger_move_each('[]'::jsonb, 1, 2, 3)", "SELECT ledger_apply_transfer(t) FROM transfers t LIMIT 1",
            "UPDATE customers SET tier = NULL", "UPDATE kyc_tiers SET per_transaction = 1",
            // A sealed name, or its index, once written.
            "UPDATE customers SET name_sealed = NULL", "UPDATE customers SET name_index = NULL",
            // A payout exists only with its hold, and pays what it was made for.
            "INSERT INTO payouts (id, customer_id, msisdn, amount, transfer_id) SELECT 'forged', id, msisdn, 100, 'x' FROM customers LIMIT 1",
            // Only an approved request resets a PIN.
            "UPDATE customers SET pin_reset_required = true",
            "CREATE TEMP TABLE ledger_settings (name text, value bigint)",
        ] {
            let error = await #expect(throws: PostgresError.self, "\(statement)") { try await app.client.query(statement) }
            #expect(["42501", "42809"].contains(error?.sqlState ?? ""), "\(statement): \(String(describing: error?.sqlState))")
        }
        // What it may do, it does through the wallet's functions: a send, as the gateway makes it;
        // a withdrawal's hold, whose payout then keeps its phone and amount.
        let otieno = try await ledger.funded(self.otieno.value, cents: 0)
        _ = try await app.wallet.send(from: achieng, to: otieno, amount: .shillings(10), key: IdempotencyKey("app-1")!)
        let payout = try await app.book.reserveWithdrawal(achieng, amount: .shillings(20), key: IdempotencyKey("app-2")!)
        let rewritten = await #expect(throws: PostgresError.self) {
            try await app.client.query("UPDATE payouts SET msisdn = '254799999999', amount = 99999999 WHERE id = \(payout.id)")
        }
        #expect(rewritten?.sqlState == "23001", "restrict_violation")
        // Nor blank the number of a payment in flight (which would skip a callback's phone check):
        // not directly, and not by settling it to blank the number and reopening it.
        let blanked = await #expect(throws: PostgresError.self) { try await app.client.query("UPDATE payouts SET msisdn = NULL WHERE id = \(payout.id)") }
        #expect(blanked?.sqlState == "23001", "restrict_violation")
        let deposit = try await app.book.beginDeposit(achieng, amount: .shillings(30), key: IdempotencyKey("app-3")!)
        try await app.client.query("UPDATE deposits SET status = 'failed', result_code = 1 WHERE id = \(deposit.id)")
        let reopened = await #expect(throws: PostgresError.self) {
            try await app.client.query("UPDATE deposits SET status = 'pending', result_code = NULL WHERE id = \(deposit.id)")
        }
        #expect(reopened?.sqlState == "23001", "restrict_violation")
        let other = try await app.book.beginDeposit(achieng, amount: .shillings(40), key: IdempotencyKey("app-4")!)
        let uncoded = await #expect(throws: PostgresError.self) {
            try await app.client.query("UPDATE deposits SET status = 'failed', msisdn = NULL WHERE id = \(other.id)")
        }
        #expect(uncoded?.sqlState == "23514", "a failure says how: check_violation")
        // Refused callbacks are written, never changed or removed, by the gateway.
        try await app.wallet.recordRefusedCallback(route: "/mpesa/c2b/confirmation", reason: "wrong token", source: "203.0.113.9", status: 404)
        for statement: PostgresQuery in ["DELETE FROM callback_refusals", "UPDATE callback_refusals SET source = 'elsewhere'"] {
            let error = await #expect(throws: PostgresError.self, "\(statement)") { try await app.client.query(statement) }
            #expect(error?.sqlState == "42501", "\(statement)")
        }
        #expect(try await ledger.wallet.balances(otieno).main == .shillings(10))
        try await ledger.audit()
        await ledger.shutdown()
    }

    @Test func theDatabaseRefusesToChangeOrRemoveAnyRowEvenToTheGatewaysOwnRole() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
        try await ledger.wallet.unlockPIN(self.achieng, by: try OperatorAction(reason: "test"))
        // The role that ran the migrations owns the table, and still cannot rewrite it.
        for statement: PostgresQuery in [
            "UPDATE audit_log SET reason = 'nothing happened'", "DELETE FROM audit_log", "TRUNCATE audit_log",
        ] {
            let error = await #expect(throws: PostgresError.self) { try await ledger.postgres.query(statement) }
            #expect(error?.sqlState == "42501", "insufficient_privilege: \(String(describing: error))")
        }
        // With its privileges granted back, the trigger still refuses.
        try await ledger.postgres.query("GRANT UPDATE, DELETE ON audit_log TO CURRENT_USER")
        for statement: PostgresQuery in ["UPDATE audit_log SET reason = 'nothing happened'", "DELETE FROM audit_log"] {
            let error = await #expect(throws: PostgresError.self) { try await ledger.postgres.query(statement) }
            #expect(error?.sqlState == "42501")
        }
        #expect(try await ledger.wallet.auditTrail(self.achieng).map(\.reason) == ["test"])
        await ledger.postgres.shutdown()
    }

    /// `ussd-gateway db login`: a login in one group, its password stored only as a SCRAM
    /// verifier computed here (the server never sees the password); one login, one role.
    @Test func aLoginIsCreatedInOneGroupWithOnlyAVerifierOfItsPassword() async throws {
        let ledger = try await Ledger.make()
        let name = "desk_" + UUID().uuidString.prefix(8).lowercased()
        let password = "correct horse battery staple"
        #expect(try await DatabaseRoles.createLogin(ledger.postgres, name: name, group: "ussd_operator", password: password) == .created)
        #expect(try await DatabaseRoles.createLogin(ledger.postgres, name: name, group: "ussd_operator", password: nil) == .updated)
        let stored = try await ledger.postgres.query("SELECT rolpassword, pg_has_role(\(name), 'ussd_operator', 'MEMBER') FROM pg_authid WHERE rolname = \(name)")
            .single()!.decode((String, Bool).self)
        #expect(stored.0.hasPrefix("SCRAM-SHA-256$4096:") && !stored.0.contains(password) && stored.1, "\(stored)")
        await #expect(throws: WalletError.self) { try await DatabaseRoles.createLogin(ledger.postgres, name: name, group: "ussd_approver", password: nil) }
        await #expect(throws: WalletError.self) { try await DatabaseRoles.createLogin(ledger.postgres, name: "ussd", group: "ussd_app", password: nil) }
        await #expect(throws: WalletError.self) { try await DatabaseRoles.createLogin(ledger.postgres, name: "Robert'); --", group: "ussd_app", password: nil) }
        await ledger.shutdown()
    }

    @Test func operatorActionsNeedAWhy() {
        #expect(throws: WalletError.self) { try OperatorAction(reason: "") }
        #expect(throws: WalletError.self) { try OperatorAction(reason: "  ") }
        #expect(throws: WalletError.self) { try OperatorAction(reason: "x\u{1B}[2J") }
        #expect(throws: WalletError.self) { try OperatorAction(reason: String(repeating: "w", count: 501)) }
        #expect((try? OperatorAction(reason: " caller verified "))?.reason == "caller verified")
    }

    @Test func theOverviewShowsLockBalancesHoldsAndTheLastMovements() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "sw")
        try await ledger.wallet.register(msisdn: self.otieno, name: "Otieno", pin: "7391", language: "en")
        let deposit = try await ledger.book.beginDeposit(self.achieng, amount: .shillings(1_000), key: IdempotencyKey("fund-1")!)
        try await ledger.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_1")
        try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_1", receipt: "RCPT1", amount: .shillings(1_000), phone: self.achieng)
        for index in 0..<25 {
            _ = try await ledger.wallet.send(from: self.achieng, to: self.otieno, amount: .shillings(10), key: IdempotencyKey("send-\(index)")!)
        }
        let payout = try await ledger.book.reserveWithdrawal(self.achieng, amount: .shillings(100), key: IdempotencyKey("withdraw-1")!)
        _ = try? await ledger.wallet.verifyPIN(self.achieng, pin: "9999")

        let reading = try OperatorAction(reason: "caller verified with national ID")
        let overview = try #require(try await ledger.wallet.overview(self.achieng, by: reading))
        #expect(overview.name == "Achieng" && overview.customer.language == "sw" && overview.customer.status == .active)
        #expect(overview.failedPINAttempts == 1 && overview.locksInARow == 0 && !overview.customer.isLocked())
        #expect(overview.balances.main == .shillings(750) && overview.balances.held == .shillings(100) && overview.balances.savings == .shillings(0))
        #expect(overview.holds.map(\.payout) == [payout.id] && overview.holds.first?.amount == .shillings(100))
        #expect(overview.movements.count == 20, "the last 20")
        #expect(overview.movements.first?.key == "withdrawal:" + payout.id || overview.movements.first?.key == "send-24", "\(overview.movements.first?.key ?? "")")
        #expect(try await ledger.wallet.overview(MSISDN("254733000000")!, by: reading) == nil)
        // The read is in the audit trail, with why and what was shown.
        let viewed = try await ledger.wallet.auditTrail(self.achieng).filter { $0.action == "customer.viewed" }
        #expect(viewed.count == 1 && viewed.first?.reason == "caller verified with national ID" && viewed.first?.after?.contains("name") == true)
        await ledger.postgres.shutdown()
    }
}
