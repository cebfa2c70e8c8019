import Menus
import Testing
@testable import USSDChannel

/// The process's copy of each live session's last record: bounded in entries and in queue slots,
/// oldest out first, a session's latest write kept whatever its earlier slots say.
@Suite struct RecentSessionsTests {
    static let live = SessionState(screen: "main", variables: [:], language: "en")

    func record(_ hop: Int, live: Bool = true) -> SessionRecord {
        SessionRecord(hop: hop, textLength: 0, textSeal: "s", reply: live ? "CON hi" : "END bye", state: live ? Self.live : nil)
    }

    @Test func theOldestLeaveFirstAndTheCacheStaysWithinItsCapacity() {
        let recent = RecentSessions(lifetime: .seconds(3600), capacity: 100)
        for index in 0..<1_000 { recent.put("s\(index)", version: 1, self.record(1)) }
        #expect(recent.held.entries == 100)
        #expect(recent.get("s899") == nil && recent.get("s900")?.version == 1 && recent.get("s999")?.version == 1)
    }

    @Test func aSessionWrittenAgainKeepsItsLatestRecordWhenAnOlderSlotComesUp() {
        let recent = RecentSessions(lifetime: .seconds(3600), capacity: 3)
        recent.put("a", version: 1, self.record(1))
        recent.put("b", version: 1, self.record(1))
        recent.put("c", version: 1, self.record(1))
        recent.put("a", version: 2, self.record(2))
        recent.put("d", version: 1, self.record(1))
        #expect(recent.get("a")?.version == 2)
        #expect(recent.get("b") == nil)
        #expect(recent.held.entries == 3)
    }

    /// A quiet session at the queue's front cannot hold back the slots of a busy one behind it:
    /// past twice the capacity in slots, the oldest entry leaves early (it will be read from Redis).
    @Test func oneBusySessionCannotGrowTheQueuePastItsBound() {
        let recent = RecentSessions(lifetime: .seconds(3600), capacity: 100)
        recent.put("quiet", version: 1, self.record(1))
        for version in 1...50_000 { recent.put("busy", version: version, self.record(version)) }
        #expect(recent.held.slots <= 2 * 100 + 1)
        #expect(recent.get("quiet") == nil)
        #expect(recent.get("busy")?.version == 50_000)
    }

    @Test func aSessionRemovedAndWrittenAgainIsKeptAtItsNewRecord() {
        let recent = RecentSessions(lifetime: .seconds(3600), capacity: 2)
        recent.put("a", version: 1, self.record(1))
        recent.remove("a")
        recent.put("a", version: 3, self.record(3))
        recent.put("b", version: 1, self.record(1))
        #expect(recent.get("a")?.version == 3 && recent.held.entries == 2)
    }

    @Test func endedAndExpiredSessionsAreNotKept() {
        let recent = RecentSessions(lifetime: .seconds(3600), capacity: 100)
        recent.put("a", version: 1, self.record(1))
        recent.put("a", version: 2, self.record(2, live: false))
        #expect(recent.get("a") == nil)
        let gone = RecentSessions(lifetime: .zero, capacity: 100)
        gone.put("b", version: 1, self.record(1))
        #expect(gone.get("b") == nil && gone.held.entries == 0)
    }
}
