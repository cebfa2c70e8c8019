import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Settings
import Testing
import TestSupport
import Wallet

@Suite struct PINPolicyTests {
    @Test(arguments: [
        "0000", "7777", "1234", "2345", "9876", "4321", "8901", "0987", "1212", "4545", "1122", "9900", "2580", "0852", "1470", "3690",
        "1900", "1987", "2001", "2029", "123", "12345", "12a4",
    ])
    func weakOrMalformedPINsAreRefused(pin: String) {
        #expect(!PINPolicy.isAcceptable(pin))
    }

    @Test(arguments: ["4829", "7391", "0842", "1357", "2030", "1899", "1221"])
    func ordinaryPINsAreAccepted(pin: String) {
        #expect(PINPolicy.isAcceptable(pin))
    }

    @Test func theLastFourDigitsOfTheCustomersOwnNumberAreRefused() {
        #expect(!PINPolicy.isAcceptable("4829", msisdn: "254712344829"))
        #expect(PINPolicy.isAcceptable("4829", msisdn: "254712340000"))
    }

    @Test func locksEscalateToAnOperator() {
        #expect(PINPolicy.lockDuration(lockNumber: 1, first: .seconds(1800)) == .seconds(1800))
        #expect(PINPolicy.lockDuration(lockNumber: 2, first: .seconds(1800)) == .seconds(86_400))
        #expect(PINPolicy.lockDuration(lockNumber: 3, first: .seconds(1800)) == nil)
    }

}

@Suite struct CustomerTests {
    let achieng = MSISDN("254712345678")!

    /// A check that fails (a token unreachable, a key version this host lacks) judges nothing: its
    /// attempt is given back, so such failures never shut the customer out.
    @Test func aPINCheckThatFailsGivesItsAttemptBack() async throws {
        let ledger = try await Ledger.make()
        let customer = try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
        let good = try await ledger.postgres.query("SELECT pin_hash FROM customers WHERE id = \(customer.id)").single()!.decode(String.self, column: 0)
        try await ledger.postgres.query("UPDATE customers SET pin_hash = 'pvv1$9$00' WHERE id = \(customer.id)")
        for _ in 0..<(PINPolicy.attemptsBeforeLock + 1) {
            await #expect(throws: PINKeyError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "4826") }
        }
        let attempts = try await ledger.postgres.query("SELECT failed_pin_attempts FROM customers WHERE id = \(customer.id)").single()!.decode(Int.self, column: 0)
        #expect(attempts == 0)
        try await ledger.postgres.query("UPDATE customers SET pin_hash = \(good) WHERE id = \(customer.id)")
        #expect(try await ledger.wallet.verifyPIN(self.achieng, pin: "4826").id == customer.id)
        await ledger.postgres.shutdown()
    }

    @Test func registerOpensMainAndSavingsAndRefusesDuplicatesAndWeakPINs() async throws {
        let ledger = try await Ledger.make()
        let customer = try await ledger.wallet.register(msisdn: self.achieng, name: "  Achieng Otieno ", pin: "4826", language: "sw")
        #expect(try await ledger.wallet.name(of: customer) == "Achieng Otieno" && customer.language == "sw" && !customer.isLocked())
        #expect(try await ledger.wallet.balances(self.achieng) == Wallet.Balances(main: .zero, savings: .zero, held: .zero))
        await #expect(throws: WalletError.alreadyRegistered) {
            try await ledger.wallet.register(msisdn: self.achieng, name: "Someone", pin: "4829", language: "en")
        }
        await #expect(throws: WalletError.weakPIN) {
            try await ledger.wallet.register(msisdn: MSISDN("254722000111")!, name: "Otieno", pin: "1111", language: "en")
        }
        await #expect(throws: WalletError.notRegistered) { try await ledger.wallet.customer(MSISDN("254722000111")!) }
        let stored = try await ledger.postgres.query("SELECT pin_hash FROM customers").single()!.decode(String.self, column: 0)
        // A verification value under the PIN key, not the PIN: `pvv1$<key version>$<HMAC hex>`,
        // made for this customer's id once the row existed.
        let fields = stored.split(separator: "$")
        #expect(fields.count == 3 && fields[0] == "pvv1" && fields[1] == "1" && fields[2].count == 64 && fields[2].allSatisfy(\.isHexDigit))
        #expect(try await Ledger.pins.check("4826", customer: customer.id, against: stored) == .right(replacement: nil))
        #expect(!fields.contains("4826"), "no field is the PIN")
        await ledger.postgres.shutdown()
    }

    @Test func threeWrongPINsLockTheCustomerAndARightOneResetsTheCount() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")

        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await ledger.wallet.verifyPIN(self.achieng, pin: "1111") }
        try await ledger.wallet.verifyPIN(self.achieng, pin: "4826")
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await ledger.wallet.verifyPIN(self.achieng, pin: "1111") }
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 1)) { try await ledger.wallet.verifyPIN(self.achieng, pin: "abcd") }
        let third = await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "1112") }
        guard case .locked = third else { Issue.record("expected locked, got \(String(describing: third))"); return }
        let whileLocked = await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "4826") }
        #expect(whileLocked?.code == "locked", "even the right PIN is refused while locked")

        // The lock lasts 2 seconds in this test; the database's clock decides. Time is passed in by
        // moving the lock's end into the past, not slept for: then the right PIN works and the
        // count starts over.
        let left = try await ledger.postgres.query(
            "SELECT extract(epoch FROM locked_until - now())::float8 FROM customers WHERE msisdn = \(self.achieng.value)"
        ).single()!.decode(Double.self, column: 0)
        #expect(left > 0 && left <= 2, "locked for the test's 2 seconds: \(left)")
        _ = try await ledger.postgres.query("UPDATE customers SET locked_until = now() - interval '1 millisecond' WHERE msisdn = \(self.achieng.value)")
        try await ledger.wallet.verifyPIN(self.achieng, pin: "4826")
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await ledger.wallet.verifyPIN(self.achieng, pin: "1111") }
        await ledger.postgres.shutdown()
    }

    @Test func concurrentWrongPINsLockExactlyOnceWithoutUndercounting() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    do {
                        try await ledger.wallet.verifyPIN(self.achieng, pin: "9999")
                        return "ok"
                    } catch let error as WalletError {
                        return error.code
                    } catch {
                        return "other"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(!outcomes.contains("ok") && !outcomes.contains("other"))
        #expect(outcomes.filter { $0 == "wrong_pin" }.count <= 2, "at most two attempts are told to try again: \(outcomes)")
        #expect(try await ledger.wallet.customer(self.achieng).isLocked())
        await ledger.postgres.shutdown()
    }

    /// 40 guesses at once, one of them right, on a fresh customer each time: attempts are reserved
    /// before the hash, so only three can be checked before the right one, and it gets through only
    /// when it is among them (3 in 40 by chance). Over 40 rounds that is 3 on average; more than 12 would
    /// happen by chance less than once in 10^5 runs, while checking every guess lets it through in
    /// most rounds.
    @Test func fortyConcurrentGuessesGetPastTheLockNoMoreOftenThanChance() async throws {
        let ledger = try await Ledger.make()
        var successes = 0
        for round in 0..<40 {
            let msisdn = MSISDN("2547120" + String(format: "%05d", round))!
            try await ledger.wallet.register(msisdn: msisdn, name: "Guess \(round)", pin: "4826", language: "en")
            let right = Int.random(in: 0..<40)
            let outcomes = await withTaskGroup(of: String.self) { group in
                for guess in 0..<40 {
                    group.addTask {
                        do {
                            try await ledger.wallet.verifyPIN(msisdn, pin: guess == right ? "4826" : String(format: "%04d", 5000 + guess))
                            return "ok"
                        } catch let error as WalletError {
                            return error.code
                        } catch {
                            return "other"
                        }
                    }
                }
                return await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(!outcomes.contains("other"))
            // Until the right one is checked only three guesses can be; once it passes, the count
            // starts again (whoever sent it knows the PIN), so later guesses may be checked too.
            if !outcomes.contains("ok") {
                #expect(outcomes.filter { $0 == "wrong_pin" }.count <= 3, "at most three guesses are checked: \(outcomes)")
            }
            successes += outcomes.filter { $0 == "ok" }.count
        }
        #expect(successes <= 12, "\(successes) of 40 rounds got past the lock")
        await ledger.postgres.shutdown()
    }

    @Test func attemptsBeingCheckedAreReservedAndLocksEscalateToAnOperator() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
        // Three attempts in flight (reserved, not yet answered): a fourth is refused, right or not.
        try await ledger.postgres.query("UPDATE customers SET failed_pin_attempts = 3 WHERE msisdn = \(self.achieng.value)")
        await #expect(throws: WalletError.tooManyAttempts) { try await ledger.wallet.verifyPIN(self.achieng, pin: "4826") }
        try await ledger.postgres.query("UPDATE customers SET failed_pin_attempts = 0 WHERE msisdn = \(self.achieng.value)")

        func lockOut() async throws -> Date {
            for _ in 0..<2 { await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "9999") } }
            let error = await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "9999") }
            guard case .locked(let until)? = error else {
                Issue.record("expected a lock, got \(String(describing: error))")
                return .distantPast
            }
            return until
        }
        func expireLock() async throws {
            try await ledger.postgres.query("UPDATE customers SET locked_until = now() - interval '1 second' WHERE msisdn = \(self.achieng.value)")
        }
        let first = try await lockOut()
        #expect(first.timeIntervalSinceNow < 10, "the first lock lasts the lock duration (2 s here)")
        try await expireLock()
        let second = try await lockOut()
        #expect(second.timeIntervalSinceNow > 23 * 3600 && second.timeIntervalSinceNow < 25 * 3600, "the second, a day")
        try await expireLock()
        let third = try await lockOut()
        #expect(third.timeIntervalSinceNow > 10 * 365 * 86_400, "the third, until an operator unlocks")
        #expect(try await ledger.wallet.unlockPIN(self.achieng, by: try OperatorAction(reason: "caller verified")))
        try await ledger.wallet.verifyPIN(self.achieng, pin: "4826")
        // A right PIN after a lock ran out starts the escalation again.
        try await ledger.postgres.query("UPDATE customers SET locked_until = now() - interval '1 second', pin_locks = 1 WHERE msisdn = \(self.achieng.value)")
        try await ledger.wallet.verifyPIN(self.achieng, pin: "4826")
        #expect(try await lockOut().timeIntervalSinceNow < 10)
        await ledger.postgres.shutdown()
    }

    @Test func aPINChangeIsGrantedToOneSessionOnceAndNothingSecretLeavesTheDatabase() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
        await #expect(throws: WalletError.tokenExpired, "no grant yet") {
            try await ledger.wallet.changePIN(self.achieng, conversation: "ussd:s1", new: "4829")
        }
        try await ledger.wallet.grantPINChange(self.achieng, pin: "4826", conversation: "ussd:s1")
        await #expect(throws: WalletError.tokenExpired, "another session") {
            try await ledger.wallet.changePIN(self.achieng, conversation: "ussd:s2", new: "4829")
        }
        await #expect(throws: WalletError.weakPIN, "its own last four digits") {
            try await ledger.wallet.changePIN(self.achieng, conversation: "ussd:s1", new: "5678")
        }
        try await ledger.wallet.changePIN(self.achieng, conversation: "ussd:s1", new: "4829")
        await #expect(throws: WalletError.tokenExpired, "used once") {
            try await ledger.wallet.changePIN(self.achieng, conversation: "ussd:s1", new: "7391")
        }
        try await ledger.wallet.verifyPIN(self.achieng, pin: "4829")
        await ledger.postgres.shutdown()
    }

    @Test func changePINNeedsTheCurrentOneAndRefusesWeakOnes() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await ledger.wallet.changePIN(self.achieng, current: "1111", new: "4829") }
        await #expect(throws: WalletError.weakPIN) { try await ledger.wallet.changePIN(self.achieng, current: "4826", new: "1990") }
        await #expect(throws: WalletError.weakPIN) { try await ledger.wallet.changePIN(self.achieng, current: "4826", new: "4826") }
        try await ledger.wallet.changePIN(self.achieng, current: "4826", new: "4829")
        try await ledger.wallet.verifyPIN(self.achieng, pin: "4829")
        await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "4826") }
        try await ledger.wallet.setLanguage(self.achieng, language: "sw")
        #expect(try await ledger.wallet.customer(self.achieng).language == "sw")
        await ledger.postgres.shutdown()
    }

    @Test func customersOfEveryKnownCountryAreStoredAndTheDatabaseRefusesOtherShapes() async throws {
        let ledger = try await Ledger.make()
        for (number, country) in [("233241234567", MSISDN.Country.ghana), ("2348031234567", .nigeria), ("254712345678", .kenya)] {
            let msisdn = try #require(MSISDN(number, countries: [country]))
            let customer = try await ledger.wallet.register(msisdn: msisdn, name: "Ama", pin: "4826", language: "en")
            #expect(customer.msisdn.value == number)
        }
        for impossible in ["254912345678", "233341234567", "23480312345678"] {
            await #expect(throws: PostgresError.self, "\(impossible)") {
                try await ledger.postgres.query("INSERT INTO customers (msisdn, name, language, pin_hash) VALUES (\(impossible), 'X', 'en', 'h')")
            }
        }
        await ledger.postgres.shutdown()
    }
}

/// The ledger reads its own settings, each checked where it is read.
@Suite struct WalletSettingsTests {
    @Test func theLedgersSettingsAreReadInShillingsAndHours() throws {
        let read = try WalletSettings(
            reader: SettingsReader(environment: [
                "PIN_LOCK_MINUTES": "15", "PIN_RESET_COOLDOWN_HOURS": "48", "PIN_RESET_COOLDOWN_LIMIT": "500", "LEDGER_DUAL_APPROVAL_ABOVE": "20000",
                "WALLET_COMMIT_LANES": "4",
            ]))
        #expect(read.pinLockMinutes == 15 && read.pinResetCooldown.window == .seconds(48 * 3600) && read.pinResetCooldown.limit == .shillings(500))
        #expect(read.ledgerDualApprovalAbove == 2_000_000 && read.groupCommit.lanes == 4 && read.groupCommit.maximumBatch == 64)
        #expect(read.audited["pin.reset_cooldown_hours"] == "48" && read.audited["ledger.dual_approval_above"] == "2000000")
        let error = #expect(throws: ConfigError.self) { try WalletSettings(reader: SettingsReader(environment: ["PIN_RESET_COOLDOWN_HOURS": "721"])) }
        #expect(error?.variable == "PIN_RESET_COOLDOWN_HOURS")
    }
}
