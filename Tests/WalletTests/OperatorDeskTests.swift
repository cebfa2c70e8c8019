import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import MPesaBook
import Wallet

/// The support desk's commands on the wallet: PIN resets, blocks, tiers, corrections under four
/// eyes, reversals, fees, the ledger audit, the daily reconciliation and review items closed out.
@Suite struct OperatorDeskTests {
    let verified = try! OperatorAction(reason: "caller verified with national ID")
    let checked = try! OperatorAction(reason: "checked the M-Pesa statement")

    @Test func aPINResetTakesTwoPeopleAndTheNewPINMustBeSetBeforeAnyPINWorks() async throws {
        let ledger = try await Ledger.make()
        let (wanjiru, kamau) = (try await ledger.staff("wanjiru", "ussd_operator"), try await ledger.staff("kamau"))
        let achieng = try await ledger.funded("254712345678", cents: 10_000)
        for _ in 0..<3 { _ = try? await ledger.wallet.verifyPIN(achieng, pin: "9999") }
        #expect(try await ledger.wallet.customer(achieng).isLocked())

        let request = try await wanjiru.wallet.requestPINReset(achieng, by: self.verified)
        #expect(request.kind == .pinReset && request.status == "pending" && request.requestedBy == wanjiru.name)
        await #expect(throws: LedgerDeskError.pinResetPending(achieng.value)) { try await kamau.wallet.requestPINReset(achieng, by: self.checked) }
        await #expect(throws: WalletError.notRegistered) { try await wanjiru.wallet.requestPINReset(MSISDN("254799000111")!, by: self.verified) }
        #expect(try await !ledger.wallet.customer(achieng).pinResetRequired, "nothing changes on a request")
        // An operator may ask, not decide.
        await #expect(throws: LedgerDeskError.self) { try await wanjiru.wallet.approve(request.id, by: self.verified) }
        _ = try await kamau.wallet.approve(request.id, by: self.checked)

        let customer = try await ledger.wallet.customer(achieng)
        #expect(customer.pinResetRequired && !customer.isLocked(), "an approved reset lifts the lock")
        // Not even the old, right PIN works until a new one is set.
        await #expect(throws: WalletError.pinResetRequired) { try await ledger.wallet.verifyPIN(achieng, pin: "4826") }
        await #expect(throws: WalletError.weakPIN) { try await ledger.wallet.completePINReset(achieng, new: "1234") }
        try await ledger.wallet.completePINReset(achieng, new: "5913")
        await #expect(throws: WalletError.tokenExpired) { try await ledger.wallet.completePINReset(achieng, new: "6024") }
        try await ledger.wallet.verifyPIN(achieng, pin: "5913")
        await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(achieng, pin: "4826") }
        #expect(try await ledger.wallet.customer(achieng).pinResetCompletedAt != nil, "the database notes when, for the cooling-off")

        #expect(
            try await ledger.actions(achieng) == ["pin.reset_completed", "ledger.pin_reset_approved", "pin.reset", "pin.reset_requested", "pin.locked"])
        let trail = try await ledger.wallet.auditTrail(achieng)
        #expect(trail[3].actor == wanjiru.name && trail[3].reason == "caller verified with national ID")
        #expect(trail[2].actor == kamau.name && trail[2].before?.contains("\"requested_by\": \"\(wanjiru.name)\"") == true)
        #expect(trail[2].before?.contains("\"locks_in_a_row\": \"1\"") == true && trail[2].after?.contains("\"pin_reset_required\": \"true\"") == true)
        #expect(try await ledger.queued(achieng, "pin_reset").count == 1)
        try await ledger.audit()
        await ledger.shutdown()
    }

    /// After a PIN reset, large sends and withdrawals wait out the cooling-off window; smaller
    /// ones, the balance and deposits work. Time is passed in.
    @Test func largeMovementsWaitOutTheCoolingOffAfterAPINReset() async throws {
        let clock = TestClock()
        let ledger = try await Ledger.make(now: { clock.now })
        let (wanjiru, kamau) = (try await ledger.staff("wanjiru", "ussd_operator"), try await ledger.staff("kamau"))
        let achieng = try await ledger.funded("254712345678", cents: 500_000)
        _ = try await kamau.wallet.approve(try await wanjiru.wallet.requestPINReset(achieng, by: self.verified).id, by: self.checked)
        try await ledger.wallet.completePINReset(achieng, new: "5913")
        let customer = try await ledger.wallet.customer(achieng)
        clock.now = customer.pinResetCompletedAt!.addingTimeInterval(3600)
        // The default window: 24 hours, KES 1,000 in all.
        let until = customer.pinResetCompletedAt!.addingTimeInterval(86_400)
        await #expect(throws: WalletError.coolingOff(until: until)) { try await ledger.wallet.checkCoolingOff(customer, amount: .shillings(1_001)) }
        try await ledger.wallet.checkCoolingOff(customer, amount: .shillings(1_000))
        // Small amounts add up: after 600 sent (and its fee), 400 more is refused.
        let otieno = try await ledger.funded("254722000111", cents: 0)
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(600), fee: .shillings(5), key: key("cool-1"))
        await #expect(throws: WalletError.coolingOff(until: until)) { try await ledger.wallet.checkCoolingOff(customer, amount: .shillings(400)) }
        try await ledger.wallet.checkCoolingOff(customer, amount: .shillings(395))
        clock.now = until
        try await ledger.wallet.checkCoolingOff(customer, amount: .shillings(4_000))
        await ledger.shutdown()
    }

    /// The database, not the code, keeps four eyes: the same login asking and approving is
    /// refused, an operator cannot approve, a large request needs two approvers, and no adjustment
    /// passes LEDGER_ADJUST_MAX.
    @Test func fourEyesAreTheDatabasesIdentitiesNotTypedNames() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 10_000)
        try await ledger.wallet.applyLedgerSettings(dualApprovalAbove: 100_000, adjustMax: 1_000_000)
        let (amina, baraka, chebet) = (try await ledger.staff("amina", "ussd_operator"), try await ledger.staff("baraka"), try await ledger.staff("chebet"))

        // Asking and approving as one login: refused by the database, whatever the reason says.
        let own = try await baraka.wallet.requestAdjustment(achieng, amount: .shillings(50), direction: .fromSuspense, by: self.verified)
        await #expect(throws: LedgerDeskError.sameOperator) { try await baraka.wallet.approve(own.id, by: self.checked) }
        let direct = await #expect(throws: PostgresError.self) {
            try await baraka.client.query("INSERT INTO ledger_decisions (request_id, decision, reason) VALUES (\(own.id), 'approve', 'mine')")
        }
        #expect(direct?.sqlState == "UL003")
        // An operator only may ask, never decide; nor write a request's decision by hand.
        await #expect(throws: LedgerDeskError.notPermitted("only an approver (ussd_approver) may decide a request")) {
            try await amina.wallet.approve(own.id, by: self.checked)
        }
        let byHand = await #expect(throws: PostgresError.self) {
            try await baraka.client.query("UPDATE ledger_requests SET status = 'approved', decided_by = 'someone' WHERE id = \(own.id)")
        }
        #expect(byHand?.sqlState == "42501", "insufficient_privilege")
        // Nor by acting as a group role (ask as ussd_operator, approve as oneself)...
        try await baraka.client.withConnection { connection in
            try await connection.query("SET ROLE ussd_operator")
            let grouped = await #expect(throws: PostgresError.self) {
                try await connection.query(
                    "INSERT INTO ledger_requests (kind, msisdn, amount, direction, reason) VALUES ('adjustment', \(achieng.value), 500, 'from_suspense', 'x')")
            }
            #expect(grouped?.sqlState == "UL004")
            try await connection.query("RESET ROLE")
        }
        // ...nor by shadowing the settings with a temporary table.
        let shadow = await #expect(throws: PostgresError.self) { try await baraka.client.query("CREATE TEMP TABLE ledger_settings (name text, value bigint)") }
        #expect(shadow?.sqlState == "42501")
        #expect(try await chebet.wallet.approve(own.id, by: self.checked).status == "approved")

        // Above the dual-approval bound: two different approvers.
        let large = try await amina.wallet.requestAdjustment(achieng, amount: .shillings(1_500), direction: .fromSuspense, by: self.verified)
        #expect(large.approvalsNeeded == 2)
        let first = try await baraka.wallet.approve(large.id, by: self.checked)
        #expect(first.status == "pending" && first.approvals == 1 && first.transfer == nil)
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(150), "one approval moves nothing")
        await #expect(throws: LedgerDeskError.alreadyApprovedByYou(large.id)) { try await baraka.wallet.approve(large.id, by: self.checked) }
        let second = try await chebet.wallet.approve(large.id, by: self.checked)
        #expect(second.status == "approved" && second.decidedBy == chebet.name && second.transfer == "adjustment:\(large.id)")
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(1_650))

        // Above LEDGER_ADJUST_MAX: refused when asked.
        await #expect(throws: LedgerDeskError.self) {
            try await amina.wallet.requestAdjustment(achieng, amount: .shillings(10_001), direction: .fromSuspense, by: self.verified)
        }
        try await ledger.audit()
        await ledger.shutdown()
    }

    @Test func aBlockedCustomerCanOnlyCheckTheBalance() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 100_000)
        #expect(try await ledger.wallet.block(achieng, by: self.verified) == .changed)
        #expect(try await ledger.wallet.block(achieng, by: self.verified) == .unchanged)

        await #expect(throws: WalletError.blocked) { try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(10), key: key("b1")) }
        await #expect(throws: WalletError.blocked) { try await ledger.wallet.save(achieng, amount: .shillings(10), key: key("b2")) }
        await #expect(throws: WalletError.blocked) { try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(10), key: key("b3")) }
        await #expect(throws: WalletError.blocked) { try await ledger.book.beginDeposit(achieng, amount: .shillings(10), key: key("b4")) }
        // Money may still reach them from others, and the balance may be checked.
        _ = try await ledger.wallet.send(from: otieno, to: achieng, amount: .shillings(5), key: key("b5"))
        try await ledger.wallet.verifyPIN(achieng, pin: "4826")
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(1_005))

        #expect(try await ledger.wallet.unblock(achieng, by: self.checked) == .changed)
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(10), key: key("b6"))
        #expect(try await ledger.actions(achieng) == ["customer.unblocked", "customer.blocked"])
        let (blockedSMS, unblockedSMS) = (try await ledger.queued(achieng, "account_blocked"), try await ledger.queued(achieng, "account_unblocked"))
        #expect(blockedSMS.count == 1 && unblockedSMS.count == 1)
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func anAdjustmentTakesEffectOnlyWhenAnotherPersonApprovesIt() async throws {
        let ledger = try await Ledger.make()
        let (wanjiru, kamau) = (try await ledger.staff("wanjiru"), try await ledger.staff("kamau"))
        let achieng = try await ledger.funded("254712345678", cents: 10_000)
        let request = try await wanjiru.wallet.requestAdjustment(achieng, amount: .shillings(500), direction: .fromSuspense, by: self.verified)
        #expect(request.status == "pending" && request.amount == 50_000 && request.requestedBy == wanjiru.name)
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(100), "nothing moves on a request")

        await #expect(throws: LedgerDeskError.sameOperator) { try await wanjiru.wallet.approve(request.id, by: self.checked) }
        // The database holds the rule too, whatever the code does.
        let error = await #expect(throws: PostgresError.self) {
            try await ledger.postgres.query(
                "UPDATE ledger_requests SET status = 'rejected', decided_by = \(wanjiru.name.uppercased()), decided_at = now() WHERE id = \(request.id)"
            )
        }
        #expect(error?.constraint == "ledger_requests_four_eyes")
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(100))

        let approved = try await kamau.wallet.approve(request.id, by: self.checked)
        #expect(approved.status == "approved" && approved.decidedBy == kamau.name && approved.transfer == "adjustment:\(request.id)")
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(600))
        #expect(try await ledger.systemBalance("suspense") == -50_000)
        await #expect(throws: LedgerDeskError.alreadyDecided(request.id, "approved")) { try await kamau.wallet.approve(request.id, by: self.checked) }
        await #expect(throws: LedgerDeskError.self) { try await kamau.wallet.reject(request.id, by: self.checked) }

        // A debit larger than the customer can spend is refused, and stays pending until rejected.
        let tooMuch = try await kamau.wallet.requestAdjustment(achieng, amount: .shillings(601), direction: .toSuspense, by: self.checked)
        await #expect(throws: LedgerDeskError.insufficientFunds) { try await wanjiru.wallet.approve(tooMuch.id, by: self.verified) }
        #expect(try await ledger.wallet.ledgerRequests().map(\.id) == [tooMuch.id])
        #expect(try await wanjiru.wallet.reject(tooMuch.id, by: self.verified).status == "rejected")
        #expect(try await ledger.wallet.ledgerRequests().isEmpty)
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(600))

        #expect(
            try await ledger.actions(achieng) == [
                "ledger.adjustment_rejected", "ledger.adjustment_requested", "ledger.adjustment_approved", "ledger.adjustment_requested",
            ]
        )
        let approval = try await ledger.wallet.auditTrail(achieng)[2]
        #expect(approval.actor == kamau.name && approval.before?.contains("\"requested_by\": \"\(wanjiru.name)\"") == true)
        // Written inside the database as the owner, and still naming the login that decided.
        let written = try await ledger.postgres.query("SELECT db_user FROM audit_log WHERE action = 'ledger.adjustment_approved'").single()!
            .decode(String.self, column: 0)
        #expect(written.hasPrefix(kamau.name + " as "), "\(written)")
        #expect(try await ledger.queued(achieng, "adjustment") == [#"{"amount": "50000", "reason": "credit", "reference": "ADJ\#(request.id)"}"#])
        try await ledger.audit()
        await ledger.shutdown()
    }

    @Test func aSendChargesItsFeeToFeeIncomeInTheSameTransactionAndTheLedgerStillSumsToZero() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        let receipt = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(500), fee: .shillings(7), key: key("f1"))
        #expect(receipt.fee == .shillings(7) && receipt.balances.main == .shillings(493))
        #expect(try await ledger.wallet.balances(otieno).main == .shillings(500))
        #expect(try await ledger.systemBalance("fee_income") == 700)
        // A replay charges nothing more and names the same fee.
        let replay = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(500), fee: .shillings(7), key: key("f1"))
        #expect(replay.fee == .shillings(7) && replay.balances.main == .shillings(493))
        #expect(try await ledger.systemBalance("fee_income") == 700)
        let sent = try await ledger.queued(achieng, "sent")
        #expect(sent.count == 1 && sent[0].contains(#""fee": "700""#) && sent[0].contains(#""reason": "fee""#))
        // The amount alone fits, the amount and its fee do not.
        await #expect(throws: WalletError.insufficientFunds) {
            try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(490), fee: .shillings(7), key: key("f2"))
        }
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(493))
        let statement = try await ledger.wallet.statement(achieng, limit: 5).map(\.kind)
        #expect(statement.prefix(2) == ["fee", "p2p"] || statement.prefix(2) == ["p2p", "fee"], "\(statement)")
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func aWithdrawalsFeeIsChargedWithItsHoldAndGivenBackOnceIfThePayoutFails() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        await #expect(throws: WalletError.insufficientFunds, "the amount fits, the amount and its fee do not") {
            try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(995), fee: .shillings(10), key: key("wf0"))
        }
        let paid = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(400), fee: .shillings(10), key: key("wf1"))
        #expect(try await ledger.wallet.balances(achieng).available == .shillings(590))
        #expect(try await ledger.systemBalance("fee_income") == 1_000)
        _ = try await ledger.book.completeWithdrawal(paid.id, providerTransactionID: "B2CFEE1")
        let receipt = try await ledger.queued(achieng, "withdrawal_paid")
        #expect(receipt.count == 1 && receipt[0].contains(#""fee": "1000""#) && receipt[0].contains(#""reason": "fee""#), "\(receipt)")
        let failed = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(100), fee: .shillings(5), key: key("wf2"))
        #expect(try await ledger.wallet.balances(achieng).available == .shillings(485))
        _ = try await ledger.book.failWithdrawal(failed.id, code: 2001, text: "The initiator information is invalid.")
        _ = try await ledger.book.failWithdrawal(failed.id, code: 2001, text: "The initiator information is invalid.")
        #expect(try await ledger.wallet.balances(achieng).available == .shillings(590), "the 100 and its fee of 5 are back, once")
        #expect(try await ledger.systemBalance("fee_income") == 1_000)
        let report = try await ledger.book.dailyReport(date: try await ledger.nairobiToday())
        // Fees charged less the one given back.
        #expect(report.feesEarned == 1_000 && report.comparisons.first { $0.name.hasPrefix("fees") }?.difference == 0, "\(report.comparisons)")
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    /// A connection's first movement may be a refusal that never reads the accounts it names (no
    /// such recipient, no such sender): it is refused as such, not failed. (A record's fields read
    /// before it was assigned once made such a first call fail.)
    @Test func aFreshConnectionsFirstMovementCanBeARefusal() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 10_000)
        let stranger = MSISDN("254799000111")!
        for (from, to, expected) in [(achieng, stranger, WalletError.recipientNotRegistered), (stranger, achieng, WalletError.notRegistered)] {
            var configuration = ledger.postgres.configuration
            configuration.poolSize = 1
            let fresh = PostgresClient(configuration: configuration)
            let wallet = Wallet(postgres: fresh, pins: PINVault(key: Array("test-pepper-of-32-bytes-at-least".utf8)))
            await #expect(throws: expected) { try await wallet.send(from: from, to: to, amount: .shillings(10), key: key("fresh-\(from.value)")) }
            await fresh.shutdown()
        }
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func aTiersLimitsRefuseWhatTheyShouldAndAnOperatorMovesACustomerUp() async throws {
        let ledger = try await Ledger.make()
        let basic = KYCTier(name: "basic", perTransaction: 100_000, daily: 150_000, maxBalance: 200_000)
        let full = KYCTier(name: "full", perTransaction: 1_000_000, daily: 2_000_000, maxBalance: 5_000_000)
        #expect(try await ledger.wallet.applyConfiguration(tiers: [basic, full], defaultTier: "basic", settings: ["pin.lock_minutes": "30"]))
        #expect(
            try await ledger.wallet.applyConfiguration(tiers: [basic, full], defaultTier: "basic", settings: ["pin.lock_minutes": "30"]) == false)
        let achieng = try await ledger.funded("254712345678", cents: 190_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        let juma = try await ledger.funded("254733000222", cents: 150_000)

        await #expect(throws: WalletError.limitExceeded) {
            try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(1_001), key: key("t1"))
        }
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(1_000), key: key("t2"))
        await #expect(throws: WalletError.limitExceeded) {
            try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(501), key: key("t3"))
        }
        await #expect(throws: WalletError.limitExceeded) {
            try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(501), key: key("t4"))
        }
        // Otieno holds 1,000 of at most 2,000: Juma's 1,001 (Juma's own tier allows it) would take him over.
        #expect(try await ledger.wallet.setTier(juma, to: "full", by: self.checked) == .changed)
        await #expect(throws: WalletError.recipientLimit) {
            try await ledger.wallet.send(from: juma, to: otieno, amount: .shillings(1_001), key: key("t5"))
        }
        await #expect(throws: WalletError.limitExceeded) { try await ledger.book.beginDeposit(otieno, amount: .shillings(1_001), key: key("t6")) }
        _ = try await ledger.book.beginDeposit(otieno, amount: .shillings(1_000), key: key("t7"))

        #expect(try await ledger.wallet.setTier(otieno, to: "full", by: self.verified) == .changed)
        #expect(try await ledger.wallet.setTier(otieno, to: "full", by: self.verified) == .unchanged)
        await #expect(throws: WalletError.self) { try await ledger.wallet.setTier(otieno, to: "platinum", by: self.verified) }
        _ = try await ledger.wallet.send(from: juma, to: otieno, amount: .shillings(1_001), key: key("t8"))
        #expect(try await ledger.actions(otieno) == ["customer.tier"])
        #expect(try await ledger.wallet.auditTrail(otieno)[0].after == #"{"tier": "full"}"#)

        // A tier customers hold cannot be removed; the configuration change is refused whole.
        await #expect(throws: WalletError.self) { try await ledger.wallet.applyConfiguration(tiers: [basic], defaultTier: "basic", settings: [:]) }
        #expect(try await ledger.wallet.tiers().map(\.tier.name) == ["basic", "full"])
        // A changed configuration is recorded with what it replaced.
        let wider = KYCTier(name: "basic", perTransaction: 100_000, daily: 300_000, maxBalance: 200_000)
        #expect(try await ledger.wallet.applyConfiguration(tiers: [wider, full], defaultTier: "basic", settings: ["pin.lock_minutes": "30"]))
        let applied = try await ledger.postgres.query(
            "SELECT before->>'tier.basic', after->>'tier.basic' FROM audit_log WHERE action = 'config.applied' ORDER BY id"
        ).map { try $0.decode((String?, String?).self) }
        #expect(applied.count == 2 && applied[0].0 == nil && applied[1].0 == applied[0].1 && applied[1].1?.contains("daily 300000") == true)
        _ = try await ledger.wallet.send(from: achieng, to: juma, amount: .shillings(501), key: key("t9"))
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func theDailyReportsTotalsEqualTheLedgers() async throws {
        let ledger = try await Ledger.make()
        let achieng = MSISDN("254712345678")!, otieno = MSISDN("254722000111")!
        try await ledger.wallet.register(msisdn: achieng, name: "Achieng", pin: "4826", language: "en")
        try await ledger.wallet.register(msisdn: otieno, name: "Otieno", pin: "4826", language: "en")
        // Two STK deposits paid, one failed, one still pending.
        for (index, shillings) in [2_000, 1_500, 300, 100].enumerated() {
            let deposit = try await ledger.book.beginDeposit(achieng, amount: .shillings(Int64(shillings)), key: key("d\(index)"))
            try await ledger.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_\(index)")
            if index < 2 {
                try await ledger.book.completeDeposit(
                    checkoutRequestID: "ws_CO_\(index)", receipt: "RCPT\(index)", amount: .shillings(Int64(shillings)), phone: achieng)
            } else if index == 2 {
                _ = try await ledger.book.failDeposit(.checkout("ws_CO_2"), code: 1032, text: "Request cancelled by user")
            }
        }
        // A payout paid, one failed, one in flight; a send with its fee; an approved correction.
        let paid = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(400), key: key("w1"))
        _ = try await ledger.book.completeWithdrawal(paid.id, providerTransactionID: "B2C1")
        let failed = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(200), key: key("w2"))
        _ = try await ledger.book.failWithdrawal(failed.id, code: 2001, text: "The initiator information is invalid.")
        _ = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(100), key: key("w3"))
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(1_000), fee: .shillings(13), key: key("s1"))
        let (wanjiru, kamau) = (try await ledger.staff("wanjiru"), try await ledger.staff("kamau"))
        let correction = try await wanjiru.wallet.requestAdjustment(otieno, amount: .shillings(50), direction: .fromSuspense, by: self.verified)
        _ = try await kamau.wallet.approve(correction.id, by: self.checked)
        try await ledger.book.keepForReview(kind: "stk", reference: "ws_CO_unknown", reason: "unknown CheckoutRequestID", body: "{}")

        let today = try await ledger.nairobiToday()
        let report = try await ledger.book.dailyReport(date: today)
        #expect(report.balanced, "\(report.comparisons)")
        // Every total against the ledger's own balances (all of it happened today).
        #expect(report.depositsCredited.count == 2 && report.depositsCredited.sum == 350_000)
        let (float, inFlight) = (try await ledger.systemBalance("mpesa_float"), try await ledger.systemBalance("payouts_in_flight"))
        let (feeIncome, suspense) = (try await ledger.systemBalance("fee_income"), try await ledger.systemBalance("suspense"))
        #expect(report.depositsCredited.sum == -float)
        #expect(report.payoutsPaid.count == 1 && report.payoutsPaid.sum == 40_000)
        #expect(report.payoutsPaid.sum == inFlight)
        #expect(report.feesEarned == 1_300 && report.feesEarned == feeIncome)
        #expect(report.suspenseMovement == suspense && report.suspenseMovement == -5_000)
        #expect(report.deposits.map(\.status) == ["completed", "failed", "pending"] && report.deposits.map(\.count) == [2, 1, 1])
        #expect(Set(report.payouts.map(\.status)) == ["paid", "failed", "reserved"])
        #expect(report.openReviewItems == 1 && report.reviewItemsReceived == 1)
        #expect(try await ledger.book.dailyReport(date: "2001-01-01").depositsCredited.count == 0)
        await #expect(throws: WalletError.self) { try await ledger.book.dailyReport(date: "2026-02-30") }
        await #expect(throws: WalletError.self) { try await ledger.book.dailyReport(date: "yesterday") }

        // Money out of the float that no deposit explains is a difference, with its reason.
        try await ledger.post(
            "stray", from: try await ledger.systemAccount("mpesa_float"), to: try await ledger.account(otieno.value, "main"), cents: 999,
            kind: "deposit")
        let stray = try await ledger.book.dailyReport(date: today)
        #expect(!stray.balanced)
        let deposits = try #require(stray.comparisons.first { $0.name.hasPrefix("deposits") })
        #expect(deposits.difference == 999 && deposits.reasons.contains { $0.contains("stray") }, "\(deposits)")

        // Days are Nairobi's: a minute before today's midnight there (21:00 UTC) belongs to yesterday.
        try await ledger.postgres.query(
            """
            INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, created_at)
            SELECT 'late-last-night', f.id, a.id, 111, 'deposit', 'posted',
                   (\(today)::date::timestamp AT TIME ZONE 'Africa/Nairobi') - interval '1 minute'
            FROM accounts f, accounts a JOIN customers c ON c.id = a.customer_id
            WHERE f.customer_id IS NULL AND f.kind = 'mpesa_float' AND c.msisdn = \(otieno.value) AND a.kind = 'main'
            """
        )
        let yesterday = try await ledger.postgres.query("SELECT to_char(\(today)::date - 1, 'YYYY-MM-DD')").single()!.decode(String.self, column: 0)
        let before = try await ledger.book.dailyReport(date: yesterday).comparisons.first { $0.name.hasPrefix("deposits") }
        #expect(before?.difference == 111 && before?.reasons.first?.contains("late-last-night") == true, "\(String(describing: before))")
        let todayAgain = try await ledger.book.dailyReport(date: today).comparisons.first { $0.name.hasPrefix("deposits") }
        #expect(todayAgain?.difference == 999, "last night's transfer is not today's")
        await ledger.postgres.shutdown()
    }

    @Test func theLedgerAuditFindsHoldsWithoutALivePayoutAndHoldsTooOld() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        _ = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(100), key: key("h1"))
        #expect(try await ledger.book.auditLedger().passed)
        let old = try await ledger.book.auditLedger(maxHoldAge: .seconds(0))
        #expect(!old.passed && old.checks.filter { !$0.passed }.map(\.name) == ["no hold older than 0 h"], "\(old.checks)")
        // A hold no payout explains.
        try await ledger.post(
            "orphan", from: try await ledger.account(achieng.value, "main"), to: try await ledger.systemAccount("payouts_in_flight"), cents: 500,
            kind: "withdrawal", status: "pending"
        )
        let orphan = try await ledger.book.auditLedger()
        let failed = orphan.checks.filter { !$0.passed }
        #expect(
            failed.map(\.name) == ["every hold belongs to a live payout", "every transfer names its cause"]
                && failed.allSatisfy { $0.details.first?.contains("orphan") == true }, "\(failed)")
        await ledger.postgres.shutdown()
    }

    /// A transfer written by hand, even by the schema's owner and even claiming a cause, names
    /// none: the audit fails and names it. The wallet's own movements all pass.
    @Test func theLedgerAuditNamesATransferWithNoProvenance() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(10), fee: .shillings(1), key: key("p1"))
        _ = try await ledger.wallet.save(achieng, amount: .shillings(10), key: key("p2"))
        let paid = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(10), fee: .shillings(1), key: key("p3"))
        _ = try await ledger.book.completeWithdrawal(paid.id, providerTransactionID: "B2CPROV1")
        let failed = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(10), fee: .shillings(1), key: key("p4"))
        _ = try await ledger.book.failWithdrawal(failed.id, code: 2001, text: "The initiator information is invalid.")
        #expect(try await ledger.book.auditLedger().passed)
        let causes = try await ledger.postgres.query("SELECT id, cause FROM transfers ORDER BY id").map { try $0.decode((String, String?).self) }
        #expect(causes.allSatisfy { $0.1 != nil }, "\(causes)")
        #expect(causes.contains { $0 == ("p1:fee", "movement:p1") } && causes.contains { $0 == ("withdrawal:p4:fee-refund", "payout:p4") })

        try await ledger.postgres.query(
            """
            INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, cause)
            SELECT 'minted', f.id, a.id, 100000000, 'p2p', 'posted', 'movement:minted'
            FROM accounts f, accounts a JOIN customers c ON c.id = a.customer_id
            WHERE f.customer_id IS NULL AND f.kind = 'suspense' AND c.msisdn = \(otieno.value) AND a.kind = 'main'
            """
        )
        let audit = try await ledger.book.auditLedger()
        let breaches = audit.checks.filter { !$0.passed }
        #expect(breaches.map(\.name) == ["every transfer names its cause"], "\(breaches)")
        #expect(breaches.first?.details.count == 1 && breaches.first?.details.first?.hasPrefix("transfer minted (p2p, 100000000 cents,") == true)
        #expect(breaches.first?.details.first?.contains("names no cause") == true)
        await ledger.shutdown()
    }

    @Test func aReviewItemIsClosedOnceWithItsOutcomeInTheTrail() async throws {
        let ledger = try await Ledger.make()
        let kamau = try await ledger.staff("kamau", "ussd_operator")
        try await ledger.book.keepForReview(kind: "stk", reference: "ws_CO_a", reason: "unknown CheckoutRequestID", body: #"{"a": 1}"#)
        try await ledger.book.keepForReview(kind: "stk", reference: "ws_CO_b", reason: "unknown CheckoutRequestID", body: #"{"b": 1}"#)
        let items = try await ledger.book.reviewItems()
        #expect(items.count == 2)
        let first = items[1]
        #expect(
            try await kamau.book.resolveReviewItem(
                first.id, resolution: "refunded", note: "refunded by reversal on the M-Pesa portal", by: self.checked))
        #expect(try await kamau.book.resolveReviewItem(first.id, resolution: "credited", note: "again", by: self.checked) == false, "once")
        #expect(try await ledger.book.reviewItems().map(\.reference) == ["ws_CO_b"], "only the open ones")
        let all = try await ledger.book.reviewItems(openOnly: false)
        #expect(all.first { $0.id == first.id }?.resolution == "refunded" && all.first { $0.id == first.id }?.resolvedBy == kamau.name)
        await #expect(throws: WalletError.self) {
            try await kamau.book.resolveReviewItem(items[0].id, resolution: "lost", note: "x", by: self.checked)
        }
        let error = await #expect(throws: PostgresError.self) {
            try await ledger.postgres.query("UPDATE mpesa_review SET resolution = 'nothing' WHERE id = \(first.id)")
        }
        #expect(error?.sqlState == "23001", "restrict_violation")
        let trail = try await ledger.postgres.query("SELECT actor, after->>'resolution' FROM audit_log WHERE action = 'mpesa.review_resolved'")
            .map { try $0.decode((String, String).self) }
        #expect(trail.count == 1 && trail[0] == (kamau.name, "refunded"))
        await ledger.shutdown()
    }
}
