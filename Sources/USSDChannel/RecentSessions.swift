import Synchronization

/// The last record this process wrote per session, for at most the session TTL; bounded. Only
/// sessions that go on are kept: an ended one has no next hop to spare a read for (a repeat of its
/// last hop, or a hop after it, is answered from Redis), so memory follows the live sessions, not
/// every session of the last two minutes.
final class RecentSessions: Sendable {
    private struct Entry {
        let version: Int
        let record: SessionRecord
        let at: ContinuousClock.Instant
    }
    private let entries = Mutex<[String: Entry]>([:])
    private let lifetime: Duration
    static let capacity = 100_000

    init(lifetime: Duration) { self.lifetime = lifetime }

    func get(_ sessionId: String) -> (version: Int, record: SessionRecord)? {
        self.entries.withLock { entries in
            guard let entry = entries[sessionId] else { return nil }
            guard ContinuousClock.now - entry.at < self.lifetime else {
                entries[sessionId] = nil
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
        self.entries.withLock { entries in
            if entries.count >= Self.capacity {
                entries = entries.filter { now - $0.value.at < self.lifetime }
                if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[sessionId] = Entry(version: version, record: record, at: now)
        }
    }

    func remove(_ sessionId: String) {
        _ = self.entries.withLock { $0.removeValue(forKey: sessionId) }
    }
}
