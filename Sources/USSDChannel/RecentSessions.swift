import Synchronization

/// The last record this process wrote per session, for at most the session TTL; bounded. Only
/// sessions that go on are kept: an ended one has no next hop to spare a read for (a repeat of its
/// last hop, or a hop after it, is answered from Redis), so memory follows the live sessions, not
/// every session of the last two minutes.
///
/// Entries leave in the order they were written: each write notes its session in a queue, and
/// each write drops from the queue's front what has expired (or, when more than `capacity` are
/// held, the oldest), a few at a time. No write ever scans the whole cache, however many sessions
/// are live. A queue slot whose session was written again since is skipped when it comes up.
final class RecentSessions: Sendable {
    private struct Entry {
        let version: Int
        let record: SessionRecord
        let at: ContinuousClock.Instant
    }
    private struct State {
        var entries: [String: Entry] = [:]
        /// Sessions in the order of their writes (a session written twice is here twice).
        var order: [(sessionId: String, at: ContinuousClock.Instant)] = []
        /// The queue's front: slots before it are gone.
        var head = 0
    }
    private let state = Mutex(State())
    private let lifetime: Duration
    let capacity: Int

    init(lifetime: Duration, capacity: Int = 100_000) {
        self.lifetime = lifetime
        self.capacity = capacity
    }

    func get(_ sessionId: String) -> (version: Int, record: SessionRecord)? {
        self.state.withLock { state in
            guard let entry = state.entries[sessionId] else { return nil }
            guard ContinuousClock.now - entry.at < self.lifetime else {
                state.entries[sessionId] = nil
                return nil
            }
            return (entry.version, entry.record)
        }
    }

    func put(_ sessionId: String, version: Int, _ record: SessionRecord) {
        guard record.state != nil || record.offer != nil || record.claim != nil else {
            self.remove(sessionId)
            return
        }
        let now = ContinuousClock.now
        self.state.withLock { state in
            state.entries[sessionId] = Entry(version: version, record: record, at: now)
            state.order.append((sessionId, now))
            self.trim(&state, now: now)
        }
    }

    func remove(_ sessionId: String) {
        _ = self.state.withLock { $0.entries.removeValue(forKey: sessionId) }
    }

    /// Entries held and queue slots waiting, for tests.
    var held: (entries: Int, slots: Int) { self.state.withLock { ($0.entries.count, $0.order.count - $0.head) } }

    /// Drops the queue's front while it is stale (its session written since, or removed), expired,
    /// or beyond the bounds: `capacity` entries, and twice that many queue slots (a session that
    /// hops often then leaves the cache early, to be read from Redis). Each write adds one slot,
    /// so the work is constant per write on average.
    private func trim(_ state: inout State, now: ContinuousClock.Instant) {
        while state.head < state.order.count {
            let (sessionId, at) = state.order[state.head]
            if let entry = state.entries[sessionId], entry.at == at {
                let slots = state.order.count - state.head
                if now - at < self.lifetime && state.entries.count <= self.capacity && slots <= 2 * self.capacity { break }
                state.entries[sessionId] = nil
            }
            state.head += 1
        }
        // The slots before the front are released once they are half the queue.
        if state.head >= 1_024 && state.head * 2 >= state.order.count {
            state.order.removeFirst(state.head)
            state.head = 0
        }
    }
}
