import AfricasTalking
import Foundation
import GatewayActions
import GatewayHTTP
import Logging
import Menus
import Metrics
import Redis
import Synchronization
import Wallet

/// One hop as Africa's Talking reports it, decoded and checked at the edge.
public struct USSDHop: Sendable {
    public let sessionId: String
    public let msisdn: MSISDN
    public let serviceCode: String
    /// Every input of the session so far, `*`-joined. Holds PINs: never log or store it.
    public let text: String

    public init(sessionId: String, msisdn: MSISDN, serviceCode: String, text: String) {
        self.sessionId = sessionId
        self.msisdn = msisdn
        self.serviceCode = serviceCode
        self.text = text
    }
}

/// The USSD channel: Redis sessions, the menu engine and the actions, exactly once per hop.
///
/// A hop is identified by (sessionId, text). A repeated hop gets the stored reply byte for byte and
/// runs nothing; a copy of a hop whose action is still running waits for that reply. The new
/// input is what follows the previous hop's text. Money-moving actions get the idempotency key
/// `{sessionId}:{hop}`, so even a crash between the wallet's commit and the session write cannot
/// move money twice: the retried hop replays the wallet's receipt.
public final class USSDService: Sendable {
    let engine: Engine
    let store: USSDSessionStore
    let actions: any ActionRunner
    let wallet: Wallet?
    let sealer: any SecretSealer
    let deadline: Duration
    let rateLimitPerMinute: Int
    let logger: Logger
    let serviceCodes: Set<String>
    let metrics = MetricCache()
    /// The records this process wrote last, so the next hop of a session it served skips reading
    /// Redis; every write is still compare-and-set, so a copy another replica made stale is found
    /// out before anything is acted on, and the hop is answered again from Redis.
    let recent: RecentSessions

    public struct Settings: Sendable {
        public var sessionTTLSeconds = 120
        public var resumeWindowSeconds = 300
        public var hopDeadline = Duration.seconds(4)
        public var rateLimitPerMinute = 30

        public init() {}
    }

    public init(
        graph: MenuGraph, redis: RedisClient, actions: any ActionRunner, wallet: Wallet?, sealer: any SecretSealer,
        settings: Settings, logger: Logger
    ) {
        self.engine = Engine(graph: graph, sealer: sealer)
        self.store = USSDSessionStore(redis: redis, ttlSeconds: settings.sessionTTLSeconds, resumeWindowSeconds: settings.resumeWindowSeconds)
        self.actions = actions
        self.wallet = wallet
        self.sealer = sealer
        self.deadline = settings.hopDeadline
        self.rateLimitPerMinute = settings.rateLimitPerMinute
        self.logger = logger
        self.serviceCodes = Set(graph.document.serviceCodes)
        self.recent = RecentSessions(lifetime: .seconds(settings.sessionTTLSeconds))
    }

    /// What a hop gets: a reply, or a refusal of a hop that cannot be the session's (answered 400).
    public enum Answer: Sendable, Equatable {
        /// `CON ...` or `END ...`.
        case reply(String)
        /// Why, safe to log.
        case refused(String)
    }

    /// Answers one hop: the reply body, `CON ...` or `END ...`. Never throws: an internal failure is
    /// a localised apology with an error id in the log. A hop of a known session from another
    /// number is refused and changes nothing.
    public func handle(_ hop: USSDHop) async -> Answer {
        let start = ContinuousClock.now
        var outcome = Outcome(screen: "-", kind: "error")
        defer {
            self.metrics.counter("ussd_hops_total", [("screen", outcome.screen), ("outcome", outcome.kind)]).increment()
            self.metrics.timer("ussd_hop_duration_seconds", [("outcome", outcome.kind)]).record(duration: ContinuousClock.now - start)
        }
        guard self.serviceCodes.contains(hop.serviceCode) else {
            outcome.kind = "unknown_service"
            return .reply("END " + self.engine.systemPage("unknownService", language: self.engine.graph.defaultLanguage).text)
        }
        var language = self.engine.graph.defaultLanguage
        do {
            do {
                return .reply(try await self.answer(hop, outcome: &outcome, language: &language, fresh: false))
            } catch is StaleSession {
                return .reply(try await self.answer(hop, outcome: &outcome, language: &language, fresh: true))
            }
        } catch is SessionOfAnotherNumber {
            outcome.kind = "refused"
            self.logger.warning("a hop of a session from another number", metadata: ["session": .string(hop.sessionId)])
            return .refused("sessionId belongs to another phoneNumber")
        } catch {
            let errorID = String(UUID().uuidString.prefix(8)).lowercased()
            self.logger.error(
                "ussd hop failed",
                metadata: ["error_id": .string(errorID), "error": .string(safeDescription(of: error)), "session": .string(hop.sessionId)]
            )
            outcome.kind = "error"
            return .reply("END " + self.engine.systemPage("failure", language: language).text)
        }
    }

    struct Outcome {
        var screen: String
        var kind: String
    }

    private func answer(_ hop: USSDHop, outcome: inout Outcome, language: inout String, fresh: Bool) async throws -> String {
        let seal = Self.textSeal(hop.text, session: hop.sessionId, sealer: self.sealer)
        let cached = fresh ? nil : self.recent.get(hop.sessionId)
        // A first hop (empty text) is almost always a new session: assume so without reading Redis.
        // If the session exists after all (a repeated first hop), the compare-and-set write fails
        // and the hop is answered again from Redis, exactly as for a stale copy.
        let assumedNew = !fresh && cached == nil && hop.text.isEmpty
        let fromCache = cached != nil || assumedNew
        let loaded: (version: Int, record: SessionRecord)?
        if let cached { loaded = cached } else if assumedNew { loaded = nil } else { loaded = try await self.store.load(hop.sessionId) }
        var version = loaded?.version ?? 0
        var record = loaded?.record

        if let owner = record?.msisdn, owner != hop.msisdn.value {
            // Checked before a replay too: a stored reply (a balance, say) is the owner's alone.
            guard fromCache else { throw SessionOfAnotherNumber() }
            self.recent.remove(hop.sessionId)
            throw StaleSession()
        }
        if let current = record {
            if current.textSeal == seal {
                outcome = Outcome(screen: current.state?.screen ?? "end", kind: "replay")
                return current.reply
            }
            if current.claim == seal {
                outcome = Outcome(screen: current.state?.screen ?? "-", kind: "replay")
                return try await self.waitForClaimedHop(hop, seal: seal, language: current.state?.language ?? language)
            }
        }

        var input: String?
        if let current = record {
            guard current.state != nil || current.offer != nil else {
                // The session ENDed; a later hop of it is not one we can answer.
                outcome.kind = "after_end"
                return "END " + self.engine.systemPage("failure", language: language).text
            }
            guard let next = self.newInput(hop.text, after: current, sessionId: hop.sessionId) else {
                outcome.kind = "out_of_order"
                return "END " + self.engine.systemPage("failure", language: current.state?.language ?? language).text
            }
            input = next
            language = current.state?.language ?? current.offer?.language ?? language
        }

        if self.rateLimitPerMinute > 0, try await self.store.countHop(hop.msisdn.value) > self.rateLimitPerMinute {
            outcome.kind = "rate_limited"
            let page = self.engine.systemPage("rateLimited", language: language)
            var ended = record ?? SessionRecord(hop: 0, textLength: 0, textSeal: "", reply: "")
            ended.hop += 1
            (ended.textLength, ended.textSeal, ended.reply, ended.state, ended.offer) = (hop.text.utf8.count, seal, "END " + page.text, nil, nil)
            try await self.write(hop, ended, expecting: version, resume: .keep, fromCache: fromCache)
            return "END " + page.text
        }

        let number = (record?.hop ?? 0) + 1
        var step: Step
        if let current = record, let input {
            if let offer = current.offer {
                switch input.trimmingCharacters(in: .whitespaces) {
                case "1":
                    self.metrics.counter("ussd_resumes_total", [("choice", "continue")]).increment()
                    step = self.engine.redisplay(offer)
                case "2":
                    self.metrics.counter("ussd_resumes_total", [("choice", "restart")]).increment()
                    step = self.engine.start(variables: ["msisdn": hop.msisdn.value], language: offer.language)
                default:
                    let again = self.engine.systemPage("resumeOffer", language: offer.language, continues: true)
                    let reply = "CON " + self.engine.systemPage("invalidChoice", language: offer.language).text + "\n" + again.text
                    var next = current
                    (next.hop, next.textLength, next.textSeal, next.reply) = (number, hop.text.utf8.count, seal, reply)
                    try await self.write(hop, next, expecting: version, resume: .keep, fromCache: fromCache)
                    outcome = Outcome(screen: "resume", kind: "con")
                    return reply
                }
            } else {
                step = self.engine.advance(current.state!, input: input)
            }
        } else {
            // A new session (or one whose record expired: it starts again from the top).
            if let snapshot = try await self.store.resumeSnapshot(hop.msisdn.value), snapshot.sessionId != hop.sessionId {
                let page = self.engine.systemPage("resumeOffer", language: snapshot.state.language, continues: true)
                let offer = SessionRecord(hop: number, textLength: hop.text.utf8.count, textSeal: seal, reply: "CON " + page.text, offer: snapshot.state)
                self.metrics.counter("ussd_resumes_total", [("choice", "offered")]).increment()
                return try await self.commit(hop, offer, version: version, outcome: &outcome, screen: "resume", resume: .keep, fromCache: fromCache)
            }
            step = self.engine.start(variables: ["msisdn": hop.msisdn.value])
        }

        // Actions, one after another, until a page to show.
        var claimed = false
        while case .perform(let request, let state) = step {
            language = state.language
            if !claimed && request.action != "wallet.profile" {
                // Claim the hop first, so a copy of it waits for this reply instead of acting too.
                var claim = record ?? SessionRecord(hop: 0, textLength: 0, textSeal: "", reply: "")
                (claim.claim, claim.claimedAt, claim.msisdn) = (seal, Date().timeIntervalSince1970, hop.msisdn.value)
                guard try await self.store.save(hop.sessionId, msisdn: hop.msisdn.value, expecting: version, claim, resume: .keep) else {
                    self.recent.remove(hop.sessionId)
                    if fromCache { throw StaleSession() }
                    outcome.kind = "replay"
                    return try await self.waitForClaimedHop(hop, seal: seal, language: language)
                }
                version += 1
                record = claim
                claimed = true
                self.recent.put(hop.sessionId, version: version, claim)
            }
            // Namespaced per channel: no caller can pick a key another channel or the wallet uses.
            let context = ActionContext(
                msisdn: hop.msisdn, idempotencyKey: "ussd:\(hop.sessionId):\(number)", channel: "ussd", conversation: "ussd:" + hop.sessionId
            )
            guard let result = try await self.run(request, context: context, state: state, hop: hop, number: number) else {
                // Past the deadline: the action finishes on its own and its result goes by SMS.
                let page = self.engine.systemPage("processing", language: language)
                let ended = SessionRecord(hop: number, textLength: hop.text.utf8.count, textSeal: seal, reply: "END " + page.text)
                return try await self.commit(hop, ended, version: version, outcome: &outcome, screen: state.screen, resume: .drop, fromCache: fromCache && !claimed)
            }
            step = self.engine.resume(state, with: result)
        }
        // The loop above leaves only `.show`.
        guard case .show(let page, let state) = step else { throw USSDConflict() }
        let reply = (page.continues ? "CON " : "END ") + page.text
        let next = SessionRecord(
            hop: number, textLength: hop.text.utf8.count, textSeal: seal, reply: reply, state: page.continues ? state : nil
        )
        let resume: USSDSessionStore.ResumeChange = page.continues ? .set(ResumeSnapshot(sessionId: hop.sessionId, state: Self.resumable(state))) : .drop
        return try await self.commit(hop, next, version: version, outcome: &outcome, screen: page.screen, resume: resume, fromCache: fromCache && !claimed)
    }

    /// Writes the hop's record; when another copy of the hop wrote first, answers what it stored.
    /// A record read from this process's copy that turns out stale answers the hop again from Redis.
    private func commit(
        _ hop: USSDHop, _ record: SessionRecord, version: Int, outcome: inout Outcome, screen: String, resume: USSDSessionStore.ResumeChange,
        fromCache: Bool
    ) async throws -> String {
        var record = record
        record.msisdn = hop.msisdn.value
        if try await self.store.save(hop.sessionId, msisdn: hop.msisdn.value, expecting: version, record, resume: resume) {
            self.recent.put(hop.sessionId, version: version + 1, record)
            outcome = Outcome(screen: screen, kind: record.reply.hasPrefix("CON ") ? "con" : "end")
            return record.reply
        }
        self.recent.remove(hop.sessionId)
        if fromCache { throw StaleSession() }
        if let winner = try await self.store.load(hop.sessionId)?.record, winner.textSeal == record.textSeal {
            outcome = Outcome(screen: screen, kind: "replay")
            return winner.reply
        }
        throw USSDConflict()
    }

    /// A write whose answer does not depend on winning (rate limit, a repeated resume offer).
    private func write(_ hop: USSDHop, _ record: SessionRecord, expecting version: Int, resume: USSDSessionStore.ResumeChange, fromCache: Bool) async throws {
        var record = record
        record.msisdn = hop.msisdn.value
        if try await self.store.save(hop.sessionId, msisdn: hop.msisdn.value, expecting: version, record, resume: resume) {
            self.recent.put(hop.sessionId, version: version + 1, record)
        } else {
            self.recent.remove(hop.sessionId)
            if fromCache { throw StaleSession() }
        }
    }

    /// The seal of a hop's `text` (which repeats every PIN typed), bound to the session: the same
    /// inputs in two sessions never give equal seals, so Redis reveals nothing about equal PINs.
    static func textSeal(_ text: String, session: String, sealer: any SecretSealer) -> String {
        sealer.seal("ussd-text|" + session + "|" + text)
    }

    /// The input of a new hop: what follows the previous hop's text (a prefix of this one).
    private func newInput(_ text: String, after record: SessionRecord, sessionId: String) -> String? {
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
    private func run(_ request: ActionRequest, context: ActionContext, state: SessionState, hop: USSDHop, number: Int) async throws -> ActionResult? {
        let work = Task { try await self.actions.run(request, context: context) }
        let deadline = self.deadline
        let first = await withTaskGroup(of: Result<ActionResult, any Error>?.self) { group in
            group.addTask { await work.result }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let first { return try first.get() }
        self.metrics.counter("ussd_late_actions_total", [("action", request.action)]).increment()
        let engine = self.engine, wallet = self.wallet, logger = self.logger
        Task {
            do {
                let result = try await work.value
                guard case .show(let page, _) = engine.resume(state, with: result) else { return }
                try await wallet?.queueNotice(
                    hop.msisdn, template: "ussd_result", params: ["text": page.text], dedupe: "ussd:\(hop.sessionId):\(number)"
                )
            } catch {
                logger.error("late ussd action failed", metadata: ["action": .string(request.action), "error": .string(safeDescription(of: error))])
            }
        }
        return nil
    }

    /// A copy of a hop whose action is running elsewhere: wait for that hop's reply (up to the
    /// deadline and a little more) and answer it; failing that, the "we are processing your
    /// request" page (the first copy's result then goes by SMS, or its process died and its money
    /// movement, if it committed, stays exactly-once by its key).
    private func waitForClaimedHop(_ hop: USSDHop, seal: String, language: String) async throws -> String {
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

    // MARK: End-of-session events

    /// An end-of-session event: a `Success` drops the resume snapshot; `Incomplete` (the user left
    /// or was dropped while a screen waited for input) and `Failed` keep it for the resume window.
    public func sessionEnded(sessionId: String, msisdn: MSISDN, status: AfricasTalkingUSSDEvent.Status) async throws {
        self.metrics.counter("ussd_sessions_ended_total", [("status", status.rawValue.lowercased())]).increment()
        try await self.store.endSession(sessionId)
        if status == .success {
            if let snapshot = try await self.store.resumeSnapshot(msisdn.value), snapshot.sessionId == sessionId {
                try await self.store.dropResume(msisdn.value)
            }
        } else {
            try await self.store.extendResume(msisdn.value)
        }
    }

    /// Sessions with a live state right now (all replicas), for the `ussd_active_sessions` gauge.
    public func activeSessions() async throws -> Int {
        try await self.store.activeSessions()
    }
}

/// This process's copy of a session was older than Redis's: answer the hop again from Redis.
struct StaleSession: Error {}

/// A hop whose sessionId belongs to a session of another number: a forged or confused callback.
struct SessionOfAnotherNumber: Error {}

/// The last record this process wrote per session, for at most the session TTL; bounded.
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

struct USSDConflict: Error, CustomStringConvertible {
    var description: String { "another callback of the session changed it first" }
}
