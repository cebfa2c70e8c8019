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
/// ``HopPlanner`` decides what a hop means; this type performs its plans. Its only branches are on
/// what the outside world answered: whether a compare-and-set write won, whether an action's result
/// came within the deadline, whether a waited-for reply arrived.
public final class USSDService: Sendable {
    let engine: Engine
    let store: USSDSessionStore
    let actions: any ActionRunner
    let workers: ActionWorkers
    let wallet: Wallet?
    let planner: HopPlanner
    let now: @Sendable () -> Date
    let deadline: Duration
    let logger: Logger
    public let metrics: MetricCache
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
        /// The wall clock the repeat window and the rate limit's minutes are read from (tests pass
        /// time in).
        public var now: @Sendable () -> Date = { Date() }
        /// Whose numbers the channel serves (`MSISDN_COUNTRIES`).
        public var plan = NumberingPlan.kenya

        public init() {}
    }

    public init(
        graph: MenuGraph, redis: RedisClient, actions: any ActionRunner, workers: ActionWorkers, wallet: Wallet?, sealer: any SecretSealer,
        settings: Settings, metrics: MetricCache, logger: Logger
    ) {
        self.metrics = metrics
        self.engine = Engine(graph: graph, sealer: sealer, plan: settings.plan)
        self.store = USSDSessionStore(redis: redis, ttlSeconds: settings.sessionTTLSeconds, resumeWindowSeconds: settings.resumeWindowSeconds)
        self.actions = actions
        self.workers = workers
        self.wallet = wallet
        self.planner = HopPlanner(
            engine: self.engine, sealer: sealer, isLookup: { actions.isLookup($0) }, rateLimitPerMinute: settings.rateLimitPerMinute,
            repeatWindow: settings.repeatWindow
        )
        self.now = settings.now
        self.deadline = settings.hopDeadline
        self.logger = logger
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

    /// Answers one hop: `CON ...` or `END ...`. Never throws: an internal failure is a localised
    /// apology with an error id in the log. A hop of a known session from another number is
    /// refused and changes nothing.
    ///
    /// The planner decides; this performs: it reads what a plan asks for (the session, the count,
    /// the number's unfinished session), writes what a plan says, runs the actions, and asks again
    /// until a plan answers. Each read is asked for at most once, and a reload only follows a copy
    /// of the session from this process, so the loop is short; it is bounded all the same.
    public func handle(_ hop: USSDHop) async -> Answer {
        let start = ContinuousClock.now
        var outcome = (screen: "-", kind: "error")
        defer {
            self.metrics.counter("ussd_hops_total", [("provider", hop.provider), ("screen", outcome.screen), ("outcome", outcome.kind)]).increment()
            self.metrics.timer("ussd_hop_duration_seconds", [("provider", hop.provider), ("outcome", outcome.kind)])
                .record(duration: ContinuousClock.now - start)
        }
        var facts = HopFacts()
        guard self.planner.serves(hop) else {
            // A code this menus.json does not serve: answered without a read of Redis.
            return self.answer(self.planner.unknownServiceReply(facts), &outcome)
        }
        do {
            facts = try await self.find(hop, fresh: false)
            var plan = self.planner.plan(hop, facts, now: self.unixNow())
            for _ in 0..<Self.maximumPlans {
                switch plan {
                case .count:
                    facts.hopsThisMinute = try await self.store.countHop(hop.msisdn.value, now: self.now())
                case .lookUpResume:
                    (facts.resumeLookedUp, facts.resumable) = (true, try await self.store.resumeSnapshot(hop.msisdn.value))
                case .reload:
                    self.recent.remove(hop.sessionId)
                    let stored = try await self.find(hop, fresh: true)
                    (facts.record, facts.version, facts.fromCache) = (stored.record, stored.version, stored.fromCache)
                case .answer(let reply):
                    return self.answer(reply, &outcome)
                case .refuse(let reason):
                    outcome.kind = "refused"
                    self.logger.warning("a hop of a session from another number", metadata: ["session": .string(hop.sessionId)])
                    return .refused(reason)
                case .wait(let wait):
                    plan = .answer(Reply(text: try await self.waitForClaimedHop(hop.sessionId, wait), screen: wait.screen, kind: "replay"))
                    continue
                case .write(let write):
                    plan = try await self.commit(write, hop.sessionId, &facts)
                    continue
                case .run(let run):
                    plan = try await self.perform(run, &facts)
                    continue
                case .conflict:
                    throw USSDConflict()
                }
                plan = self.planner.plan(hop, facts, now: self.unixNow())
            }
            throw USSDConflict()
        } catch {
            let errorID = String(UUID().uuidString.prefix(8)).lowercased()
            self.logger.error("ussd hop failed", metadata: ["error_id": .string(errorID), "error": .string(safeDescription(of: error)), "session": .string(hop.sessionId)])
            let apology = self.engine.systemPage("failure", language: self.planner.language(facts)).text
            return .reply("END " + apology, screen: "-")
        }
    }

    /// A reply, with what the metrics say of it.
    func answer(_ reply: Reply, _ outcome: inout (screen: String, kind: String)) -> Answer {
        outcome = (reply.screen, reply.kind)
        return .reply(reply.text, screen: reply.screen)
    }

    /// More plans than a hop can need: each read once, one reload, a claim, a write and its loss.
    static let maximumPlans = 12

    /// Unix seconds: the planner's `now`.
    func unixNow() -> Double { self.now().timeIntervalSince1970 }

    /// The session from this process's copy, or from Redis when `fresh` or not cached. A first hop
    /// (empty text, a dial) is almost always a new session: it is assumed so without reading Redis;
    /// if the session exists after all, the compare-and-set write fails and the hop is planned again.
    func find(_ hop: USSDHop, fresh: Bool) async throws -> HopFacts {
        if !fresh, let cached = self.recent.get(hop.sessionId) { return HopFacts(record: cached.record, version: cached.version, fromCache: true) }
        if !fresh && hop.isFirst { return HopFacts(record: nil, version: 0, fromCache: true) }
        let loaded = try await self.store.load(hop.sessionId)
        return HopFacts(record: loaded?.record, version: loaded?.version ?? 0, fromCache: false)
    }

    /// Runs the step's actions one after another, claiming the hop when the planner says, until a
    /// page; then writes it. What comes next: an answer, or a plan for a lost claim or write.
    func perform(_ run: HopPlan.Run, _ facts: inout HopFacts) async throws -> HopPlan {
        if let choice = run.resumeChoice { self.metrics.counter("ussd_resumes_total", [("choice", choice)]).increment() }
        var (step, claimed) = (run.first, false)
        while true {
            switch self.planner.next(step, claimed: claimed, run, now: self.unixNow()) {
            case .claim(let language):
                let claim = self.planner.claim(run, facts, now: self.unixNow())
                guard try await self.save(claim, run.sessionId, &facts, resume: .keep) else {
                    return self.planner.lostClaim(run, facts, language: language)
                }
                // Written to Redis just now: from here on, a lost write is a real conflict, not a stale copy.
                (facts.fromCache, claimed) = (false, true)
            case .act(let request, let state):
                guard let result = try await self.run(request, context: run.context, state: state) else {
                    return try await self.commit(self.planner.late(run, state, now: self.unixNow()), run.sessionId, &facts)
                }
                step = self.engine.resume(state, with: result)
            case .write(let write):
                return try await self.commit(write, run.sessionId, &facts)
            }
        }
    }

    /// Writes the plan's record; on a loss, what the planner makes of it (the winner read from
    /// Redis when the session was).
    func commit(_ write: HopPlan.Write, _ sessionId: String, _ facts: inout HopFacts) async throws -> HopPlan {
        if let choice = write.resumeChoice { self.metrics.counter("ussd_resumes_total", [("choice", choice)]).increment() }
        if try await self.save(write.record, sessionId, &facts, resume: write.resume) { return .answer(write.reply) }
        // The winner matters only to a reply that must win; the rest are answered as they are.
        let winner = facts.fromCache || !write.mustWin ? nil : try await self.store.load(sessionId)?.record
        return self.planner.lostWrite(write, facts, winner: winner)
    }

    /// The compare-and-set write of `record` over the version found; this process's copy follows.
    /// On a loss the copy is dropped and `facts` keep what was found, for the planner to judge.
    func save(_ record: SessionRecord, _ sessionId: String, _ facts: inout HopFacts, resume: USSDSessionStore.ResumeChange) async throws -> Bool {
        let previous = facts.record
        guard let written = try await self.store.save(sessionId, msisdn: record.msisdn ?? "", expecting: facts.version, record, previous: previous, resume: resume)
        else {
            self.recent.remove(sessionId)
            return false
        }
        self.recent.put(sessionId, version: facts.version + 1, written)
        (facts.record, facts.version) = (written, facts.version + 1)
        return true
    }

    /// Runs an action within the hop deadline; nil when the deadline passed first. A late result is
    /// worded by the engine as usual and sent to the customer by SMS through the outbox.
    func run(_ request: ActionRequest, context: ActionContext, state: SessionState) async throws -> ActionResult? {
        let (engine, wallet, logger, actions) = (self.engine, self.wallet, self.logger, self.actions)
        let result = try await self.workers.run(within: self.deadline, { try await actions.run(request, context: context) }) { late in
            do {
                guard case .show(let page, _) = engine.resume(state, with: try late.get()) else { return }
                try await wallet?.queueNotice(context.msisdn, template: "ussd_result", params: ["text": page.text], dedupe: context.idempotencyKey)
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
    /// movement, if it committed, stays exactly-once by its key). The 20 ms between reads is the
    /// other copy's action and write, a real outside delay.
    func waitForClaimedHop(_ sessionId: String, _ wait: HopPlan.Wait) async throws -> String {
        let limit = ContinuousClock.now + self.deadline + .seconds(1)
        while ContinuousClock.now < limit {
            try await Task.sleep(for: .milliseconds(20))
            if let record = try await self.store.load(sessionId)?.record, record.textSeal == wait.seal {
                return record.reply
            }
        }
        return "END " + self.engine.systemPage("processing", language: wait.language).text
    }
}

/// Another callback of the session changed it in a way this hop cannot answer from.
struct USSDConflict: Error, LogSafeError {
    var description: String { "another callback of the session changed it first" }
}
