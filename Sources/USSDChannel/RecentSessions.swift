import DequeModule
import Synchronization

/// The last record this process wrote per session, for at most the session TTL; bounded. Only
/// sessions that go on are kept: an ended one has no next hop to spare a read for (a repeat of its
/// last hop, or a hop after it, is answered from Redis), so memory follows the live sessions, not
/// every session of the last two minutes.
///
/// Entries leave in the order they were written: each write notes its session in a queue, and
/// each write drops a few slots from the queue's front: what has expired, or, beyond the bounds,
/// the oldest. No write ever scans the whole cache, however many sessions are live. A slot whose
/// session was written again since is skipped when it comes up.
final class RecentSessions: Sendable {
    private struct Entry {
        let version: Int
        let record: SessionRecord
        let at: ContinuousClock.Instant
        /// The write's number: the slot that owns this entry.
        let write: UInt64
    }
    private struct Slot {
        let sessionId: String
        let write: UInt64
    }
    private struct State {
        var entries: [String: Entry] = [:]
        /// Sessions in the order of their writes (a session written twice is here twice).
        var order = Deque<Slot>()
        var writes: UInt64 = 0
    }
    private let state = Mutex(State())
    private let lifetime: Duration
    let capacity: Int
    /// Slots looked at per write, beyond what the hard bound requires.
    static let stepsPerWrite = 4

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
        self.state.withLock { state in
            let now = ContinuousClock.now
            state.writes &+= 1
            state.entries[sessionId] = Entry(version: version, record: record, at: now, write: state.writes)
            state.order.append(Slot(sessionId: sessionId, write: state.writes))
            self.trim(&state, now: now)
        }
    }

    func remove(_ sessionId: String) {
        _ = self.state.withLock { $0.entries.removeValue(forKey: sessionId) }
    }

    /// Entries held and queue slots waiting, for tests.
    var held: (entries: Int, slots: Int) { self.state.withLock { ($0.entries.count, $0.order.count) } }

    /// Looks at up to `stepsPerWrite` slots at the queue's front (and at more only while the
    /// entries are past an eighth over `capacity`): drops the stale ones (their session written
    /// since, or removed), and the entries that have expired or are the oldest beyond the bounds:
    /// `capacity` entries, and twice that many slots (a session that hops often then leaves the
    /// cache early, to be read from Redis). Each write adds one slot and takes up to four, so the
    /// queue drains whatever it holds, a little per write.
    private func trim(_ state: inout State, now: ContinuousClock.Instant) {
        let hardBound = self.capacity + self.capacity / 8
        var steps = 0
        while let slot = state.order.first, steps < Self.stepsPerWrite || state.entries.count > hardBound {
            if let entry = state.entries[slot.sessionId], entry.write == slot.write {
                let over = state.entries.count > self.capacity || state.order.count > 2 * self.capacity
                if now - entry.at < self.lifetime && !over { break }
                state.entries[slot.sessionId] = nil
            }
            state.order.removeFirst()
            steps += 1
        }
    }
}
