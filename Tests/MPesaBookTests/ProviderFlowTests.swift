import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import MPesaBook
import Wallet

@Suite struct DepositTests {
    @Test func aPaidDepositIsCreditedOnceHoweverOftenTheCallbackComes() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 0)
        let deposit = try await ledger.book.beginDeposit(achieng, amount: .shillings(1_000), key: key("s9:5"))
        #expect(try await ledger.book.beginDeposit(achieng, amount: .shillings(1_000), key: key("s9:5")) == deposit, "same key, same deposit")
        await #expect(throws: WalletError.idempotencyKeyReused) { try await ledger.book.beginDeposit(achieng, amount: .shillings(999), key: key("s9:5")) }
        try await ledger.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_1")

        // The callback arrives three times, two of them at once.
        async let first = ledger.book.completeDeposit(checkoutRequestID: "ws_CO_1", receipt: "NLJ7RT61SV", amount: .shillings(1_000), phone: achieng)
        async let second = ledger.book.completeDeposit(checkoutRequestID: "ws_CO_1", receipt: "NLJ7RT61SV", amount: .shillings(1_000), phone: achieng)
        let (a, b) = try await (first, second)
        let third = try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_1", receipt: "NLJ7RT61SV", amount: .shillings(1_000), phone: achieng)
        #expect(a.status == .completed && b.status == .completed && third.receipt == "NLJ7RT61SV")
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(1_000), "credited exactly once")
        let sms = try await ledger.postgres.query("SELECT template, params->>'receipt' FROM outbox WHERE recipient = '254712345678'").map { try $0.decode((String, String?).self) }
        #expect(sms.count == 1 && sms.first?.0 == "deposit_received" && sms.first?.1 == "NLJ7RT61SV")
        try await ledger.audit()
        // The ledger alone knows no provider: the deposit is a cause only M-Pesa's book vouches for.
        let alone = try await ledger.wallet.auditLedger(providers: [])
        #expect(alone.checks.filter { !$0.passed }.map(\.name) == ["every transfer names its cause"], "\(alone.checks)")
        #expect(alone.checks.first { !$0.passed }?.details.contains { $0.contains("its cause deposit:\(deposit.id) does not exist") } == true)
        await ledger.postgres.shutdown()
    }

    @Test func mismatchedUnknownAndFailedCallbacksCreditNothing() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 0)
        let deposit = try await ledger.book.beginDeposit(achieng, amount: .shillings(500), key: key("dep-a"))
        try await ledger.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_2")
        await #expect(throws: ProviderRecordError.mismatch) {
            try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_2", receipt: "R1", amount: .shillings(5), phone: achieng, raw: #"{"Amount": 5}"#)
        }
        let flagged = try await ledger.postgres.query("SELECT result_text, raw_callback::text, status FROM deposits WHERE checkout_request_id = 'ws_CO_2'")
            .single()!.decode((String?, String?, String).self)
        #expect(flagged.0 == "amount or phone mismatch" && flagged.1 == #"{"Amount": 5}"# && flagged.2 == "pending", "the mismatch is kept for a human")
        await #expect(throws: ProviderRecordError.mismatch) {
            try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_2", receipt: "R1", amount: .shillings(500), phone: MSISDN("254722000111")!)
        }
        await #expect(throws: ProviderRecordError.unknownDeposit) {
            try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_nope", receipt: "R2", amount: .shillings(500), phone: achieng)
        }
        try await ledger.book.failDeposit(.checkout("ws_CO_2"), code: 1032, text: "Request cancelled by user")
        #expect(try await ledger.wallet.balances(achieng).main == .zero)
        // A payment after Safaricom said the deposit failed contradicts it: a conflict, no credit.
        await #expect(throws: ProviderRecordError.conflict(current: "failed (1032 Request cancelled by user)")) {
            try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_2", receipt: "R9", amount: .shillings(500), phone: achieng)
        }
        #expect(try await ledger.wallet.balances(achieng).main == .zero)
        // One M-Pesa receipt can never credit two deposits.
        let other = try await ledger.book.beginDeposit(achieng, amount: .shillings(500), key: key("dep-b"))
        try await ledger.book.recordCheckout(depositID: other.id, checkoutRequestID: "ws_CO_3")
        let third = try await ledger.book.beginDeposit(achieng, amount: .shillings(500), key: key("dep-c"))
        try await ledger.book.recordCheckout(depositID: third.id, checkoutRequestID: "ws_CO_4")
        try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_3", receipt: "SAME", amount: .shillings(500), phone: achieng)
        try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_3", receipt: "SAME", amount: .shillings(500), phone: achieng)
        await #expect(throws: ProviderRecordError.conflict(current: "credited under receipt SAME"), "credited under another receipt") {
            try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_3", receipt: "OTHER", amount: .shillings(500), phone: achieng)
        }
        await #expect(throws: PostgresError.self) {
            try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_4", receipt: "SAME", amount: .shillings(500), phone: achieng)
        }
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(500))
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }
}

@Suite struct WithdrawalTests {
    @Test func aReservedWithdrawalHoldsFundsThenPaysOnce() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let payout = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(600), key: key("wd:1"))
        #expect(payout.status == .reserved)
        #expect(try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(600), key: key("wd:1")) == payout, "same key, same payout")
        var balances = try await ledger.wallet.balances(achieng)
        #expect(balances.main == .shillings(1_000) && balances.available == .shillings(400))
        await #expect(throws: WalletError.insufficientFunds, "held money is not spendable") {
            try await ledger.wallet.send(from: achieng, to: try await ledger.funded("254722000111", cents: 0), amount: .shillings(401), key: key("p1"))
        }

        try await ledger.book.markWithdrawalSent(payout.id, conversationID: "AG_2024_1")
        try await ledger.book.markWithdrawalUnknown(payout.id)
        #expect(try await ledger.wallet.balances(achieng).available == .shillings(400), "a timeout keeps the hold")
        // Daraja's answer recorded after the timeout callback (it overtook us) leaves it unknown.
        try await ledger.book.markWithdrawalSent(payout.id, conversationID: "AG_2024_1")
        let row = try await ledger.postgres.query("SELECT status, conversation_id FROM payouts WHERE id = \(payout.id)").single()!.decode((String, String?).self)
        #expect(row.0 == "unknown" && row.1 == "AG_2024_1")
        let paid = try await ledger.book.completeWithdrawal(payout.id, providerTransactionID: "NLJ41HAY6Q")
        let again = try await ledger.book.completeWithdrawal(payout.id, providerTransactionID: "NLJ41HAY6Q")
        #expect(paid.status == .paid && again.status == .paid)
        await #expect(throws: ProviderRecordError.conflict(current: "paid"), "a failure after a payment is a conflict, never a refund") {
            try await ledger.book.failWithdrawal(payout.id, code: 2001, text: "late failure")
        }
        balances = try await ledger.wallet.balances(achieng)
        #expect(balances.main == .shillings(400) && balances.held == .zero)
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func aFailedWithdrawalGivesTheMoneyBack() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let payout = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(700), key: key("wd:2"))
        try await ledger.book.failWithdrawal(payout.id, code: 2001, text: "The initiator information is invalid.")
        await #expect(throws: ProviderRecordError.conflict(current: "failed"), "no payment after a failure") {
            try await ledger.book.completeWithdrawal(payout.id, providerTransactionID: "X")
        }
        let balances = try await ledger.wallet.balances(achieng)
        #expect(balances.main == .shillings(1_000) && balances.available == .shillings(1_000))
        await #expect(throws: WalletError.insufficientFunds) { try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(1_001), key: key("wd:3")) }
        await #expect(throws: WalletError.insufficientFunds, "a refused key stays refused") {
            try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(1_001), key: key("wd:3"))
        }
        // (The test's funding is a paid deposit with its own receipt.)
        let templates = try await ledger.postgres.query("SELECT template FROM outbox WHERE template <> 'deposit_received'").map { try $0.decode(String.self, column: 0) }
        #expect(templates == ["withdrawal_failed"])
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func aRefusedResendAfterAnUnansweredAttemptKeepsTheHold() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        // Never unanswered: a refusal refunds.
        let clean = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(100), key: key("wd:clean"))
        #expect(try await ledger.book.refuseWithdrawal(clean.id, code: -1, text: "Invalid initiator") == .refunded)
        // Once unanswered, a refused re-send proves nothing: the hold stays for a status answer.
        let risky = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(300), key: key("wd:risky"))
        try await ledger.book.markPayoutOutcomeUnknown(risky.id)
        #expect(try await ledger.book.refuseWithdrawal(risky.id, code: -1, text: "Unfamiliar error") == .keptForStatus)
        #expect(try await ledger.book.payout(id: risky.id)?.status == .unknown)
        #expect(try await ledger.wallet.balances(achieng).available == .shillings(700))
        // A status answer settles it.
        try await ledger.book.completeWithdrawal(risky.id, providerTransactionID: "SGSTATUS1")
        let balances = try await ledger.wallet.balances(achieng)
        #expect(balances.main == .shillings(700) && balances.held == .zero)
        // Unsettled too long: waits for a person, hold kept.
        let stuck = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(50), key: key("wd:stuck"))
        try await ledger.postgres.query("UPDATE payouts SET checks = 12 WHERE id = \(stuck.id)")
        #expect(try await ledger.book.escalateUnsettledPayouts(maxChecks: 12, maxAge: .seconds(86_400)).map(\.id) == [stuck.id])
        #expect(try await ledger.book.escalateUnsettledPayouts(maxChecks: 12, maxAge: .seconds(86_400)).isEmpty, "once")
        #expect(try await ledger.wallet.balances(achieng).held == .shillings(50))
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }
}

@Suite struct StatementTests {
    @Test func statementListsRecentMovementsWithDirectionAndCounterparty() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 50_000)
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("t1"))
        _ = try await ledger.wallet.send(from: otieno, to: achieng, amount: .shillings(30), key: key("t2"))
        _ = try await ledger.wallet.save(achieng, amount: .shillings(50), key: key("t3"))

        let lines = try await ledger.wallet.statement(achieng, limit: 3)
        #expect(lines.map(\.key) == ["t3", "t2", "t1"])
        #expect(lines.map(\.direction) == [.outgoing, .incoming, .outgoing])
        #expect(lines[1].counterparty == otieno && lines[1].amount == .shillings(30))
        let sms = try await ledger.postgres.query("SELECT recipient, template FROM outbox WHERE template <> 'deposit_received' ORDER BY id").map {
            try $0.decode((String, String).self)
        }
        #expect(sms.map(\.1) == ["sent", "received", "sent", "received"], "each send queues a receipt for both sides")
        await ledger.postgres.shutdown()
    }
}
