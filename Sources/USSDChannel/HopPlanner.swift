import Basics
import Menus

/// Decides what every hop means, from every dialect, as a pure function of the hop, what is known
/// of its session and the time: the dialect's first-hop rules, repeats and the repeat window, the
/// owner check, the rate-limit verdict, the resume offer and choice, and the engine's first step.
/// It reads nothing and writes nothing; ``USSDService`` performs what it returns, so every case
/// is a unit test with no server and no sleep.
struct HopPlanner: Sendable {
    let engine: Engine
    let sealer: any SecretSealer
    /// Whether an action only looks something up: its hop runs without a claim.
    let isLookup: @Sendable (String) -> Bool
    /// Hops a number may make in a minute; 0: no limit.
    let rateLimitPerMinute: Int
    /// How long after a hop's answer the same latest input, in a dialect without a sequence, is
    /// that hop again rather than the answer to the next screen.
    let repeatWindow: Duration
    let serviceCodes: [String]

    init(engine: Engine, sealer: any SecretSealer, isLookup: @escaping @Sendable (String) -> Bool, rateLimitPerMinute: Int, repeatWindow: Duration) {
        self.engine = engine
        self.sealer = sealer
        self.isLookup = isLookup
        self.rateLimitPerMinute = rateLimitPerMinute
        self.repeatWindow = repeatWindow
        self.serviceCodes = engine.graph.document.serviceCodes
    }

    /// The language of the session, else the menus' default: for pages that need no step.
    func language(_ facts: HopFacts) -> String { facts.language ?? self.engine.graph.defaultLanguage }

    /// The plan for `hop`, given `facts`, at `now` (Unix seconds).
    func plan(_ hop: USSDHop, _ facts: HopFacts, now: Double) -> HopPlan {
        guard let hop = self.effective(hop, facts, now: now) else { return self.unknownService(facts) }
        let seal = self.seal(hop)
        guard let record = facts.record else { return self.begin(hop, facts, seal: seal, now: now) }
        if let owner = record.msisdn, owner != hop.msisdn.value {
            // Checked before a replay too: a stored reply (a balance, say) is the owner's alone.
            return facts.fromCache ? .reload : .refuse("sessionId belongs to another phoneNumber")
        }
        if record.textSeal == seal && self.isRepeat(hop, of: record, now: now) {
            return .answer(Reply(text: record.reply, screen: record.state?.screen ?? "end", kind: "replay"))
        }
        if record.claim == seal { return .wait(.init(seal: seal, screen: record.state?.screen ?? "-", language: self.language(facts))) }
        guard record.state != nil || record.offer != nil else { return self.failure(facts, kind: "after_end") }
        guard let input = self.newInput(hop, after: record) else { return self.failure(facts, kind: "out_of_order") }
        if let limited = self.limit(hop, facts, seal: seal, now: now) { return limited }
        if let offer = record.offer { return self.resumeChoice(offer, input: input, hop, facts, seal: seal, now: now) }
        return .run(self.run(hop, facts, seal: seal, first: self.engine.advance(record.state!, input: input)))
    }

    /// The hop as the rest of the plan takes it; nil when its dialled code is not served. A dialect
    /// that does not mark first hops (Flares) has its session's first hop told by the session: a
    /// session not seen yet begins here and its input is the dial; so does a copy of that first
    /// hop, the same dial again within the repeat window.
    func effective(_ hop: USSDHop, _ facts: HopFacts, now: Double) -> USSDHop? {
        guard self.serves(hop) else { return nil }
        guard case .latestInput(_, nil) = hop.form else { return hop }
        let dial = hop.asFirst(dialled: Shortcut.dialled(hop.text, serviceCodes: self.serviceCodes))
        guard let record = facts.record else { return self.serves(dial) ? dial : nil }
        let repeatsTheDial = record.hop == 1 && record.textSeal == self.seal(dial) && self.isRepeat(hop, of: record, now: now)
        return repeatsTheDial ? dial : hop
    }

    /// A session not seen yet: over the rate limit, the limit's page; else a dial-in shortcut, or
    /// the offer to resume the number's unfinished session, or the first screen.
    func begin(_ hop: USSDHop, _ facts: HopFacts, seal: String, now: Double) -> HopPlan {
        if let limited = self.limit(hop, facts, seal: seal, now: now) { return limited }
        // A dial-in shortcut says where the user wants to go: no offer to resume another session.
        let segments = self.shortcutSegments(hop)
        if segments.isEmpty {
            guard facts.resumeLookedUp else { return .lookUpResume }
            if let snapshot = facts.resumable, snapshot.sessionId != hop.sessionId {
                let page = self.engine.systemPage("resumeOffer", language: snapshot.state.language, continues: true)
                let offer = SessionRecord(hop: 1, textLength: hop.pathLength, textSeal: seal, reply: "CON " + page.text, offer: snapshot.state)
                let reply = Reply(text: offer.reply, screen: "resume", kind: "con")
                return .write(.init(record: self.stamped(offer, hop, now: now), reply: reply, resume: .keep, mustWin: true, resumeChoice: "offered"))
            }
        }
        return .run(self.run(hop, facts, seal: seal, first: self.engine.start(variables: ["msisdn": hop.msisdn.value], extension: segments)))
    }

    /// The answer to "continue where you left off?": `1` the offered session's screen again, `2`
    /// the first screen, anything else "invalid choice" and the offer again.
    func resumeChoice(_ offer: SessionState, input: String, _ hop: USSDHop, _ facts: HopFacts, seal: String, now: Double) -> HopPlan {
        switch input.trimmingCharacters(in: .whitespaces) {
        case "1":
            return .run(self.run(hop, facts, seal: seal, first: self.engine.redisplay(offer), resumeChoice: "continue"))
        case "2":
            let first = self.engine.start(variables: ["msisdn": hop.msisdn.value], language: offer.language)
            return .run(self.run(hop, facts, seal: seal, first: first, resumeChoice: "restart"))
        default:
            let again = self.engine.systemPage("resumeOffer", language: offer.language, continues: true)
            let reply = "CON " + self.engine.systemPage("invalidChoice", language: offer.language).text + "\n" + again.text
            var next = facts.record ?? SessionRecord(hop: 0, textLength: 0, textSeal: "", reply: "")
            (next.hop, next.textLength, next.textSeal, next.reply) = (next.hop + 1, hop.pathLength, seal, reply)
            let answer = Reply(text: reply, screen: "resume", kind: "con")
            return .write(.init(record: self.stamped(next, hop, now: now), reply: answer, resume: .keep, mustWin: false))
        }
    }

    /// The rate limit's verdict: nil when within it; the count first when not known yet; over it,
    /// the session ends politely and the hop is remembered as answered, so a repeat of it gets the
    /// same page.
    func limit(_ hop: USSDHop, _ facts: HopFacts, seal: String, now: Double) -> HopPlan? {
        guard self.rateLimitPerMinute > 0 else { return nil }
        guard let count = facts.hopsThisMinute else { return .count }
        guard count > self.rateLimitPerMinute else { return nil }
        let page = "END " + self.engine.systemPage("rateLimited", language: self.language(facts)).text
        var ended = facts.record ?? SessionRecord(hop: 0, textLength: 0, textSeal: "", reply: "")
        ended.hop += 1
        (ended.textLength, ended.textSeal, ended.reply, ended.state, ended.offer) = (hop.pathLength, seal, page, nil, nil)
        let reply = Reply(text: page, screen: "-", kind: "rate_limited")
        return .write(.init(record: self.stamped(ended, hop, now: now), reply: reply, resume: .keep, mustWin: false))
    }

    func run(_ hop: USSDHop, _ facts: HopFacts, seal: String, first: Step, resumeChoice: String? = nil) -> HopPlan.Run {
        HopPlan.Run(
            sessionId: hop.sessionId, msisdn: hop.msisdn, number: (facts.record?.hop ?? 0) + 1, seal: seal, pathLength: hop.pathLength,
            sequence: hop.sequence, first: first, resumeChoice: resumeChoice
        )
    }

    /// The apology page, for a hop that no step can answer.
    func failure(_ facts: HopFacts, kind: String) -> HopPlan {
        .answer(Reply(text: "END " + self.engine.systemPage("failure", language: self.language(facts)).text, screen: "-", kind: kind))
    }

    func unknownService(_ facts: HopFacts) -> HopPlan { .answer(self.unknownServiceReply(facts)) }

    /// "This code is not served", in the session's language or the menus' default.
    func unknownServiceReply(_ facts: HopFacts) -> Reply {
        Reply(text: "END " + self.engine.systemPage("unknownService", language: self.language(facts)).text, screen: "-", kind: "unknown_service")
    }

    /// A record as written for `hop`: whose it is, the dialect's hop number, and when answered.
    func stamped(_ record: SessionRecord, _ hop: USSDHop, now: Double) -> SessionRecord {
        var record = record
        (record.msisdn, record.sequence, record.answeredAt) = (hop.msisdn.value, hop.sequence, now)
        return record
    }
}
