import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Synchronization
import Testing
import TestSupport
import MPesaBook
import Wallet

@Suite struct TransferTests {
    @Test func sendMovesMoneyOnceAndTheSameKeyReplaysTheReceipt() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)

        let receipt = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(300), key: key("s1:3"))
        #expect(receipt.balances.main == Amount(cents: 70_000))
        // A crash between commit and reply: the caller retries the same key.
        let replay = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(300), key: key("s1:3"))
        #expect(replay.key == receipt.key && replay.amount == receipt.amount && replay.createdAt == receipt.createdAt)
        #expect(try await ledger.wallet.balances(otieno).main == .shillings(300), "moved once")
        await #expect(throws: WalletError.idempotencyKeyReused) {
            try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(301), key: key("s1:3"))
        }
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func refusalsAreTypedAndAFailedKeyKeepsFailing() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 10_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        let stranger = MSISDN("254733000222")!

        await #expect(throws: WalletError.insufficientFunds) { try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(101), key: key("k1")) }
        try await ledger.post("topup", from: try await ledger.systemAccount("mpesa_float"), to: try await ledger.account("254712345678", "main"), cents: 1_000_000, kind: "deposit")
        await #expect(throws: WalletError.insufficientFunds, "the key failed once, so it keeps failing") {
            try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(101), key: key("k1"))
        }
        await #expect(throws: WalletError.recipientNotRegistered) { try await ledger.wallet.send(from: achieng, to: stranger, amount: .shillings(10), key: key("k2")) }
        await #expect(throws: WalletError.notRegistered) { try await ledger.wallet.send(from: stranger, to: achieng, amount: .shillings(10), key: key("k3")) }
        await #expect(throws: WalletError.sameAccount) { try await ledger.wallet.send(from: achieng, to: achieng, amount: .shillings(10), key: key("k4")) }
        await #expect(throws: WalletError.limitExceeded) { try await ledger.wallet.send(from: achieng, to: otieno, amount: Amount(cents: 50), key: key("k5")) }
        await #expect(throws: WalletError.limitExceeded) { try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(250_001), key: key("k6")) }
        #expect(try await ledger.wallet.balances(otieno).main == .zero)
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func dailyLimitCountsSendsOfTheSameDay() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 70_000_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(250_000), key: key("d1"))
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(250_000), key: key("d2"))
        await #expect(throws: WalletError.limitExceeded) { try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(1), key: key("d3")) }
        _ = try await ledger.wallet.save(achieng, amount: .shillings(1_000), key: key("d4"))
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func theDailyLimitForgetsYesterdayAndVoidedWithdrawals() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 200_000_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        // Otieno will hold 1,000,000 KES: over the default tier's maximum balance.
        try await ledger.wallet.applyConfiguration(
            tiers: [KYCTier(name: "standard", perTransaction: 25_000_000, daily: 50_000_000, maxBalance: 200_000_000)], defaultTier: "standard", settings: [:]
        )
        // Yesterday (Nairobi time) Achieng sent the whole day's limit.
        let from = try await ledger.account("254712345678", "main"), to = try await ledger.account("254722000111", "main")
        for index in 0..<2 {
            ledger.extras.post("yesterday-\(index)")
            try await ledger.postgres.query(
                """
                INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, created_at)
                VALUES (\("yesterday-\(index)"), \(from), \(to), 25000000, 'p2p', 'posted', now() - interval '1 day')
                """
            )
        }
        // Today she may send the limit again: 250,000 sent and 250,000 held for a withdrawal.
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(250_000), key: key("t1"))
        let payout = try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(250_000), key: key("t2"))
        await #expect(throws: WalletError.limitExceeded) { try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(1), key: key("t3")) }
        // The withdrawal fails and its hold is released: its amount no longer counts.
        try await ledger.book.failWithdrawal(payout.id, code: 2001, text: "The initiator information is invalid.")
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(250_000), key: key("t4"))
        await #expect(throws: WalletError.limitExceeded) { try await ledger.book.reserveWithdrawal(achieng, amount: .shillings(1), key: key("t5")) }
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func saveAndUnsaveMoveBetweenTheCustomersOwnAccounts() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let saved = try await ledger.wallet.save(achieng, amount: .shillings(400), key: key("v1"))
        #expect(saved.balances.main == .shillings(600) && saved.balances.savings == .shillings(400))
        await #expect(throws: WalletError.insufficientFunds) { try await ledger.wallet.unsave(achieng, amount: .shillings(401), key: key("v2")) }
        let back = try await ledger.wallet.unsave(achieng, amount: .shillings(150), key: key("v3"))
        #expect(back.balances.main == .shillings(750) && back.balances.savings == .shillings(250))
        // A send's receipt shows the sender's savings too; a replay shows the balances of now.
        let otieno = try await ledger.funded("254722000111", cents: 0)
        let sent = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(50), key: key("v4"))
        #expect(sent.balances == Wallet.Balances(main: .shillings(700), savings: .shillings(250), held: .zero))
        _ = try await ledger.wallet.save(achieng, amount: .shillings(100), key: key("v5"))
        let replay = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(50), key: key("v4"))
        #expect(replay.balances == Wallet.Balances(main: .shillings(600), savings: .shillings(350), held: .zero))
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func sixteenTasksOfRandomMovementsWithRetriesKeepEveryInvariant() async throws {
        // Given 50 funded customers
        let ledger = try await Ledger.make()
        var customers: [MSISDN] = []
        for index in 0..<50 {
            customers.append(try await ledger.funded("2547100000\(String(format: "%02d", index))", cents: 50_000))
        }
        let customerList = customers

        // When 16 tasks make 2,000 random sends, saves, unsaves and withdrawals (each settled paid or
        // failed, sometimes twice), a fifth of them retrying an earlier key
        struct Operation: Sendable, Hashable {
            let key: String
            let kind: Int
            let from: MSISDN
            let to: MSISDN
            let cents: Int64
        }
        final class Journal: Sendable {
            let succeeded = Mutex<[String: Operation]>([:])
            let leaked = Mutex<[String]>([])
        }
        let journal = Journal()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var generator = SystemRandomNumberGenerator()
                    var mine: [Operation] = []
                    for index in 0..<125 {
                        let operation: Operation
                        if !mine.isEmpty, Int.random(in: 0..<5, using: &generator) == 0 {
                            operation = mine.randomElement(using: &generator)!
                        } else {
                            let from = customerList.randomElement(using: &generator)!
                            var to = customerList.randomElement(using: &generator)!
                            while to == from { to = customerList.randomElement(using: &generator)! }
                            operation = Operation(
                                key: "w\(worker):\(index)", kind: Int.random(in: 0..<4, using: &generator), from: from, to: to,
                                cents: Int64.random(in: 1...150, using: &generator) * 100
                            )
                            mine.append(operation)
                        }
                        do {
                            let amount = Amount(cents: operation.cents)
                            switch operation.kind {
                            case 0: _ = try await ledger.wallet.send(from: operation.from, to: operation.to, amount: amount, key: key(operation.key))
                            case 1: _ = try await ledger.wallet.save(operation.from, amount: amount, key: key(operation.key))
                            case 2: _ = try await ledger.wallet.unsave(operation.from, amount: amount, key: key(operation.key))
                            default:
                                let payout = try await ledger.book.reserveWithdrawal(operation.from, amount: amount, key: key(operation.key))
                                if operation.cents % 200 == 0 {
                                    try await ledger.book.completeWithdrawal(payout.id, providerTransactionID: "R-\(operation.key)")
                                } else {
                                    try await ledger.book.failWithdrawal(payout.id, code: 2001, text: "failed")
                                }
                            }
                            journal.succeeded.withLock { $0[operation.key] = operation }
                        } catch is WalletError {
                            // A refusal (insufficient funds, mostly) is an outcome, not a leak.
                        } catch {
                            journal.leaked.withLock { $0.append("\(error)") }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }

        // Then the sums hold, each key moved money once, and no database error leaked out
        try await ledger.audit()
        #expect(journal.leaked.withLock { $0 } == [], "deadlocks and serialization failures are retried inside the wallet")
        let succeeded = journal.succeeded.withLock { $0 }
        let rows = try await ledger.postgres.query(
            "SELECT regexp_replace(id, '^withdrawal:', ''), amount, status FROM transfers WHERE kind IN ('p2p', 'save', 'unsave', 'withdrawal')"
        )
        var moved: [String: (Int64, String)] = [:]
        for row in rows {
            let (id, amount, status) = try row.decode((String, Int64, String).self)
            #expect(moved[id] == nil, "key \(id) has two transfers")
            moved[id] = (amount, status)
        }
        #expect(moved.count == succeeded.count, "one transfer per successful key, none for refused ones")
        var paidOut: Int64 = 0
        for (key, operation) in succeeded {
            #expect(moved[key]?.0 == operation.cents)
            if operation.kind == 3 {
                #expect(moved[key]?.1 == (operation.cents % 200 == 0 ? "posted" : "voided"))
                if operation.cents % 200 == 0 { paidOut += operation.cents }
            }
        }
        // The customers' money, main and savings, is what was deposited less what was paid out.
        let total = try await ledger.postgres.query("SELECT sum(balance)::bigint FROM accounts WHERE customer_id IS NOT NULL").single()!.decode(Int64.self, column: 0)
        #expect(total == 50 * 50_000 - paidOut)
        let held = try await ledger.postgres.query("SELECT sum(held)::bigint FROM accounts").single()!.decode(Int64.self, column: 0)
        #expect(held == 0, "every hold was settled")
        await ledger.postgres.shutdown()
    }
}

@Suite struct IdempotencyRaceTests {
    @Test func concurrentCopiesOfOneKeyAgreeOnOneOutcome() async throws {
        // Twenty copies of the same send race; the balance covers exactly one of them.
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 10_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    do {
                        return try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("race")).key
                    } catch {
                        return "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(Set(outcomes) == ["race"], "every copy gets the one receipt: \(Set(outcomes))")
        #expect(try await ledger.wallet.balances(otieno).main == .shillings(100))
        let failed = try await ledger.postgres.query("SELECT count(*) FROM failed_transfers").single()!.decode(Int.self, column: 0)
        #expect(failed == 0, "no copy recorded a refusal for a key that succeeded")
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }
}
