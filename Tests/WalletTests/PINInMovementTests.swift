import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import Wallet

/// A send's PIN checked in the movement's own statement (migration 0017): the same answers as
/// `verifyPIN` followed by the send, in one round trip when the sender's id is known.
@Suite struct PINInMovementTests {
    static func attempts(_ ledger: Ledger, _ msisdn: MSISDN) async throws -> (Int, Date?) {
        try await ledger.postgres.query("SELECT failed_pin_attempts, locked_until FROM customers WHERE msisdn = \(msisdn.value)").single()!
            .decode((Int, Date?).self)
    }

    static func checkedInMovements(_ ledger: Ledger) -> Int { ledger.wallet.pinsCheckedInMovements.load(ordering: .relaxed) }

    static func sendAtOnce(_ wallet: Wallet, from: MSISDN, to: MSISDN, shillings: Int64, keys: [String], pin: String) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for name in keys {
                group.addTask { _ = try await wallet.send(from: from, to: to, amount: .shillings(shillings), key: key(name), pin: pin) }
            }
            try await group.waitForAll()
        }
    }

    /// A right PIN moves the money and releases the earlier wrong attempts, in the statement.
    @Test func aRightPINMovesAndReleasesTheEarlierWrongAttempts() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        for left in [2, 1] {
            await #expect(throws: WalletError.wrongPIN(attemptsLeft: left)) { try await ledger.wallet.verifyPIN(achieng, pin: "1357") }
        }
        #expect(try await Self.attempts(ledger, achieng).0 == 2)
        let receipt = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(100), fee: .shillings(7), key: key("pin-1"), pin: "4826")
        #expect(receipt.balances.main == Amount(cents: 100_000 - 10_000 - 700) && receipt.fee == .shillings(7))
        #expect(Self.checkedInMovements(ledger) == 1)
        #expect(try await Self.attempts(ledger, achieng).0 == 0)
        // A retried hop replays the receipt; a refusal after a right PIN is the statement's too.
        #expect(try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(100), fee: .shillings(7), key: key("pin-1"), pin: "4826") == receipt)
        await #expect(throws: WalletError.insufficientFunds) {
            try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(5_000), key: key("pin-2"), pin: "4826")
        }
        #expect(Self.checkedInMovements(ledger) == 3)
        try await ledger.audit()
        await ledger.shutdown()
    }

    /// A wrong PIN in a movement is counted once, answered as verifyPIN answers, and locks at the
    /// limit; nothing is moved or recorded under the keys, so the same key works once the PIN is right.
    @Test func aWrongPINIsCountedOnceAndLocksAtTheLimit() async throws {
        let ledger = try await Ledger.make()
        // A lock that lasts the whole test, however slow the machine; it is run out by hand below.
        let wallet = Wallet(postgres: ledger.postgres, pins: Ledger.pins, lockDuration: .seconds(3600))
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        _ = try await wallet.customer(achieng)
        for (round, left) in [2, 1].enumerated() {
            await #expect(throws: WalletError.wrongPIN(attemptsLeft: left)) {
                try await wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("wrong-\(round)"), pin: "1357")
            }
            #expect(try await Self.attempts(ledger, achieng).0 == round + 1)
        }
        do {
            _ = try await wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("wrong-2"), pin: "1357")
            Issue.record("a third wrong PIN sent money")
        } catch WalletError.locked {}
        #expect(try await ledger.actions(achieng) == ["pin.locked"])
        let (used, lockedUntil) = try await Self.attempts(ledger, achieng)
        #expect(used == 3 && lockedUntil != nil)
        #expect(wallet.pinsCheckedInMovements.load(ordering: .relaxed) == 3)
        // Locked: even the right PIN is refused, by the usual way, and nothing moves.
        do {
            _ = try await wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("right"), pin: "4826")
            Issue.record("a locked customer sent money")
        } catch WalletError.locked {}
        #expect(wallet.pinsCheckedInMovements.load(ordering: .relaxed) == 3)
        let recorded = try await ledger.postgres.query("SELECT count(*)::int FROM failed_transfers").single()!.decode(Int.self, column: 0)
        #expect(recorded == 0)
        #expect(try await wallet.balances(otieno).main == .zero)
        // Once the lock has run out, the first wrong key moves money with the right PIN.
        try await ledger.postgres.query("UPDATE customers SET locked_until = now() - interval '1 second' WHERE msisdn = \(achieng.value)")
        let receipt = try await wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("wrong-0"), pin: "4826")
        #expect(receipt.amount == .shillings(100))
        let (after, stillLocked) = try await Self.attempts(ledger, achieng)
        #expect(after == 0 && stillLocked == nil)
        try await ledger.audit()
        await ledger.shutdown()
    }

    /// A value under an older key does not match the newest key's in the statement; its attempt
    /// is judged by the vault, found right, released and the value moved to the newest key.
    @Test func aValueUnderAnOlderKeyIsJudgedOnceAndMovedToTheNewest() async throws {
        let ledger = try await Ledger.make()
        let achieng = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        let newer = "1:" + Hex.encode(Array("test-pepper-of-32-bytes-at-least".utf8)) + ",2:" + Hex.encode(Array("a-newer-pin-key-of-32-bytes-long".utf8))
        let wallet = Wallet(postgres: ledger.postgres, pins: try PINVault(keys: try SoftwarePINKeys(environment: newer)), lockDuration: .seconds(2))
        _ = try await wallet.customer(achieng)
        // Wrong against the older key's value: counted once, judged by the vault.
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) {
            try await wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("rotated-wrong"), pin: "1357")
        }
        #expect(try await Self.attempts(ledger, achieng).0 == 1)
        let receipt = try await wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("rotated"), pin: "4826")
        #expect(receipt.amount == .shillings(100))
        #expect(wallet.pinsCheckedInMovements.load(ordering: .relaxed) == 2)
        #expect(try await Self.attempts(ledger, achieng).0 == 0)
        let stored = try await ledger.postgres.query("SELECT pin_hash FROM customers WHERE msisdn = \(achieng.value)").single()!.decode(String.self, column: 0)
        #expect(stored.hasPrefix("pvv1$2$"))
        // Now the statement's own comparison matches.
        _ = try await wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("rotated-2"), pin: "4826")
        #expect(wallet.pinsCheckedInMovements.load(ordering: .relaxed) == 3)
        try await ledger.audit()
        await ledger.shutdown()
    }

    /// An id that no longer names the number, and a PIN reset's cooling-off window, leave the
    /// statement nothing to decide: the usual way answers, with the window's limits.
    @Test func aStaleIdOrACoolingOffTakesTheUsualWay() async throws {
        let clock = TestClock()
        let ledger = try await Ledger.make(now: { clock.now })
        let achieng = try await ledger.funded("254712345678", cents: 500_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        let otienosID = try await ledger.wallet.customer(otieno).id
        ledger.wallet.customerIDs.remember(otienosID, for: achieng)
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(100), key: key("stale"), pin: "4826")
        #expect(Self.checkedInMovements(ledger) == 0)
        let (senders, recipients) = (try await Self.attempts(ledger, achieng).0, try await Self.attempts(ledger, otieno).0)
        #expect(senders == 0 && recipients == 0)

        let (wanjiru, kamau) = (try await ledger.staff("wanjiru", "ussd_operator"), try await ledger.staff("kamau"))
        let verified = try OperatorAction(reason: "caller verified with national ID")
        _ = try await kamau.wallet.approve(try await wanjiru.wallet.requestPINReset(achieng, by: verified).id, by: try OperatorAction(reason: "ID seen at the agent"))
        try await ledger.wallet.completePINReset(achieng, new: "5913")
        let completed = try await ledger.wallet.customer(achieng).pinResetCompletedAt!
        clock.now = completed.addingTimeInterval(3600)
        await #expect(throws: WalletError.coolingOff(until: completed.addingTimeInterval(86_400))) {
            try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(1_001), key: key("cool-1"), pin: "5913")
        }
        // Small sends at once (batched with one another, or alone): each by the usual way.
        try await Self.sendAtOnce(ledger.wallet, from: achieng, to: otieno, shillings: 100, keys: (1...4).map { "cool-small-\($0)" }, pin: "5913")
        #expect(Self.checkedInMovements(ledger) == 0)
        // Once the window is over (by the wallet's clock; a second past its end, clear of the
        // microsecond rounding between the clock and the database), the statement checks the PIN
        // again, in batches too.
        clock.now = completed.addingTimeInterval(86_401)
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(2_000), key: key("cool-3"), pin: "5913")
        try await Self.sendAtOnce(ledger.wallet, from: achieng, to: otieno, shillings: 100, keys: (1...4).map { "cool-after-\($0)" }, pin: "5913")
        #expect(Self.checkedInMovements(ledger) == 5)
        #expect(try await ledger.wallet.balances(otieno).main == .shillings(100 + 400 + 2_000 + 400))
        try await ledger.audit()
        await ledger.shutdown()
    }

    /// Concurrent guesses, batched together, never get past the limit; concurrent right PINs of
    /// many senders all move, in shared statements.
    @Test func concurrentGuessesNeverPassTheLimitAndRightPINsAllMove() async throws {
        let ledger = try await Ledger.make()
        let wallet = Wallet(postgres: ledger.postgres, pins: Ledger.pins, lockDuration: .seconds(3600))
        let target = try await ledger.funded("254712345678", cents: 100_000)
        let otieno = try await ledger.funded("254722000111", cents: 0)
        _ = try await wallet.customer(target)
        let guesses = ["1357", "2468", "1470", "3579", "8024", "9135", "7531", "8642", "1593", "2604"]
        let answers = await withTaskGroup(of: String.self) { group in
            for (index, guess) in guesses.enumerated() {
                group.addTask {
                    do {
                        _ = try await wallet.send(from: target, to: otieno, amount: .shillings(10), key: key("guess-\(index)"), pin: guess)
                        return "sent"
                    } catch WalletError.wrongPIN { return "wrong" } catch WalletError.locked { return "locked" } catch WalletError.tooManyAttempts {
                        return "busy"
                    } catch { return "\(error)" }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(Set(answers).isSubset(of: ["wrong", "locked", "busy"]), "\(answers)")
        #expect(answers.filter { $0 == "wrong" }.count <= PINPolicy.attemptsBeforeLock - 1)
        let (used, lockedUntil) = try await Self.attempts(ledger, target)
        #expect(used <= PINPolicy.attemptsBeforeLock && lockedUntil != nil)
        #expect(try await wallet.balances(otieno).main == .zero)
        #expect(wallet.pinsCheckedInMovements.load(ordering: .relaxed) > 0)

        var senders: [MSISDN] = []
        for index in 0..<12 {
            let sender = try await ledger.funded("2547330\(String(format: "%05d", index))", cents: 10_000)
            _ = try await wallet.customer(sender)
            senders.append(sender)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, sender) in senders.enumerated() {
                group.addTask {
                    _ = try await wallet.send(from: sender, to: otieno, amount: .shillings(50), key: key("many-\(index)"), pin: "4826")
                }
            }
            try await group.waitForAll()
        }
        #expect(try await wallet.balances(otieno).main == .shillings(600))
        #expect(wallet.pinsCheckedInMovements.load(ordering: .relaxed) >= 12)
        try await ledger.audit()
        await ledger.shutdown()
    }
}
