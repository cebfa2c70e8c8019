import Menus
import Testing
import USSDDialects
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

    /// A menus file may allow 182 characters a page (Airtel Kenya shows 184); a dialect whose
    /// networks show 160 gets its reply cut to 160, counted, never sent over.
    @Test func aReplyIsCutToTheDialectsPageBudget() {
        let long = DialectReply(text: String(repeating: "a", count: 150) + "\n" + String(repeating: "b", count: 30), ends: false)
        let (cut, wasCut) = DialectRoutes.fitted(long, dialectBudget: 160, menus: TextBudget(gsm7: 182, ucs2: 70))
        #expect(wasCut && TextBudget(gsm7: 160, ucs2: 70).fits(cut.text) && !cut.ends && cut.text.hasPrefix(String(repeating: "a", count: 150)))
        let short = DialectReply(text: "Welcome\n1. Balance", ends: true)
        #expect(DialectRoutes.fitted(short, dialectBudget: 160, menus: TextBudget(gsm7: 182, ucs2: 70)) == (short, false))
        let swahili = DialectReply(text: String(repeating: "ŵ", count: 80), ends: true)
        #expect(DialectRoutes.fitted(swahili, dialectBudget: 160, menus: TextBudget(gsm7: 160, ucs2: 70)).0.text.count <= 70, "UCS-2: 70")
    }
}
