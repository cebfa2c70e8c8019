import Foundation
import Postgres
import Testing
import TestSupport
import Wallet

@Suite struct PINPolicyTests {
    @Test(arguments: ["0000", "7777", "1234", "2345", "9876", "4321", "1987", "2001", "123", "12345", "12a4"])
    func weakOrMalformedPINsAreRefused(pin: String) {
        #expect(!PINPolicy.isAcceptable(pin))
    }

    @Test(arguments: ["2580", "4829", "7391", "0842", "1357"])
    func ordinaryPINsAreAccepted(pin: String) {
        #expect(PINPolicy.isAcceptable(pin))
    }

    @Test func hashesAreSaltedPepperedAndVerifiable() async throws {
        let hasher = PINHasher(pepper: Array("test-pepper-of-32-bytes-at-least".utf8), cost: .testing)
        let first = try await hasher.hash("2580")
        let second = try await hasher.hash("2580")
        #expect(first != second, "a random salt per hash")
        #expect(first.hasPrefix("scrypt$256$4$1$") && !first.contains("2580"))
        #expect(try await hasher.verify("2580", against: first))
        #expect(try await hasher.verify("2581", against: first) == false)
        let otherPepper = PINHasher(pepper: Array("another-pepper-of-32-bytes-long!".utf8), cost: .testing)
        #expect(try await otherPepper.verify("2580", against: first) == false, "without the pepper the hash is useless")
        #expect(hasher.seal("2580") == hasher.seal("2580") && hasher.seal("2580") != otherPepper.seal("2580"))
    }
}

@Suite struct CustomerTests {
    let achieng = MSISDN("254712345678")!

    @Test func registerOpensMainAndSavingsAndRefusesDuplicatesAndWeakPINs() async throws {
        let ledger = try await Ledger.make()
        let customer = try await ledger.wallet.register(msisdn: self.achieng, name: "  Achieng Otieno ", pin: "2580", language: "sw")
        #expect(customer.name == "Achieng Otieno" && customer.language == "sw" && !customer.isLocked())
        #expect(try await ledger.wallet.balances(self.achieng) == Wallet.Balances(main: .zero, savings: .zero, held: .zero))
        await #expect(throws: WalletError.alreadyRegistered) {
            try await ledger.wallet.register(msisdn: self.achieng, name: "Someone", pin: "4829", language: "en")
        }
        await #expect(throws: WalletError.weakPIN) {
            try await ledger.wallet.register(msisdn: MSISDN("254722000111")!, name: "Otieno", pin: "1111", language: "en")
        }
        await #expect(throws: WalletError.notRegistered) { try await ledger.wallet.customer(MSISDN("254722000111")!) }
        let stored = try await ledger.postgres.query("SELECT pin_hash FROM customers").single()!.decode(String.self, column: 0)
        #expect(!stored.contains("2580"))
        await ledger.postgres.shutdown()
    }

    @Test func threeWrongPINsLockTheCustomerAndARightOneResetsTheCount() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "2580", language: "en")

        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await ledger.wallet.verifyPIN(self.achieng, pin: "1111") }
        try await ledger.wallet.verifyPIN(self.achieng, pin: "2580")
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await ledger.wallet.verifyPIN(self.achieng, pin: "1111") }
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 1)) { try await ledger.wallet.verifyPIN(self.achieng, pin: "abcd") }
        let third = await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "1112") }
        guard case .locked = third else { Issue.record("expected locked, got \(String(describing: third))"); return }
        let whileLocked = await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "2580") }
        #expect(whileLocked?.code == "locked", "even the right PIN is refused while locked")

        // After the lock (2 seconds in this test) the right PIN works and the count starts over.
        try await Task.sleep(for: .milliseconds(2200))
        try await ledger.wallet.verifyPIN(self.achieng, pin: "2580")
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await ledger.wallet.verifyPIN(self.achieng, pin: "1111") }
        await ledger.postgres.shutdown()
    }

    @Test func concurrentWrongPINsLockExactlyOnceWithoutUndercounting() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "2580", language: "en")
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

    @Test func changePINNeedsTheCurrentOneAndRefusesWeakOnes() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "2580", language: "en")
        await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await ledger.wallet.changePIN(self.achieng, current: "1111", new: "4829") }
        await #expect(throws: WalletError.weakPIN) { try await ledger.wallet.changePIN(self.achieng, current: "2580", new: "1990") }
        await #expect(throws: WalletError.weakPIN) { try await ledger.wallet.changePIN(self.achieng, current: "2580", new: "2580") }
        try await ledger.wallet.changePIN(self.achieng, current: "2580", new: "4829")
        try await ledger.wallet.verifyPIN(self.achieng, pin: "4829")
        await #expect(throws: WalletError.self) { try await ledger.wallet.verifyPIN(self.achieng, pin: "2580") }
        try await ledger.wallet.setLanguage(self.achieng, language: "sw")
        #expect(try await ledger.wallet.customer(self.achieng).language == "sw")
        await ledger.postgres.shutdown()
    }
}
