import Menus
import Testing
@testable import USSDChannel

/// The active-session index (the live-sessions gauge's source) is written when a session starts,
/// when less than half its TTL is left of the score last written, and once when it ends; not on
/// every hop. Pure calls: the time is a number.
@Suite struct SessionIndexTests {
    let ttl = 120
    let start = 1_800_000_000
    static let live = SessionState(screen: "main", variables: [:], language: "en")

    func record(state: SessionState? = SessionIndexTests.live, indexedUntil: Int? = nil) -> SessionRecord {
        var record = SessionRecord(hop: 1, textLength: 0, textSeal: "s", reply: state == nil ? "END bye" : "CON hi", state: state)
        record.indexedUntil = indexedUntil
        return record
    }

    @Test func aNewSessionIsIndexedAndItsNextHopsWithinHalfTheTTLAreNot() {
        var first = self.record()
        #expect(USSDSessionStore.indexing(&first, previous: nil, now: self.start, ttlSeconds: self.ttl) == .live(until: self.start + 120))
        #expect(first.indexedUntil == self.start + 120)

        var second = self.record()
        #expect(USSDSessionStore.indexing(&second, previous: first, now: self.start + 59, ttlSeconds: self.ttl) == .unchanged)
        #expect(second.indexedUntil == self.start + 120, "the score written stays with the record")

        var later = self.record()
        #expect(USSDSessionStore.indexing(&later, previous: second, now: self.start + 60, ttlSeconds: self.ttl) == .live(until: self.start + 180))
        #expect(later.indexedUntil == self.start + 180)
    }

    @Test func anEndedSessionLeavesTheIndexOnce() {
        let live = self.record(indexedUntil: self.start + 120)
        var ended = self.record(state: nil)
        #expect(USSDSessionStore.indexing(&ended, previous: live, now: self.start + 5, ttlSeconds: self.ttl) == .ended)
        #expect(ended.indexedUntil == nil)

        var again = self.record(state: nil)
        #expect(USSDSessionStore.indexing(&again, previous: ended, now: self.start + 6, ttlSeconds: self.ttl) == .unchanged, "taken out already")

        var endedAtOnce = self.record(state: nil)
        #expect(USSDSessionStore.indexing(&endedAtOnce, previous: nil, now: self.start, ttlSeconds: self.ttl) == .unchanged, "never indexed")
    }

    @Test func aRecordOfTheVersionBeforeIsIndexedOnItsNextHopAndTakenOutWhenItEnds() {
        let older = self.record()  // live, written before records said where the index stood
        var next = self.record()
        #expect(USSDSessionStore.indexing(&next, previous: older, now: self.start, ttlSeconds: self.ttl) == .live(until: self.start + 120))
        var ended = self.record(state: nil)
        #expect(USSDSessionStore.indexing(&ended, previous: older, now: self.start, ttlSeconds: self.ttl) == .ended)
    }
}
