import Basics
import Foundation
@testable import LedgerTestSupport
import Logging
import Postgres
import Synchronization
import Testing
import TestSupport
@testable import Wallet

/// The profiles a gateway keeps for the home menu (`CustomerProfiles`): kept while Postgres'
/// notices of changes are heard (migration 0019), dropped on each notice, never kept while none
/// can be heard.
@Suite struct CustomerProfilesTests {
    let achieng = MSISDN("254712345678")!

    /// A wallet that keeps profiles, its listener running, and the notices it heard.
    struct Listening {
        let ledger: Ledger
        let wallet: Wallet
        let profiles: CustomerProfiles
        let notices: Notices
    }

    final class Notices: Sendable {
        private let heard = Mutex<[String]>([])
        func append(_ msisdn: String) { self.heard.withLock { $0.append(msisdn) } }
        func withLock<R>(_ body: ([String]) -> R) -> R { self.heard.withLock { body($0) } }
    }

    static func listening(_ body: (Listening) async throws -> Void) async throws {
        let ledger = try await Ledger.make()
        let profiles = CustomerProfiles(limit: 100)
        let wallet = Wallet(postgres: ledger.postgres, pins: Ledger.pins, profiles: profiles, personalData: ledger.wallet.personalData)
        let notices = Notices()
        let listener = PostgresListener(
            configuration: ledger.postgres.configuration, channel: "customer_profiles", logger: Logger(label: "test"),
            notice: { msisdn in
                notices.append(msisdn)
                profiles.changed(msisdn)
            },
            listening: { profiles.listening($0) }
        )
        let running = Task { try await listener.run() }
        try await Self.until { profiles.counts.listening }
        try await body(Listening(ledger: ledger, wallet: wallet, profiles: profiles, notices: notices))
        running.cancel()
        _ = await running.result
        #expect(!profiles.counts.listening, "a listener that stopped keeps nothing")
        await ledger.shutdown()
    }

    /// Waits for something another connection makes happen (a notice, a reconnection): no time is asserted.
    static func until(_ condition: () -> Bool) async throws {
        for _ in 0..<3000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        #expect(condition())
    }

    @Test func aProfileIsKeptUntilPostgresSaysItChanged() async throws {
        try await Self.listening { l in
            try await l.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
            try await Self.until { l.notices.withLock { $0.contains(self.achieng.value) } }
            #expect(try await l.wallet.profile(self.achieng).language == "en")
            #expect(try await l.wallet.profile(self.achieng).language == "en")
            #expect(l.profiles.counts.hits == 1 && l.profiles.counts.kept == 1, "the second lookup read no row")
            // Changed by another connection (the staff desk, another replica): the notice drops it.
            try await l.ledger.postgres.query("UPDATE customers SET language = 'sw' WHERE msisdn = \(self.achieng.value)")
            try await Self.until { l.profiles.counts.kept == 0 }
            #expect(try await l.wallet.profile(self.achieng).language == "sw")
            // A suspension as well, and a lock.
            try await l.ledger.postgres.query("UPDATE customers SET status = 'suspended' WHERE msisdn = \(self.achieng.value)")
            try await Self.until { l.profiles.counts.kept == 0 }
            #expect(try await l.wallet.profile(self.achieng).isBlocked)
            try await l.ledger.postgres.query("UPDATE customers SET locked_until = now() + interval '1 hour' WHERE msisdn = \(self.achieng.value)")
            try await Self.until { l.profiles.counts.kept == 0 }
            #expect(try await l.wallet.profile(self.achieng).isLocked())
            // A PIN reset an operator asked for, and the number moving to another row.
            try await l.ledger.postgres.query("UPDATE customers SET locked_until = NULL, pin_reset_required = true WHERE msisdn = \(self.achieng.value)")
            try await Self.until { l.profiles.counts.kept == 0 }
            #expect(try await l.wallet.profile(self.achieng).pinResetRequired)
            let moved = MSISDN("254712345600")!
            try await l.ledger.postgres.query("UPDATE customers SET msisdn = \(moved.value) WHERE msisdn = \(self.achieng.value)")
            try await Self.until { l.profiles.counts.kept == 0 }
            await #expect(throws: WalletError.notRegistered) { try await l.wallet.profile(self.achieng) }
            #expect(try await l.wallet.profile(moved).name == "Achieng")
            // A number never registered is read every time.
            let stranger = MSISDN("254722000111")!
            await #expect(throws: WalletError.notRegistered) { try await l.wallet.profile(stranger) }
            await #expect(throws: WalletError.notRegistered) { try await l.wallet.profile(stranger) }
        }
    }

    @Test func aPINCheckThatChangesNoProfileTellsNobody() async throws {
        try await Self.listening { l in
            try await l.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
            try await Self.until { l.notices.withLock { $0.count == 1 } }
            _ = try await l.wallet.profile(self.achieng)
            // A right PIN and a wrong one short of a lock change no column of the profile.
            try await l.wallet.verifyPIN(self.achieng, pin: "4826")
            await #expect(throws: WalletError.wrongPIN(attemptsLeft: 2)) { try await l.wallet.verifyPIN(self.achieng, pin: "9999") }
            // Then a change of another customer's profile: notices arrive in commit order, so once
            // it came, any from the PIN checks would have come before it.
            let kamau = MSISDN("254722000222")!
            try await l.wallet.register(msisdn: kamau, name: "Kamau", pin: "4826", language: "en")
            try await Self.until { l.notices.withLock { $0.contains(kamau.value) } }
            #expect(l.notices.withLock { $0.filter { $0 == self.achieng.value } } == [self.achieng.value], "the registration's notice only")
        }
    }

    @Test func nothingIsKeptWhileNoticesCannotBeHeard() async throws {
        try await Self.listening { l in
            try await l.wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
            _ = try await l.wallet.profile(self.achieng)
            _ = try await l.wallet.profile(self.achieng)
            // The listening connection is cut (a restart, a failover): notices sent now are lost.
            try await l.ledger.postgres.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE '% listener'"
            )
            try await Self.until { !l.profiles.counts.listening }
            #expect(l.profiles.counts.kept == 0)
            // A change no notice reaches this listener for: read from Postgres, whether the
            // listener is back yet or not (coming back drops everything kept).
            try await l.ledger.postgres.query("UPDATE customers SET language = 'sw' WHERE msisdn = \(self.achieng.value)")
            let hits = l.profiles.counts.hits
            #expect(try await l.wallet.profile(self.achieng).language == "sw")
            #expect(l.profiles.counts.hits == hits, "read from Postgres")
            // Listening again: kept again, from a fresh read (the update's own notice may still
            // drop it once, so read until a lookup is answered from what was kept).
            try await Self.until { l.profiles.counts.listening }
            for _ in 0..<3000 where l.profiles.counts.hits == hits {
                #expect(try await l.wallet.profile(self.achieng).language == "sw")
            }
            #expect(l.profiles.counts.hits > hits)
        }
    }

    @Test func aChangeThisProcessMakesIsSeenByItsNextLookupAtOnce() async throws {
        let ledger = try await Ledger.make()
        let profiles = CustomerProfiles(limit: 10)
        let wallet = Wallet(postgres: ledger.postgres, pins: Ledger.pins, lockDuration: .seconds(60), profiles: profiles, personalData: ledger.wallet.personalData)
        // Kept as if notices were heard, but none will come: only the wallet's own dropping shows.
        profiles.listening(true)
        try await wallet.register(msisdn: self.achieng, name: "Achieng", pin: "4826", language: "en")
        _ = try await wallet.profile(self.achieng)
        try await wallet.setLanguage(self.achieng, language: "sw")
        #expect(try await wallet.profile(self.achieng).language == "sw")
        for _ in 0..<3 { _ = try? await wallet.verifyPIN(self.achieng, pin: "9999") }
        #expect(try await wallet.profile(self.achieng).isLocked(), "the lock the third wrong PIN made")
        await ledger.shutdown()
    }

    @Test func aListenerKeepsNothingWhileTheNoticesTriggersAreOff() async throws {
        let ledger = try await Ledger.make()
        try await ledger.postgres.query("ALTER TABLE customers DISABLE TRIGGER customers_profile_changed")
        try await ledger.postgres.query("CREATE SEQUENCE listener_checks")
        let profiles = CustomerProfiles(limit: 10)
        let listener = PostgresListener(
            configuration: ledger.postgres.configuration, channel: "customer_profiles",
            requires: "SELECT nextval('listener_checks') > 0 AND (\(CustomerProfiles.noticesInPlace))", logger: Logger(label: "test"),
            notice: { profiles.changed($0) }, listening: { profiles.listening($0) }
        )
        let running = Task { try await listener.run() }
        let checks: @Sendable () async throws -> Int64 = {
            try await ledger.postgres.query("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM listener_checks").single()!.decode(Int64.self, column: 0)
        }
        // Connected, listened and checked (twice: the first check had answered false when the
        // second began): not listening, so nothing is kept.
        for _ in 0..<3000 where try await checks() < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try await checks() >= 2)
        #expect(!profiles.counts.listening)
        // Switched back on: listening from the next attempt.
        try await ledger.postgres.query("ALTER TABLE customers ENABLE TRIGGER customers_profile_changed")
        try await Self.until { profiles.counts.listening }
        // Switched off while listening: the next heartbeat finds it out.
        try await ledger.postgres.query("ALTER TABLE customers DISABLE TRIGGER customers_profile_changed")
        try await Self.until { !profiles.counts.listening }
        running.cancel()
        _ = await running.result
        await ledger.shutdown()
    }

    static func customer(_ language: String) -> Wallet.Profile {
        Wallet.Profile(
            customer: Wallet.Customer(
                id: 1, msisdn: MSISDN("254712345678")!, subject: UUID(), sealedName: nil, erasedAt: nil, language: language, status: .active,
                lockedUntil: nil, pinResetRequired: false, tier: nil, pinResetCompletedAt: nil
            ),
            name: "Achieng"
        )
    }

    @Test func aReadDuringWhichANoticeCameIsNotKept() async throws {
        let profiles = CustomerProfiles(limit: 2)
        profiles.listening(true)
        // The notice of a change comes while the row is read: what was read may be the row before it.
        let read = try await profiles.lookup("254712345678") {
            profiles.changed("254712345678")
            return Self.customer("en")
        }
        #expect(read.language == "en" && profiles.counts.kept == 0)
        // Without a notice meanwhile it is kept, and answered from there.
        _ = try await profiles.lookup("254712345678") { Self.customer("en") }
        let kept = try await profiles.lookup("254712345678") { Self.customer("sw") }
        #expect(kept.language == "en" && profiles.counts.kept == 1)
        // Never more than the limit.
        for number in ["254712345679", "254712345670", "254712345671"] {
            _ = try await profiles.lookup(number) { Self.customer("en") }
        }
        #expect(profiles.counts.kept == 2)
        // Not listening: nothing kept, every lookup reads.
        profiles.listening(false)
        let unheard = try await profiles.lookup("254712345678") { Self.customer("sw") }
        #expect(unheard.language == "sw" && profiles.counts.kept == 0)
    }

    @Test func aProfileIsReadAgainPastItsAge() async throws {
        let profiles = CustomerProfiles(limit: 10, maximumAge: .zero)
        profiles.listening(true)
        _ = try await profiles.lookup("254712345678") { Self.customer("en") }
        #expect(try await profiles.lookup("254712345678") { Self.customer("sw") }.language == "sw")
    }
}
