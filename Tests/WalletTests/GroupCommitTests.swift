import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Synchronization
import Testing
import TestSupport
@testable import MPesaBook
@testable import Wallet

/// Group commit (migration 0010, `MoveBatcher`): movements that arrive together share one
/// statement and one commit, each keeping its own key, replay and refusal.
@Suite struct GroupCommitTests {
    /// A wallet on the ledger's database with one lane, so whatever queues behind a busy lane
    /// becomes one batch.
    static func oneLane(_ ledger: Ledger) -> Wallet {
        let pins = PINVault(key: Array("test-pepper-of-32-bytes-at-least".utf8))
        return Wallet(postgres: ledger.postgres, pins: pins, groupCommit: .init(lanes: 1, maximumBatch: 64))
    }

    /// Holds a lock on `account` until `body` calls its argument, so the lane's movement that needs
    /// it waits and everything submitted meanwhile queues behind it.
    static func holdingLock<R: Sendable>(_ ledger: Ledger, account: Int64, _ body: @Sendable (@Sendable () -> Void) async throws -> R) async throws -> R {
        let (release, releasing) = AsyncStream<Void>.makeStream()
        let (locked, lockTaken) = AsyncStream<Void>.makeStream()
        return try await withThrowingTaskGroup(of: R?.self) { group in
            group.addTask {
                try await ledger.postgres.transaction { tx in
                    _ = try await tx.query("SELECT id FROM accounts WHERE id = \(account) FOR UPDATE")
                    lockTaken.yield()
                    for await _ in release { break }
                }
                return nil
            }
            for await _ in locked { break }
            let result = try await body {
                releasing.yield()
                releasing.finish()
            }
            while let next = try await group.next() { if next != nil { return next! } }
            return result
        }
    }

    /// Starts `first`, a call that needs the lock held on `account`; once it waits, `queue` adds the
    /// calls that queue behind it (on a one-lane wallet they become one batch); then the lock goes.
    /// Every outcome, by name.
    static func queuedBehind(
        _ ledger: Ledger, queued waiting: @escaping @Sendable () -> Int, expecting expected: Int, account: Int64, first: @escaping @Sendable () async throws -> (String, String),
        queue: @Sendable (inout ThrowingTaskGroup<(String, String), any Error>) -> Void
    ) async throws -> [String: String] {
        try await Self.holdingLock(ledger, account: account) { release in
            try await withThrowingTaskGroup(of: (String, String).self) { group in
                group.addTask(operation: first)
                try await Self.waitForLockWaiter(ledger)
                queue(&group)
                // Every call waits in the wallet's queue before the lock goes: then they are one batch.
                let queued = try await eventually(within: .seconds(30)) { waiting() >= expected }
                #expect(queued, "\(expected) calls queued behind the first")
                release()
                return try await group.reduce(into: [String: String]()) { $0[$1.0] = $1.1 }
            }
        }
    }

    /// A one-lane wallet, a funded customer whose account the test locks, a recipient, and
    /// `count` senders with 500 KES each.
    static func sendsSetup(_ ledger: Ledger, senders count: Int) async throws -> (wallet: Wallet, blocker: MSISDN, sink: MSISDN, senders: [MSISDN], lock: Int64) {
        let blocker = try await ledger.funded("254700000099", cents: 100_000)
        let sink = try await ledger.funded("254700000098", cents: 0)
        var senders: [MSISDN] = []
        for index in 0..<count { senders.append(try await ledger.funded("25471100000\(index)", cents: 50_000)) }
        return (Self.oneLane(ledger), blocker, sink, senders, try await ledger.account("254700000099", "main"))
    }

    /// Waits until a backend of this database waits for a row lock.
    static func waitForLockWaiter(_ ledger: Ledger) async throws {
        let waited = try await eventually(within: .seconds(30)) {
            try await ledger.postgres.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).single()!.decode(Int.self, column: 0) > 0
        }
        if waited { return }
        Issue.record("no movement ever waited for the held lock")
    }

    @Test func movementsQueuedBehindABusyLaneShareOneCommitAndEachKeepsItsOwnOutcome() async throws {
        let ledger = try await Ledger.make()
        let (wallet, blocker, sink, senders, lock) = try await Self.sendsSetup(ledger, senders: 6)
        let poor = try await ledger.funded("254711000009", cents: 1_000)
        let stranger = MSISDN("254733000222")!

        // Behind the lane's first send: six sends (the first twice, the same key), one with a fee,
        // one refused for funds, one to nobody.
        let outcomes = try await Self.queuedBehind(ledger, queued: { wallet.moves.queued }, expecting: 9, account: lock) {
            ("blocker", try await wallet.send(from: blocker, to: sink, amount: .shillings(10), key: key("gc-blocker")).key)
        } queue: { group in
            for (index, sender) in senders.enumerated() {
                let fee: Amount = index == 5 ? .shillings(7) : .zero
                group.addTask { ("s\(index)", try await wallet.send(from: sender, to: sink, amount: .shillings(100), fee: fee, key: key("gc-\(index)")).key) }
            }
            group.addTask { ("s0-copy", try await wallet.send(from: senders[0], to: sink, amount: .shillings(100), key: key("gc-0")).key) }
            for (name, from, to) in [("poor", poor, sink), ("stranger", senders[1], stranger)] {
                group.addTask {
                    do { return (name, try await wallet.send(from: from, to: to, amount: .shillings(100), key: key("gc-\(name)")).key) } catch {
                        return (name, "\(error)")
                    }
                }
            }
        }

        #expect(outcomes["blocker"] == "gc-blocker")
        for index in 0..<6 { #expect(outcomes["s\(index)"] == "gc-\(index)") }
        #expect(outcomes["s0-copy"] == "gc-0", "a copy of a key in the same batch replays the first")
        #expect(outcomes["poor"] == "\(WalletError.insufficientFunds)")
        #expect(outcomes["stranger"] == "\(WalletError.recipientNotRegistered)")
        #expect(try await wallet.balances(sink).main == Amount(cents: 1_000 + 6 * 10_000), "each send moved once")
        #expect(try await wallet.balances(senders[5]).main == Amount(cents: 50_000 - 10_000 - 700), "the fee was charged")

        // The queued sends were written by one transaction: one commit for all of them.
        let commits = try await ledger.postgres.query(
            "SELECT count(DISTINCT xmin::text) FROM transfers WHERE id LIKE 'gc-_' OR id LIKE 'gc-_:fee'"
        ).single()!.decode(Int.self, column: 0)
        #expect(commits == 1, "six sends and a fee in \(commits) commits")
        let refusals = try await ledger.postgres.query("SELECT count(*) FROM failed_transfers WHERE id IN ('gc-poor', 'gc-stranger')").single()!.decode(Int.self, column: 0)
        #expect(refusals == 2, "refusals are recorded under their keys, as alone")
        await #expect(throws: WalletError.insufficientFunds, "and a refused key keeps its refusal") {
            try await wallet.send(from: poor, to: sink, amount: .shillings(100), key: key("gc-poor"))
        }
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func aBatchThatRaisesIsRolledBackWholeAndEachMovementThenRunsAlone() async throws {
        let ledger = try await Ledger.make()
        let (wallet, blocker, sink, senders, lock) = try await Self.sendsSetup(ledger, senders: 3)
        // A movement that raises inside the batch: no rule refuses it, the database does.
        try await ledger.postgres.query(
            """
            CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'poisoned transfer' USING ERRCODE = 'raise_exception'; END $$
            """
        )
        try await ledger.postgres.query("CREATE TRIGGER poison BEFORE INSERT ON transfers FOR EACH ROW WHEN (NEW.id = 'gc-1') EXECUTE FUNCTION poison()")

        let outcomes = try await Self.queuedBehind(ledger, queued: { wallet.moves.queued }, expecting: senders.count, account: lock) {
            ("blocker", try await wallet.send(from: blocker, to: sink, amount: .shillings(10), key: key("gc-blocker")).key)
        } queue: { group in
            for (index, sender) in senders.enumerated() {
                group.addTask {
                    do { return ("s\(index)", try await wallet.send(from: sender, to: sink, amount: .shillings(100), key: key("gc-\(index)")).key) } catch {
                        return ("s\(index)", "error")
                    }
                }
            }
        }
        #expect(outcomes["s0"] == "gc-0")
        #expect(outcomes["s1"] == "error", "the poisoned movement fails alone")
        #expect(outcomes["s2"] == "gc-2")
        #expect(try await wallet.balances(sink).main == Amount(cents: 1_000 + 2 * 10_000), "the others moved once each")
        #expect(try await wallet.balances(senders[1]).main == .shillings(500), "the poisoned sender kept everything")
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func aMovementAloneThatRaisesOnTheLaneIsAnsweredOnceNotRunAgain() async throws {
        let ledger = try await Ledger.make()
        let wallet = Self.oneLane(ledger)
        let sender = try await ledger.funded("254711000001", cents: 100_000)
        let sink = try await ledger.funded("254711000002", cents: 0)
        // Counts the statement's attempts outside its transaction (a sequence is never rolled back).
        try await ledger.postgres.query("CREATE SEQUENCE poison_attempts")
        try await ledger.postgres.query(
            """
            CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM nextval('poison_attempts'); RAISE EXCEPTION 'poisoned transfer' USING ERRCODE = 'raise_exception'; END $$
            """
        )
        try await ledger.postgres.query("CREATE TRIGGER poison BEFORE INSERT ON transfers FOR EACH ROW WHEN (NEW.id = 'lone-1') EXECUTE FUNCTION poison()")
        await #expect(throws: PostgresError.self) { try await wallet.send(from: sender, to: sink, amount: .shillings(100), key: key("lone-1")) }
        let attempts = try await ledger.postgres.query("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM poison_attempts").single()!
            .decode(Int64.self, column: 0)
        #expect(attempts == 1, "run once: not again after the lane's answer")
        // The lane goes on with the next call.
        #expect(try await wallet.send(from: sender, to: sink, amount: .shillings(100), key: key("lone-2")).key == "lone-2")
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    final class Flag: Sendable {
        let value = Atomic<Int>(0)
    }

    /// A lane runs batch after batch on the pool's thread while calls keep coming, but gives its
    /// connection back when others wait for one: on a pool of one connection, a lookup is answered
    /// while sends are still coming, not after they stop.
    @Test func aBusyLaneGivesItsConnectionBackWhenOthersWaitForOne() async throws {
        let ledger = try await Ledger.make()
        var configuration = ledger.postgres.configuration
        configuration.poolSize = 1
        let postgres = PostgresClient(configuration: configuration)
        // Small batches and many senders: the queue never runs dry while they send.
        let wallet = Wallet(postgres: postgres, pins: Ledger.pins, groupCommit: .init(lanes: 1, maximumBatch: 2))
        let sink = try await ledger.funded("254700000098", cents: 0)
        var senders: [MSISDN] = []
        for index in 0..<24 { senders.append(try await ledger.funded(String(format: "2547110%05d", index), cents: 50_000)) }
        // Each transfer takes a while, so batches follow one another while the senders keep sending.
        try await ledger.postgres.query("CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.005); RETURN NEW; END $$")
        try await ledger.postgres.query("CREATE TRIGGER slow BEFORE INSERT ON transfers FOR EACH ROW EXECUTE FUNCTION slow()")

        let stop = Flag()
        let sending = Flag()
        let answeredWhileSending = try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, sender) in senders.enumerated() {
                group.addTask {
                    sending.value.add(1, ordering: .relaxed)
                    defer { sending.value.subtract(1, ordering: .relaxed) }
                    // At most 300 sends each: the senders stop on their own if the lookup never comes.
                    for round in 0..<300 where stop.value.load(ordering: .relaxed) == 0 {
                        _ = try await wallet.send(from: sender, to: sink, amount: .shillings(1), key: key("fair-\(index)-\(round)"))
                    }
                }
            }
            // The lane is running batch after batch (read through another client: the wallet's
            // only connection is the lane's) with calls queued behind it.
            let busy = try await eventually(within: .seconds(30)) {
                try await ledger.postgres.query("SELECT count(*)::int FROM transfers WHERE id LIKE 'fair-%'").single()!.decode(Int.self, column: 0) >= 20
                    && wallet.moves.queued > 8
            }
            #expect(busy, "calls queued behind a busy lane")
            _ = try await wallet.customer(sink)
            let answeredWhileSending = sending.value.load(ordering: .relaxed) == senders.count
            stop.value.store(1, ordering: .relaxed)
            try await group.waitForAll()
            return answeredWhileSending
        }
        #expect(answeredWhileSending, "the lookup waited until the senders stopped")
        try await ledger.audit()
        await postgres.shutdown()
        await ledger.postgres.shutdown()
    }

    @Test func depositCompletionsQueuedTogetherShareOneCommitAndEachIsCreditedOnce() async throws {
        let ledger = try await Ledger.make()
        let book = MPesaBook(wallet: Self.oneLane(ledger))
        let blocker = try await ledger.funded("254700000099", cents: 0)
        var funded: [MSISDN] = []
        for index in 0..<4 { funded.append(try await ledger.funded("25471100000\(index)", cents: 0)) }
        let payers = funded
        var checkouts: [String] = []
        for (index, payer) in ([blocker] + payers).enumerated() {
            let deposit = try await book.beginDeposit(payer, amount: .shillings(250), key: key("dep-\(index)"))
            try await book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_gc_\(index)")
            checkouts.append("ws_CO_gc_\(index)")
        }
        let blockerAccount = try await ledger.account("254700000099", "main")
        let completions = checkouts

        // Behind the lane's first completion: three paid callbacks, a copy of the first of them,
        // one whose amount is not what was asked, and one for a checkout nobody started.
        let outcomes = try await Self.queuedBehind(ledger, queued: { book.completions.queued }, expecting: 6, account: blockerAccount) {
            let done = try await book.completeDeposit(checkoutRequestID: completions[0], receipt: "RGC0", amount: .shillings(250), phone: blocker)
            return ("blocker", done.status == .completed ? "credited" : "\(done.status)")
        } queue: { group in
            let queued: [(String, String, Amount, MSISDN)] = [
                ("d1", completions[1], .shillings(250), payers[0]), ("d1-copy", completions[1], .shillings(250), payers[0]),
                ("d2", completions[2], .shillings(250), payers[1]), ("d3", completions[3], .shillings(250), payers[2]),
                ("short", completions[4], .shillings(200), payers[3]), ("unknown", "ws_CO_gc_nobody", .shillings(250), payers[3]),
            ]
            for (name, checkout, amount, phone) in queued {
                group.addTask {
                    do {
                        let done = try await book.completeDeposit(checkoutRequestID: checkout, receipt: "R\(checkout)", amount: amount, phone: phone)
                        return (name, done.status == .completed ? "credited" : "\(done.status)")
                    } catch {
                        return (name, "\(error)")
                    }
                }
            }
        }
        for name in ["blocker", "d1", "d1-copy", "d2", "d3"] { #expect(outcomes[name] == "credited", "\(name): \(outcomes[name] ?? "-")") }
        #expect(outcomes["short"] == "\(ProviderRecordError.mismatch)")
        #expect(outcomes["unknown"] == "\(ProviderRecordError.unknownDeposit)")
        for (index, payer) in payers.enumerated() {
            #expect(try await book.wallet.balances(payer).main == (index < 3 ? .shillings(250) : .zero), "credited once, or not at all")
        }
        let commits = try await ledger.postgres.query(
            "SELECT count(DISTINCT xmin::text) FROM transfers WHERE kind = 'deposit' AND id <> (SELECT transfer_id FROM deposits WHERE checkout_request_id = 'ws_CO_gc_0')"
        ).single()!.decode(Int.self, column: 0)
        #expect(commits == 1, "three deposits credited in \(commits) commits")
        let mismatch = try await ledger.postgres.query("SELECT result_text FROM deposits WHERE checkout_request_id = 'ws_CO_gc_4'").single()!.decode(String?.self, column: 0)
        #expect(mismatch == "amount or phone mismatch", "the mismatch is recorded on its deposit, as alone")
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }
}
