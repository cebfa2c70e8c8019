import Menus
import Testing
@testable import USSDChannel

/// The hop planner decides from the stored record alone; every case, without Redis.
@Suite struct HopPlanTests {
    static let owner = "254712000001"
    static let state = SessionState(screen: "main", variables: [:], language: "sw")

    static func record(seal: String = "s1", state: SessionState? = HopPlanTests.state, offer: SessionState? = nil, claim: String? = nil) -> SessionRecord {
        var record = SessionRecord(hop: 1, textLength: 0, textSeal: seal, reply: "CON Karibu", state: state, offer: offer)
        record.claim = claim
        record.msisdn = Self.owner
        return record
    }

    func plan(_ record: SessionRecord?, msisdn: String = HopPlanTests.owner, seal: String = "s2", fromCache: Bool = false, input: String? = "1") -> HopPlan {
        HopPlan.plan(record: record, msisdn: msisdn, seal: seal, fromCache: fromCache) { _ in input }
    }

    @Test func aNewSessionBegins() {
        #expect(self.plan(nil) == .begin)
    }

    @Test func theSameHopIsReplayedAndACopyOfARunningHopWaits() {
        #expect(self.plan(Self.record(seal: "s2")) == .replay(reply: "CON Karibu", screen: "main"))
        #expect(self.plan(Self.record(claim: "s2")) == .wait(screen: "main", language: "sw"))
    }

    @Test func anotherNumbersSessionIsRefusedOrReloadedWhenTheCopyMayBeStale() {
        #expect(self.plan(Self.record(seal: "s2"), msisdn: "254799999999") == .refuse, "refused before any replay")
        #expect(self.plan(Self.record(), msisdn: "254799999999", fromCache: true) == .reload)
    }

    @Test func anEndedSessionAndAnOutOfOrderTextGetNoStep() {
        #expect(self.plan(Self.record(state: nil)) == .afterEnd)
        #expect(self.plan(Self.record(), input: nil) == .outOfOrder(language: "sw"))
    }

    @Test func aResumeOfferTakesTheChoiceAndAScreenTakesTheInput() {
        let offer = SessionState(screen: "send.amount", variables: [:], language: "en")
        #expect(self.plan(Self.record(state: nil, offer: offer), input: "2") == .resumeChoice(offer: offer, input: "2"))
        #expect(self.plan(Self.record(), input: "5") == .advance(state: Self.state, input: "5"))
    }

    /// A latest-input dialect without a sequence: the same input past the repeat window is the
    /// answer to the next screen, not the last hop again.
    @Test func theSameLatestInputAfterTheRepeatWindowIsTheNextAnswer() {
        let repeated = HopPlan.plan(record: Self.record(seal: "s2"), msisdn: Self.owner, seal: "s2", fromCache: false, isRepeat: { _ in false }) { _ in "1" }
        #expect(repeated == .advance(state: Self.state, input: "1"))
        let copy = HopPlan.plan(record: Self.record(claim: "s2"), msisdn: Self.owner, seal: "s2", fromCache: false, isRepeat: { _ in false }) { _ in "1" }
        #expect(copy == .wait(screen: "main", language: "sw"), "a copy of a hop still running waits, window or not")
    }
}
