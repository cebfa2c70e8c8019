import Foundation
import Synchronization

/// The customers' profiles this process read last, for the home menu's lookup on every dial
/// (name, language, status, lock): a menu hop that needs nothing else from Postgres then makes no
/// round trip to it.
///
/// A profile is only kept while Postgres can say when it changes: migration 0019 notifies every
/// change of a profile's columns (`customer_profiles`), a ``Postgres/PostgresListener`` hands the
/// notices to ``changed(_:)``, and while that listener is not listening (`listening(false)`:
/// starting, reconnecting, stopped) nothing is kept and every lookup reads Postgres. So a profile
/// served from here is at most as old as a notice takes to arrive, milliseconds; money is never
/// decided on it (every movement reads and locks its rows in its own statement).
///
/// A lookup that was reading Postgres while any notice came keeps nothing: it may have read the
/// row before the change. Only found customers are kept (a number that registers is read again),
/// at most `limit` of them, none longer than `maximumAge`.
public final class CustomerProfiles: Sendable {
    private struct Entry {
        let profile: Wallet.Profile
        let read: ContinuousClock.Instant
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Counts every notice and every change of `listening`: a lookup keeps what it read only
        /// when this did not move while it read.
        var generation: UInt64 = 0
        var listening = false
        var hits = 0
        var misses = 0
    }

    /// True when migration 0019's triggers are on `customers` and enabled (not switched off, and
    /// not only for replication): a listener that finds them missing keeps nothing.
    public static let noticesInPlace = """
        SELECT count(*) = 2 FROM pg_trigger
        WHERE tgrelid = 'customers'::regclass AND tgenabled IN ('O', 'A')
          AND tgname IN ('customers_profile_changed', 'customers_profile_added_or_removed')
        """

    let limit: Int
    let maximumAge: Duration
    private let state = Mutex(State())

    /// At most `limit` profiles (at least 1), each kept at most `maximumAge`.
    public init(limit: Int, maximumAge: Duration = .seconds(600)) {
        self.limit = max(1, limit)
        self.maximumAge = maximumAge
    }

    /// The profile behind `msisdn`: kept, or read with `load` (and kept when nothing changed meanwhile).
    func lookup(_ msisdn: String, load: () async throws -> Wallet.Profile) async throws -> Wallet.Profile {
        let now = ContinuousClock.now
        let (kept, generation) = self.state.withLock { state -> (Wallet.Profile?, UInt64?) in
            guard state.listening else { return (nil, nil) }
            if let entry = state.entries[msisdn], now - entry.read < self.maximumAge {
                state.hits += 1
                return (entry.profile, nil)
            }
            state.misses += 1
            return (nil, state.generation)
        }
        if let kept { return kept }
        let profile = try await load()
        if let generation {
            self.state.withLock { state in
                guard state.listening, state.generation == generation else { return }
                if state.entries[msisdn] == nil, state.entries.count >= self.limit { state.entries.remove(at: state.entries.startIndex) }
                state.entries[msisdn] = Entry(profile: profile, read: now)
            }
        }
        return profile
    }

    /// A notice: the profile of `msisdn` changed (or the number came or went).
    public func changed(_ msisdn: String) {
        self.state.withLock { state in
            state.generation &+= 1
            state.entries[msisdn] = nil
        }
    }

    /// Whether notices arrive: profiles are kept only while they do. Either way, what was kept goes.
    public func listening(_ on: Bool) {
        self.state.withLock { state in
            state.generation &+= 1
            state.listening = on
            state.entries.removeAll()
        }
    }

    /// Lookups answered from here and lookups that read Postgres while listening (for metrics and tests).
    public var counts: (hits: Int, misses: Int, kept: Int, listening: Bool) {
        self.state.withLock { ($0.hits, $0.misses, $0.entries.count, $0.listening) }
    }
}
