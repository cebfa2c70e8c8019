import AfricasTalking
import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Logging
import Menus
import Redis
import Wallet

/// The USSD channel: Redis sessions, the menu engine and the actions, exactly once per hop.
///
/// A hop is identified by (sessionId, text). A repeated hop gets the stored reply byte for byte and
/// runs nothing; a copy of a hop whose action is still running waits for that reply. The new
/// input is what follows the previous hop's text. Money-moving actions get the idempotency key
/// `ussd:{sessionId}:{hop}`, so even a crash between the wallet's commit and the session write
/// cannot move money twice: the retried hop replays the wallet's receipt.
///
/// ``HopPlan`` decides what a hop is from the stored record; this type performs the decision.
public final class USSDService: Sendable {
    let engine: Engine
    let store: USSDSessionStore
    let actions: any ActionRunner
    let workers: ActionWorkers
    let wallet: Wallet?
    let sealer: any SecretSealer
    let deadline: Duration
    let rateLimitPerMinute: Int
    let repeatWindow: Duration
    let logger: Logger
    let serviceCodes: Set<String>
    let metrics = GatewayMetrics.cache
    /// The records this process wrote last, so the next hop of a session it served skips reading
    /// Redis; every write is still compare-and-set, so a copy another replica made stale is found
    /// out before anything is acted on, and the hop is answered again from Redis.
    let recent: RecentSessions

    public struct Settings: Sendable {
        public var sessionTTLSeconds = 120
        public var resumeWindowSeconds = 300
        public var hopDeadline = Duration.seconds(4)
        public var rateLimitPerMinute = 30
        /// How long after a hop's answer the same latest input, in a dialect without a sequence,
        /// is taken as that hop again rather than as the answer to the next screen.
        public var repeatWindow = Duration.seconds(2)

        public init() {}
    }

    public init(
        graph: MenuGraph, redis: RedisClient, actions: any ActionRunner, workers: ActionWorkers, wallet: Wallet?, sealer: any SecretSealer,
        settings: Settings, logger: Logger
    ) {
        self.engine = Engine(graph: graph, sealer: sealer)
        self.store = USSDSessionStore(redis: redis, ttlSeconds: settings.sessionTTLSeconds, resumeWindowSeconds: settings.resumeWindowSeconds)
        self.actions = actions
        self.workers = workers
        self.wallet = wallet
        self.sealer = sealer
        self.deadline = settings.hopDeadline
        self.rateLimitPerMinute = settings.rateLimitPerMinute
        self.repeatWindow = settings.repeatWindow
        self.logger = logger
        self.serviceCodes = Set(graph.document.serviceCodes)
        self.recent = RecentSessions(lifetime: .seconds(settings.sessionTTLSeconds))
    }

    /// What a hop gets: a reply, or a refusal of a hop that cannot be the session's (answered 400).
    public enum Answer: Sendable, Equatable {
        /// `CON ...` or `END ...`, and the screen it shows (`-` for none: a failure, an unknown
        /// service code), which goes back to Africa's Talking as the hop's marker.
        case reply(String, screen: String)
        /// Why, safe to log.
        case refused(String)
    }

    /// A session as a hop found it: the stored record (none for a new session), its version, and
    /// whether it came from this process's copy rather than from Redis.
    struct Found {
        var version: Int
        var record: SessionRecord?
        var fromCache: Bool

        /// The language the session speaks, when it has begun.
        var language: String? { self.record?.state?.language ?? self.record?.offer?.language }
    }

    /// A reply with what the metrics say of it.
    struct Reply {
        let text: String
        let screen: String
        let kind: String
    }

    /// How an attempt at a hop ended.
    enum Attempt {
        case answered(Reply)
        case refused(String)
        /// This process's copy of the session was stale: answer the hop again from Redis.
        case reload
    }

    /// Answers one hop: `CON ...` or `END ...`. Never throws: an internal failure is a localised
    /// apology with an error id in the log. A hop of a known session from another number is
    /// refused and changes nothing.
    public func handle(_ hop: USSDHop) async -> Answer {
        let start = ContinuousClock.now
        var outcome = (screen: "-", kind: "error")
        defer {
            self.metrics.counter("ussd_hops_total", [("screen", outcome.screen), ("outcome", outcome.kind)]).increment()
            self.metrics.timer("ussd_hop_duration_seconds", [("outcome", outcome.kind)]).record(duration: ContinuousClock.now - start)
        }
        var language = self.engine.graph.defaultLanguage
        guard self.serves(hop) else {
            outcome.kind = "unknown_service"
            return .reply("END " + self.engine.systemPage("unknownService", language: language).text, screen: "-")
        }
        do {
            for fresh in [false, true] {
                var hop = hop
                let found = try await self.find(hop, fresh: fresh)
                if case .latestInput(_, nil) = hop.form {
                    // A dialect that does not mark first hops (Flares): a session not seen yet
                    // begins here, and its input is the dial; so does a copy of that first hop,
                    // the same dial again within the repeat window.
                    let dial = hop.asFirst(dialled: Shortcut.dialled(hop.text, serviceCodes: self.engine.graph.document.serviceCodes))
                    if let record = found.record {
                        if record.hop == 1, record.textSeal == self.hopSeal(dial), self.isRepeat(hop, of: record) { hop = dial }
                    } else {
                        guard self.serves(dial) else {
                            outcome.kind = "unknown_service"
                            return .reply("END " + self.engine.systemPage("unknownService", language: language).text, screen: "-")
                        }
                        hop = dial
                    }
                }
                language = found.language ?? language
                switch try await self.answer(hop, found) {
                case .answered(let reply):
                    outcome = (reply.screen, reply.kind)
                    return .reply(reply.text, screen: reply.screen)
                case .refused(let reason):
                    outcome.kind = "refused"
                    self.logger.warning("a hop of a session from another number", metadata: ["session": .string(hop.sessionId)])
                    return .refused(reason)
                case .reload:
                    continue
                }
            }
            throw USSDConflict()
        } catch {
            let errorID = String(UUID().uuidString.prefix(8)).lowercased()
            self.logger.error("ussd hop failed", metadata: ["error_id": .string(errorID), "error": .string(safeDescription(of: error)), "session": .string(hop.sessionId)])
            return .reply("END " + self.engine.systemPage("failure", language: language).text, screen: "-")
        }
    }

    /// Whether the hop's dialled code is one this menus.json serves (a code, or an extension of one);
    /// a later hop of a latest-input dialect carries none.
    func serves(_ hop: USSDHop) -> Bool {
        if hop.serviceCode.isEmpty { return hop.form != .wholePath && !hop.isFirst }
        return self.serviceCodes.contains(hop.serviceCode) || self.dialExtension(hop) != nil
    }

    /// The session from this process's copy, or from Redis when `fresh` or not cached. A first hop
    /// (empty text, a dial) is almost always a new session: it is assumed so without reading Redis; if the
    /// session exists after all, the compare-and-set write fails and the hop is answered again.
    func find(_ hop: USSDHop, fresh: Bool) async throws -> Found {
        if !fresh, let cached = self.recent.get(hop.sessionId) { return Found(version: cached.version, record: cached.record, fromCache: true) }
        if !fresh && hop.isFirst { return Found(version: 0, record: nil, fromCache: true) }
        let loaded = try await self.store.load(hop.sessionId)
        return Found(version: loaded?.version ?? 0, record: loaded?.record, fromCache: false)
    }

    /// Plans the hop against the session found, then does what the plan says.
    func answer(_ hop: USSDHop, _ found: Found) async throws -> Attempt {
        let seal = self.hopSeal(hop)
        let plan = HopPlan.plan(
            record: found.record, msisdn: hop.msisdn.value, seal: seal, fromCache: found.fromCache, isRepeat: { self.isRepeat(hop, of: $0) }
        ) { record in
            self.newInput(hop, after: record)
        }
        let language = found.language ?? self.engine.graph.defaultLanguage
        switch plan {
        case .reload:
            self.recent.remove(hop.sessionId)
            return .reload
        case .refuse:
            return .refused("sessionId belongs to another phoneNumber")
        case .replay(let reply, let screen):
            return .answered(Reply(text: reply, screen: screen, kind: "replay"))
        case .wait(let screen, let waitLanguage):
            let reply = try await self.waitForClaimedHop(hop, seal: seal, language: waitLanguage.isEmpty ? language : waitLanguage)
            return .answered(Reply(text: reply, screen: screen, kind: "replay"))
        case .afterEnd:
            return .answered(Reply(text: "END " + self.engine.systemPage("failure", language: language).text, screen: "-", kind: "after_end"))
        case .outOfOrder:
            return .answered(Reply(text: "END " + self.engine.systemPage("failure", language: language).text, screen: "-", kind: "out_of_order"))
        case .begin, .resumeChoice, .advance:
            if self.rateLimitPerMinute > 0, try await self.store.countHop(hop.msisdn.value) > self.rateLimitPerMinute {
                return try await self.rateLimited(hop, found, seal: seal, language: language)
            }
            return try await self.respond(plan, hop, found, seal: seal)
        }
    }

    /// Over the number's rate limit: the session ends politely, and the hop is remembered as
    /// answered so a repeat of it gets the same page.
    func rateLimited(_ hop: USSDHop, _ found: Found, seal: String, language: String) async throws -> Attempt {
        let page = self.engine.systemPage("rateLimited", language: language)
        var ended = found.record ?? SessionRecord(hop: 0, textLength: 0, textSeal: "", reply: "")
        ended.hop += 1
        (ended.textLength, ended.textSeal, ended.reply, ended.state, ended.offer) = (hop.pathLength, seal, "END " + page.text, nil, nil)
        guard try await self.write(hop, ended, found, resume: .keep) else { return .reload }
        return .answered(Reply(text: "END " + page.text, screen: "-", kind: "rate_limited"))
    }

    /// The engine's first step for this hop (or a reply that needs no step: a resume offer, a
    /// wrong answer to it), then the actions, then the page.
    func respond(_ plan: HopPlan, _ hop: USSDHop, _ found: Found, seal: String) async throws -> Attempt {
        let number = (found.record?.hop ?? 0) + 1
        let first: Step
        switch plan {
        case .resumeChoice(let offer, let input):
            switch input.trimmingCharacters(in: .whitespaces) {
            case "1":
                self.metrics.counter("ussd_resumes_total", [("choice", "continue")]).increment()
                first = self.engine.redisplay(offer)
            case "2":
                self.metrics.counter("ussd_resumes_total", [("choice", "restart")]).increment()
                first = self.engine.start(variables: ["msisdn": hop.msisdn.value], language: offer.language)
            default:
                return try await self.offerAgain(offer, hop, found, seal: seal, number: number)
            }
        case .advance(let state, let input):
            first = self.engine.advance(state, input: input)
        default:
            // A dial-in shortcut says where the user wants to go: no offer to resume another session.
            let segments = self.shortcutSegments(hop)
            if segments.isEmpty, let offer = try await self.resumeOffer(hop, found, seal: seal, number: number) { return offer }
            first = self.engine.start(variables: ["msisdn": hop.msisdn.value], extension: segments)
        }
        return try await self.perform(first, hop, found, seal: seal, number: number)
    }

    /// The digits dialled past a service code this file serves (`*384*96*1#`: `1`), as Africa's
    /// Talking sends the dialled code; nil when the code extends none of them.
    func dialExtension(_ hop: USSDHop) -> [Substring]? {
        Shortcut.extensionSegments(of: hop.serviceCode, serviceCodes: self.engine.graph.document.serviceCodes)
    }

    /// A new session's dial-in extension: from the dialled code, or else from the first hop's
    /// `text`. Whether Africa's Talking puts the extra digits of `*384*96*1#` in `serviceCode` or in
    /// the first `text` is not documented, so both are read. A session whose record expired in
    /// Redis also arrives here with a `text`: it opens a shortcut only if its path is exactly one,
    /// which is where the user was going anyway.
    /// The latest-input dialects carry their extra digits in the dial only.
    func shortcutSegments(_ hop: USSDHop) -> [Substring] {
        if let segments = self.dialExtension(hop), !segments.isEmpty { return segments }
        guard hop.form == .wholePath else { return [] }
        return hop.text.isEmpty ? [] : hop.text.split(separator: "*", omittingEmptySubsequences: false)
    }

    /// A new session of a number that left one unfinished within the resume window: the offer to
    /// continue it; nil when there is nothing to resume.
    func resumeOffer(_ hop: USSDHop, _ found: Found, seal: String, number: Int) async throws -> Attempt? {
        guard let snapshot = try await self.store.resumeSnapshot(hop.msisdn.value), snapshot.sessionId != hop.sessionId else { return nil }
        let page = self.engine.systemPage("resumeOffer", language: snapshot.state.language, continues: true)
        let offer = SessionRecord(hop: number, textLength: hop.pathLength, textSeal: seal, reply: "CON " + page.text, offer: snapshot.state)
        self.metrics.counter("ussd_resumes_total", [("choice", "offered")]).increment()
        return try await self.commit(hop, offer, found, screen: "resume", resume: .keep)
    }

    /// A wrong answer to the resume offer: "invalid choice" and the offer again.
    func offerAgain(_ offer: SessionState, _ hop: USSDHop, _ found: Found, seal: String, number: Int) async throws -> Attempt {
        let again = self.engine.systemPage("resumeOffer", language: offer.language, continues: true)
        let reply = "CON " + self.engine.systemPage("invalidChoice", language: offer.language).text + "\n" + again.text
        var next = found.record ?? SessionRecord(hop: 0, textLength: 0, textSeal: "", reply: "")
        (next.hop, next.textLength, next.textSeal, next.reply) = (number, hop.pathLength, seal, reply)
        guard try await self.write(hop, next, found, resume: .keep) else { return .reload }
        return .answered(Reply(text: reply, screen: "resume", kind: "con"))
    }

    /// Runs the step's actions one after another until a page to show, then stores the page as
    /// the hop's reply. The first action that may change anything claims the hop first, so a
    /// copy of it waits for this reply instead of acting too.
    func perform(_ first: Step, _ hop: USSDHop, _ found: Found, seal: String, number: Int) async throws -> Attempt {
        var step = first
        var session = found
        var claimed = false
        while case .perform(let request, let state) = step {
            if !claimed && !self.actions.isLookup(request.action) {
                guard let updated = try await self.claim(hop, session, seal: seal) else {
                    if session.fromCache { return .reload }
                    let reply = try await self.waitForClaimedHop(hop, seal: seal, language: state.language)
                    return .answered(Reply(text: reply, screen: "-", kind: "replay"))
                }
                (session, claimed) = (updated, true)
            }
            let context = ActionContext(
                msisdn: hop.msisdn, idempotencyKey: "ussd:\(hop.sessionId):\(number)", channel: "ussd", conversation: "ussd:" + hop.sessionId
            )
            guard let result = try await self.run(request, context: context, state: state, hop: hop, number: number) else {
                // Past the deadline: the action finishes on its own and its result goes by SMS.
                let page = self.engine.systemPage("processing", language: state.language)
                let ended = SessionRecord(hop: number, textLength: hop.pathLength, textSeal: seal, reply: "END " + page.text)
                return try await self.commit(hop, ended, session, screen: state.screen, resume: .drop)
            }
            step = self.engine.resume(state, with: result)
        }
        // The loop above leaves only `.show`.
        guard case .show(let page, let state) = step else { throw USSDConflict() }
        let next = SessionRecord(
            hop: number, textLength: hop.pathLength, textSeal: seal, reply: (page.continues ? "CON " : "END ") + page.text,
            state: page.continues ? state : nil
        )
        let resume: USSDSessionStore.ResumeChange = page.continues ? .set(ResumeSnapshot(sessionId: hop.sessionId, state: Self.resumable(state))) : .drop
        return try await self.commit(hop, next, session, screen: page.screen, resume: resume)
    }

    /// Marks the hop as running in the session; the session as written, or nil when another copy
    /// of the hop (or a newer hop) wrote first.
    func claim(_ hop: USSDHop, _ found: Found, seal: String) async throws -> Found? {
        var claim = found.record ?? SessionRecord(hop: 0, textLength: 0, textSeal: "", reply: "")
        (claim.claim, claim.claimedAt, claim.msisdn) = (seal, Date().timeIntervalSince1970, hop.msisdn.value)
        guard try await self.store.save(hop.sessionId, msisdn: hop.msisdn.value, expecting: found.version, claim, resume: .keep) else {
            self.recent.remove(hop.sessionId)
            return nil
        }
        self.recent.put(hop.sessionId, version: found.version + 1, claim)
        // Written to Redis just now: from here on, a lost write is a real conflict, not a stale copy.
        return Found(version: found.version + 1, record: claim, fromCache: false)
    }

    /// Writes the hop's record; when another copy of the hop wrote first, answers what it stored.
    /// A record read from this process's copy that turns out stale answers the hop again from Redis.
    func commit(_ hop: USSDHop, _ record: SessionRecord, _ found: Found, screen: String, resume: USSDSessionStore.ResumeChange) async throws -> Attempt {
        var record = record
        (record.msisdn, record.sequence, record.answeredAt) = (hop.msisdn.value, hop.sequence, Date().timeIntervalSince1970)
        if try await self.store.save(hop.sessionId, msisdn: hop.msisdn.value, expecting: found.version, record, resume: resume) {
            self.recent.put(hop.sessionId, version: found.version + 1, record)
            return .answered(Reply(text: record.reply, screen: screen, kind: record.reply.hasPrefix("CON ") ? "con" : "end"))
        }
        self.recent.remove(hop.sessionId)
        if found.fromCache { return .reload }
        if let winner = try await self.store.load(hop.sessionId)?.record, winner.textSeal == record.textSeal {
            return .answered(Reply(text: winner.reply, screen: screen, kind: "replay"))
        }
        throw USSDConflict()
    }

    /// A write whose answer does not depend on winning (rate limit, a repeated resume offer); false
    /// only when the session came from a stale copy and the hop must be answered again.
    func write(_ hop: USSDHop, _ record: SessionRecord, _ found: Found, resume: USSDSessionStore.ResumeChange) async throws -> Bool {
        var record = record
        (record.msisdn, record.sequence, record.answeredAt) = (hop.msisdn.value, hop.sequence, Date().timeIntervalSince1970)
        if try await self.store.save(hop.sessionId, msisdn: hop.msisdn.value, expecting: found.version, record, resume: resume) {
            self.recent.put(hop.sessionId, version: found.version + 1, record)
            return true
        }
        self.recent.remove(hop.sessionId)
        return !found.fromCache
    }

    /// The seal of a hop's `text` (which repeats every PIN typed), bound to the session: the same
    /// inputs in two sessions never give equal seals, so Redis reveals nothing about equal PINs.
    static func textSeal(_ text: String, session: String, sealer: any SecretSealer) -> String {
        sealer.seal("ussd-text|" + session + "|" + text)
    }

    /// The seal that identifies a hop in its session: of the whole path (Africa's Talking), of the
    /// dialect's sequence and input, or of the latest input alone.
    func hopSeal(_ hop: USSDHop) -> String {
        switch hop.form {
        case .wholePath:
            return Self.textSeal(hop.text, session: hop.sessionId, sealer: self.sealer)
        case .latestInput(let sequence, _):
            let input = hop.isFirst ? "\u{0}dial|" + hop.serviceCode : hop.text
            if let sequence { return self.sealer.seal("ussd-hop|\(hop.sessionId)|\(sequence)|\(input)") }
            return self.sealer.seal("ussd-input|\(hop.sessionId)|\(input)")
        }
    }

    /// Whether a hop whose seal equals the record's is that hop again. Without a sequence, the same
    /// latest input is a repeat only within the repeat window after the answer: later, it is the
    /// user answering the next screen the same way (`1`, then `1` again).
    func isRepeat(_ hop: USSDHop, of record: SessionRecord) -> Bool {
        guard case .latestInput(nil, _) = hop.form, !hop.isFirst, let answeredAt = record.answeredAt else { return true }
        return Date().timeIntervalSince1970 - answeredAt <= Double(self.repeatWindow.inMilliseconds) / 1000
    }

    /// The input of a new hop: for Africa's Talking, what follows the previous hop's text (a
    /// prefix of this one); for a latest-input dialect, its input, when its sequence (if any)
    /// follows the last one answered.
    func newInput(_ hop: USSDHop, after record: SessionRecord) -> String? {
        guard hop.form == .wholePath else {
            if let sequence = hop.sequence, let last = record.sequence, sequence != last + 1 { return nil }
            return hop.isFirst ? nil : hop.text
        }
        return self.newInput(hop.text, after: record, sessionId: hop.sessionId)
    }

    /// The input of a new hop: what follows the previous hop's text (a prefix of this one).
    func newInput(_ text: String, after record: SessionRecord, sessionId: String) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.count >= record.textLength else { return nil }
        let previous = String(decoding: bytes[..<record.textLength], as: UTF8.self)
        guard Self.textSeal(previous, session: sessionId, sealer: self.sealer) == record.textSeal else { return nil }
        if record.textLength == 0 { return text }
        guard bytes.count > record.textLength, bytes[record.textLength] == UInt8(ascii: "*") else { return nil }
        return String(decoding: bytes[(record.textLength + 1)...], as: UTF8.self)
    }

    /// Runs an action within the hop deadline; nil when the deadline passed first. A late result is
    /// worded by the engine as usual and sent to the customer by SMS through the outbox.
    func run(_ request: ActionRequest, context: ActionContext, state: SessionState, hop: USSDHop, number: Int) async throws -> ActionResult? {
        let (engine, wallet, logger, actions) = (self.engine, self.wallet, self.logger, self.actions)
        let result = try await self.workers.run(within: self.deadline, { try await actions.run(request, context: context) }) { late in
            do {
                guard case .show(let page, _) = engine.resume(state, with: try late.get()) else { return }
                try await wallet?.queueNotice(hop.msisdn, template: "ussd_result", params: ["text": page.text], dedupe: "ussd:\(hop.sessionId):\(number)")
            } catch {
                logger.error("late ussd action failed", metadata: ["action": .string(request.action), "error": .string(safeDescription(of: error))])
            }
        }
        if result == nil { self.metrics.counter("ussd_late_actions_total", [("action", request.action)]).increment() }
        return result
    }

    /// A copy of a hop whose action is running elsewhere: wait for that hop's reply (up to the
    /// deadline and a little more) and answer it; failing that, the "we are processing your
    /// request" page (the first copy's result then goes by SMS, or its process died and its money
    /// movement, if it committed, stays exactly-once by its key).
    func waitForClaimedHop(_ hop: USSDHop, seal: String, language: String) async throws -> String {
        let limit = ContinuousClock.now + self.deadline + .seconds(1)
        while ContinuousClock.now < limit {
            try await Task.sleep(for: .milliseconds(20))
            if let record = try await self.store.load(hop.sessionId)?.record, record.textSeal == seal {
                return record.reply
            }
        }
        return "END " + self.engine.systemPage("processing", language: language).text
    }

    /// A state fit to keep for resume: no seals of secrets.
    static func resumable(_ state: SessionState) -> SessionState {
        var state = state
        state.sealed = [:]
        return state
    }
}

/// Another callback of the session changed it in a way this hop cannot answer from.
struct USSDConflict: Error, LogSafeError {
    var description: String { "another callback of the session changed it first" }
}
