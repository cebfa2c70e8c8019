import Basics
import Foundation
@testable import Menus
import Testing
@testable import USSDChannel

/// The hop planner decides every hop of every dialect from the hop, the facts found and the time:
/// each case here is a pure call, with no server, no Redis and no sleep. The time is a number.
@Suite struct HopPlanTests {
    static let owner = "254712000001"
    static let main = SessionState(screen: "main", variables: [:], language: "sw")
    let planner: HopPlanner
    /// When the last hop was answered, and a time within and past the 2 s repeat window.
    let answered = 1_800_000_000.0
    var within: Double { self.answered + 1.5 }
    var past: Double { self.answered + 2.5 }

    init() throws {
        let graph = try MenuGraph.load(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../menus.json"))
        self.planner = HopPlanner(
            engine: Engine(graph: graph, sealer: PlainSealer()), sealer: PlainSealer(), isLookup: { ["wallet.profile", "wallet.fee"].contains($0) },
            rateLimitPerMinute: 30, repeatWindow: .seconds(2)
        )
    }

    // MARK: - Hops of each dialect

    func africasTalking(_ text: String, code: String = "*384*96#", from msisdn: String = HopPlanTests.owner) -> USSDHop {
        USSDHop(sessionId: "ATid_1", msisdn: MSISDN(msisdn)!, serviceCode: code, text: text)
    }

    /// Hubtel: the latest input, a sequence, first hops marked.
    func hubtel(_ input: String, sequence: Int, first: Bool = false) -> USSDHop {
        USSDHop(
            sessionId: "hubtel-1", msisdn: MSISDN(Self.owner)!, serviceCode: first ? "*384*96#" : "", text: first ? "" : input,
            form: .latestInput(sequence: sequence, first: first))
    }

    /// Nalo and Arkesel: the latest input, no sequence, first hops marked.
    func nalo(_ input: String, first: Bool = false) -> USSDHop {
        USSDHop(
            sessionId: "nalo-1", msisdn: MSISDN(Self.owner)!, serviceCode: first ? "*384*96#" : "", text: first ? "" : input,
            form: .latestInput(sequence: nil, first: first))
    }

    /// Flares: the latest input, first hops not marked (the first carries the dial as its input).
    func flares(_ input: String) -> USSDHop {
        USSDHop(sessionId: "flares-1", msisdn: MSISDN(Self.owner)!, serviceCode: "", text: input, form: .latestInput(sequence: nil, first: nil))
    }

    /// The record a hop left when it was answered with the main menu (or `state`).
    func answered(_ hop: USSDHop, hop number: Int = 1, state: SessionState? = HopPlanTests.main, offer: SessionState? = nil) -> SessionRecord {
        var record = SessionRecord(hop: number, textLength: hop.pathLength, textSeal: self.planner.seal(hop), reply: "CON Karibu", state: state, offer: offer)
        (record.msisdn, record.sequence, record.answeredAt) = (hop.msisdn.value, hop.sequence, self.answered)
        return record
    }

    func facts(_ record: SessionRecord?, fromCache: Bool = false, count: Int? = 1, resumable: ResumeSnapshot? = nil) -> HopFacts {
        HopFacts(record: record, version: record == nil ? 0 : 3, fromCache: fromCache, hopsThisMinute: count, resumeLookedUp: true, resumable: resumable)
    }

    func plan(_ hop: USSDHop, _ facts: HopFacts, now: Double? = nil) -> String {
        Self.describe(self.planner.plan(hop, facts, now: now ?? self.within))
    }

    /// A plan in words, so expectations read as the cases they are.
    static func describe(_ plan: HopPlan) -> String {
        switch plan {
        case .count: return "count"
        case .lookUpResume: return "look up resume"
        case .reload: return "reload"
        case .answer(let reply): return "answer \(reply.kind) \(reply.screen)"
        case .refuse: return "refuse"
        case .wait(let wait): return "wait \(wait.screen)"
        case .write(let write): return "write \(write.reply.kind) \(write.reply.screen) #\(write.record.hop)" + (write.mustWin ? "" : " anyway")
        case .run(let run): return "run #\(run.number) " + Self.describe(run.first) + (run.resumeChoice.map { " (\($0))" } ?? "")
        case .conflict: return "conflict"
        }
    }

    static func describe(_ step: Step) -> String {
        switch step {
        case .show(let page, _): return "show " + page.screen
        case .perform(let request, _): return "perform " + request.action
        }
    }

    // MARK: - Africa's Talking: the whole path

    @Test func africasTalkingsFirstHopCountsLooksUpAResumeAndStarts() {
        let dial = self.africasTalking("")
        #expect(self.plan(dial, HopFacts(record: nil, fromCache: true)) == "count")
        #expect(self.plan(dial, HopFacts(record: nil, fromCache: true, hopsThisMinute: 1)) == "look up resume")
        #expect(self.plan(dial, self.facts(nil)) == "run #1 perform wallet.profile")
    }

    @Test func africasTalkingsRepeatIsReplayedWhateverTheTimeAndTheNextPathAdvances() {
        let first = self.africasTalking("")
        let record = self.answered(first)
        #expect(self.plan(first, self.facts(record, count: nil), now: self.answered + 100) == "answer replay main", "no count for a replay")
        #expect(self.plan(self.africasTalking("1"), self.facts(record)) == "run #2 show bal.pin")
        let second = self.answered(self.africasTalking("1"), hop: 2, state: SessionState(screen: "bal.pin", variables: [:], language: "sw"))
        #expect(self.plan(self.africasTalking("1"), self.facts(second), now: self.answered + 100) == "answer replay bal.pin")
        #expect(self.plan(self.africasTalking("1*1234"), self.facts(second)).hasPrefix("run #3 perform wallet.balance"))
    }

    @Test func africasTalkingsPathThatDoesNotExtendTheLastIsOutOfOrder() {
        let record = self.answered(self.africasTalking("1"), hop: 2)
        #expect(self.plan(self.africasTalking("2*5"), self.facts(record)) == "answer out_of_order -")
        #expect(self.plan(self.africasTalking("11"), self.facts(record)) == "answer out_of_order -", "a prefix must end at a *")
        #expect(self.plan(self.africasTalking(""), self.facts(record)) == "answer out_of_order -")
    }

    @Test func aDialInShortcutOpensItsScreenWithoutAResumeOffer() {
        let shortcut = self.africasTalking("", code: "*384*96*1#")
        #expect(self.plan(shortcut, HopFacts(record: nil, fromCache: true, hopsThisMinute: 1)) == "run #1 perform wallet.profile")
        #expect(self.plan(self.africasTalking("", code: "*999#"), self.facts(nil)) == "answer unknown_service -")
    }

    // MARK: - Resume

    @Test func aNewSessionIsOfferedTheNumbersUnfinishedOneAndTheChoiceIsTaken() {
        let snapshot = ResumeSnapshot(sessionId: "ATold", state: SessionState(screen: "send.amount", variables: [:], language: "en"))
        let dial = self.africasTalking("")
        #expect(self.plan(dial, self.facts(nil, resumable: snapshot)) == "write con resume #1")
        #expect(self.plan(dial, self.facts(nil, resumable: ResumeSnapshot(sessionId: "ATid_1", state: Self.main))) == "run #1 perform wallet.profile")
        let offered = self.answered(dial, state: nil, offer: snapshot.state)
        #expect(self.plan(self.africasTalking("1"), self.facts(offered)) == "run #2 show send.amount (continue)")
        #expect(self.plan(self.africasTalking("2"), self.facts(offered)) == "run #2 perform wallet.profile (restart)")
        #expect(self.plan(self.africasTalking("7"), self.facts(offered)) == "write con resume #2 anyway")
    }

    // MARK: - Hubtel: a sequence

    @Test func hubtelsRepeatIsTheSameSequenceWhateverTheTime() {
        let dial = self.hubtel("", sequence: 1, first: true)
        #expect(self.plan(dial, self.facts(nil)) == "run #1 perform wallet.profile")
        let record = self.answered(dial)
        #expect(self.plan(dial, self.facts(record), now: self.answered + 60) == "answer replay main")
        #expect(self.plan(self.hubtel("1", sequence: 2), self.facts(record), now: self.answered + 0.1) == "run #2 show bal.pin")
        let second = self.answered(self.hubtel("1", sequence: 2), hop: 2)
        #expect(self.plan(self.hubtel("1", sequence: 2), self.facts(second), now: self.answered + 60) == "answer replay main")
        #expect(self.plan(self.hubtel("1", sequence: 3), self.facts(second), now: self.answered + 0.1) == "run #3 show bal.pin", "same input, next hop")
        #expect(self.plan(self.hubtel("1", sequence: 5), self.facts(second)) == "answer out_of_order -", "a sequence skipped")
    }

    // MARK: - Nalo and Arkesel: the repeat window

    @Test func theSameLatestInputIsARepeatWithinTheWindowAndTheNextAnswerAfterIt() {
        let record = self.answered(self.nalo("1"), hop: 2)
        #expect(self.plan(self.nalo("1"), self.facts(record), now: self.within) == "answer replay main")
        #expect(self.plan(self.nalo("1"), self.facts(record), now: self.past) == "run #3 show bal.pin")
        #expect(self.plan(self.nalo("2"), self.facts(record), now: self.within) == "run #3 show dep.amount", "another input is never a repeat")
        let dial = self.nalo("", first: true)
        #expect(self.plan(dial, self.facts(self.answered(dial)), now: self.answered + 60) == "answer replay main", "a first hop is its dial")
    }

    @Test func aCopyOfAHopStillRunningWaitsWindowOrNot() {
        var record = self.answered(self.nalo("1"), hop: 2)
        record.claim = self.planner.seal(self.nalo("5"))
        #expect(self.plan(self.nalo("5"), self.facts(record), now: self.past) == "wait main")
        #expect(self.plan(self.nalo("5"), self.facts(record), now: self.within) == "wait main")
    }

    // MARK: - Flares: first hops told by the session

    @Test func flaresFirstHopIsTheOneWhoseSessionIsNewAndItsCopyIsADialAgain() {
        #expect(self.plan(self.flares("*384*96#"), self.facts(nil)) == "run #1 perform wallet.profile")
        #expect(self.plan(self.flares("*384*96*1#"), HopFacts(record: nil, hopsThisMinute: 1)) == "run #1 perform wallet.profile", "a shortcut")
        #expect(self.plan(self.flares("*999#"), self.facts(nil)) == "answer unknown_service -")
        let dialled = self.flares("*384*96#").asFirst(dialled: "*384*96#")
        let record = self.answered(dialled)
        #expect(self.plan(self.flares("*384*96#"), self.facts(record), now: self.within) == "answer replay main")
        #expect(self.plan(self.flares("1"), self.facts(record), now: self.within) == "run #2 show bal.pin")
    }

    // MARK: - Owner, end, rate limit

    @Test func anotherNumbersSessionIsRefusedBeforeAnyReplayOrReloadedFromAStaleCopy() {
        let record = self.answered(self.africasTalking(""))
        let stranger = self.africasTalking("", from: "254799999999")
        #expect(self.plan(stranger, self.facts(record)) == "refuse")
        #expect(self.plan(stranger, self.facts(record, fromCache: true)) == "reload")
    }

    @Test func aHopAfterTheEndGetsTheApology() {
        let ended = self.answered(self.africasTalking("1"), hop: 2, state: nil)
        #expect(self.plan(self.africasTalking("1*2"), self.facts(ended)) == "answer after_end -")
    }

    @Test func overTheRateLimitTheSessionEndsAndTheHopIsRemembered() {
        let record = self.answered(self.africasTalking(""))
        #expect(self.plan(self.africasTalking("1"), self.facts(record, count: nil)) == "count")
        #expect(self.plan(self.africasTalking("1"), self.facts(record, count: 30)) == "run #2 show bal.pin")
        #expect(self.plan(self.africasTalking("1"), self.facts(record, count: 31)) == "write rate_limited - #2 anyway")
        guard case .write(let write) = self.planner.plan(self.africasTalking("1"), self.facts(record, count: 31), now: self.within) else { return }
        #expect(write.record.state == nil && write.record.textSeal == self.planner.seal(self.africasTalking("1")) && write.record.answeredAt == self.within)
    }

    // MARK: - While a hop runs

    func run(_ first: Step) -> HopPlan.Run {
        HopPlan.Run(sessionId: "ATid_1", msisdn: MSISDN(Self.owner)!, number: 2, seal: "s", pathLength: 1, sequence: nil, first: first, resumeChoice: nil)
    }

    @Test func aLookupRunsUnclaimedAndAnythingElseClaimsFirst() {
        let state = Self.main
        let lookup = Step.perform(ActionRequest(action: "wallet.fee", arguments: [:], secretArguments: []), state)
        let send = Step.perform(ActionRequest(action: "wallet.send", arguments: [:], secretArguments: []), state)
        guard case .act = self.planner.next(lookup, claimed: false, self.run(lookup), now: 0) else { Issue.record("a lookup is run unclaimed"); return }
        guard case .claim(let language) = self.planner.next(send, claimed: false, self.run(send), now: 0) else { Issue.record("a send claims"); return }
        #expect(language == "sw")
        guard case .act = self.planner.next(send, claimed: true, self.run(send), now: 0) else { Issue.record("then runs"); return }
    }

    @Test func aPageIsWrittenWithItsResumeSnapshotAndALateActionEndsTheHop() {
        let page = Page(text: "Enter PIN", continues: true, screen: "bal.pin")
        var pin = SessionState(screen: "bal.pin", variables: [:], language: "sw")
        pin.sealed = ["pin": "x"]
        let shown = Step.show(page, pin)
        guard case .write(let write) = self.planner.next(shown, claimed: true, self.run(shown), now: 7) else { Issue.record("a page is written"); return }
        #expect(write.mustWin && write.reply == Reply(text: "CON Enter PIN", screen: "bal.pin", kind: "con") && write.record.answeredAt == 7)
        guard case .set(let snapshot) = write.resume else { Issue.record("a page that continues is resumable"); return }
        #expect(snapshot.state.sealed.isEmpty, "no seal of a secret is kept for resume")
        let late = self.planner.late(self.run(shown), Self.main, now: 8)
        #expect(late.reply.text.hasPrefix("END ") && late.record.state == nil && late.mustWin)
    }

    @Test func aLostClaimOrWriteReloadsAStaleCopyWaitsForACopyOrIsAConflict() {
        let run = self.run(.show(Page(text: "x", continues: true, screen: "main"), Self.main))
        #expect(Self.describe(self.planner.lostClaim(run, self.facts(nil, fromCache: true), language: "sw")) == "reload")
        #expect(Self.describe(self.planner.lostClaim(run, self.facts(nil), language: "sw")) == "wait -")
        let record = SessionRecord(hop: 2, textLength: 1, textSeal: "s", reply: "CON mine")
        let write = HopPlan.Write(record: record, reply: Reply(text: "CON mine", screen: "main", kind: "con"), resume: .keep, mustWin: true)
        #expect(Self.describe(self.planner.lostWrite(write, self.facts(nil, fromCache: true), winner: nil)) == "reload")
        var winner = record
        winner.reply = "CON theirs"
        guard case .answer(let reply) = self.planner.lostWrite(write, self.facts(nil), winner: winner) else { Issue.record("a copy won"); return }
        #expect(reply == Reply(text: "CON theirs", screen: "main", kind: "replay"), "the copy that won is answered, byte for byte")
        winner.textSeal = "another hop"
        #expect(Self.describe(self.planner.lostWrite(write, self.facts(nil), winner: winner)) == "conflict")
        var anyway = write
        anyway.mustWin = false
        #expect(Self.describe(self.planner.lostWrite(anyway, self.facts(nil), winner: winner)) == "answer con main")
    }
}

/// A deterministic seal for tests: the gateway's is an HMAC under its own key.
struct PlainSealer: SecretSealer {
    func seal(_ secret: String) -> String { "sealed(" + secret + ")" }
}
