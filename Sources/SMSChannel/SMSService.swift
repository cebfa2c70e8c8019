import AfricasTalking
import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Logging
import Menus
import Metrics
import Postgres
import Redis
import Wallet

/// Inbound SMS commands: de-duplicated on Africa's Talking's message id, read with menus.json's
/// `sms` section, run through the same actions as USSD, answered through the outbox.
public final class SMSService: Sendable {
    /// One message as Africa's Talking posts it.
    public struct Inbound: Sendable {
        public let id: String
        public let from: String
        public let text: String

        public init(id: String, from: String, text: String) {
            self.id = id
            self.from = from
            self.text = text
        }
    }

    public enum Outcome: String, Sendable {
        /// Replied (the reply is in the outbox).
        case replied
        /// A retried callback of a message already handled (or being handled): nothing ran.
        case duplicate
        /// The sender is not a number we can answer.
        case ignored
        /// Over `SMS_RATE_LIMIT_PER_MINUTE`: nothing ran (the first one over gets a polite reply).
        case rateLimited = "rate_limited"
    }

    let graph: MenuGraph
    let engine: SMSEngine
    let postgres: PostgresClient
    let wallet: Wallet
    let actions: any ActionRunner
    /// Counts commands per number per minute; nil or a limit of 0 counts nothing.
    let rateLimit: (redis: RedisClient, perMinute: Int)?
    /// The wall clock whose minutes the rate limit counts (tests pass time in).
    let now: @Sendable () -> Date
    let logger: Logger
    let metrics: MetricCache

    public init(
        graph: MenuGraph, postgres: PostgresClient, wallet: Wallet, actions: any ActionRunner, rateLimit: (redis: RedisClient, perMinute: Int)? = nil,
        now: @escaping @Sendable () -> Date = { Date() }, plan: NumberingPlan = .kenya, metrics: MetricCache, logger: Logger
    ) {
        self.metrics = metrics
        self.graph = graph
        self.engine = SMSEngine(graph: graph, plan: plan)
        self.postgres = postgres
        self.wallet = wallet
        self.actions = actions
        self.rateLimit = rateLimit.flatMap { $0.perMinute > 0 ? $0 : nil }
        self.now = now
        self.logger = logger
    }

    /// Counts one command in the number's current minute (a Redis counter that expires with it).
    static let count = RedisScript(
        """
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
        return n
        """
    )

    public func receive(_ message: Inbound) async throws -> Outcome {
        guard let msisdn = MSISDN(parsing: message.from, plan: self.engine.plan) else {
            self.logger.notice("SMS from a sender that is not a mobile number of a country served", metadata: ["sms": .string(message.id)])
            self.metrics.count("sms_inbound_total", [("outcome", "ignored")])
            return .ignored
        }
        let customer = try? await self.wallet.customer(msisdn)
        guard try await self.claim(message, from: msisdn, customer: customer) else {
            self.metrics.count("sms_inbound_total", [("outcome", "duplicate")])
            self.logger.info("duplicate SMS callback", metadata: ["sms": .string(message.id)])
            return .duplicate
        }
        let language = customer?.language
        let (outcome, command, reply) = try await self.answer(message, from: msisdn, language: language)
        let outbox = Outbox(postgres: self.postgres, personalData: self.wallet.personalData)
        var sealed: Outbox.SealedText?
        if let reply { sealed = try await outbox.seal(reply, to: msisdn, dedupe: "sms:\(message.id):reply") }
        try await self.postgres.transaction { tx in
            if let sealed {
                try await Outbox.queue(tx, text: sealed, to: msisdn, language: language ?? self.graph.defaultLanguage, template: "reply")
            }
            try await tx.query("UPDATE sms_inbound SET status = 'done', done_at = now() WHERE id = \(message.id)")
        }
        self.metrics.count("sms_inbound_total", [("outcome", outcome.rawValue), ("command", command)])
        self.logger.info("SMS command", metadata: ["sms": .string(message.id), "command": .string(command)])
        return outcome
    }

    /// Claims a message's id: a new id is claimed; a known one runs again only when its first run
    /// died unfinished. False for a repeated callback.
    /// The text is kept sealed (PIN masked first) for the sender's subject, or the month's when the
    /// number has no wallet.
    func claim(_ message: Inbound, from msisdn: MSISDN, customer: Wallet.Customer?) async throws -> Bool {
        let subject = customer.flatMap { $0.erasedAt == nil ? $0.subject : nil }
        let kept = subject ?? PersonalData.periodSubject(self.now())
        guard let personalData = self.wallet.personalData else {
            throw PersonalDataError.keys("the SMS channel has no personal-data keys: an inbound text cannot be kept sealed")
        }
        let sealed = try await personalData.seal(
            self.engine.masked(message.text), for: kept, purpose: subject == nil ? .period : .customer, at: .inboundText(message.id))
        return try await !self.postgres.query(
            """
            INSERT INTO sms_inbound (id, sender, subject, text_sealed) VALUES (\(message.id), \(msisdn.value), \(kept.uuidString)::uuid, \(sealed))
            ON CONFLICT (id) DO UPDATE SET received_at = now()
            WHERE sms_inbound.status = 'received' AND sms_inbound.received_at < now() - interval '30 seconds'
            RETURNING id
            """
        ).isEmpty
    }

    /// The command's outcome, its name for the metrics, and the reply (none once a rate-limited
    /// number has had its one polite answer).
    func answer(_ message: Inbound, from msisdn: MSISDN, language: String?) async throws -> (Outcome, String, String?) {
        if let count = await self.countCommand(msisdn), let rateLimit = self.rateLimit, count > rateLimit.perMinute {
            // One polite reply when the limit is first passed, then silence (every reply costs).
            let reply = count == rateLimit.perMinute + 1 ? self.graph.systemText("smsRateLimited", language ?? self.graph.defaultLanguage) : nil
            return (.rateLimited, "rate_limited", reply)
        }
        switch self.engine.interpret(message.text, language: language, context: ["msisdn": msisdn.value]) {
        case .reply(let text):
            return (.replied, "help", text)
        case .perform(let name, let request, let replyLanguage, let variables):
            let context = ActionContext(msisdn: msisdn, idempotencyKey: "sms:" + message.id, channel: "sms", conversation: "sms:" + message.id)
            let result = try await self.actions.run(request, context: context)
            return (.replied, name, self.engine.reply(to: name, result: result, language: replyLanguage, variables: variables))
        }
    }

    /// Counts one command in the number's current minute; nil without a rate limit, or while Redis
    /// cannot count (SMS needs no Redis otherwise: the command is then not refused).
    func countCommand(_ msisdn: MSISDN) async -> Int? {
        guard let rateLimit = self.rateLimit else { return nil }
        let minute = Int(self.now().timeIntervalSince1970) / 60
        do {
            return try await rateLimit.redis.run(Self.count, keys: ["sms:rl:\(msisdn.value):\(minute)"]).int ?? 0
        } catch {
            self.logger.warning("SMS rate limit not counted", metadata: ["error": .string(safeDescription(of: error))])
            return nil
        }
    }

    /// `POST /sms/africastalking/delivery`: the message's delivery status by its messageId; a final
    /// status is not undone by a late in-progress one. False when no message of ours has that id.
    /// `counted`: false for a second look at the same report (it is counted once).
    public func deliveryReport(_ report: AfricasTalkingDeliveryReport, counted: Bool = true) async throws -> Bool {
        // Labels only from the documented vocabulary: anything else is `other`.
        if counted { self.metrics.count("sms_delivery_reports_total", [("status", report.known?.rawValue ?? "other")]) }
        return try await Outbox(postgres: self.postgres).recordDelivery(
            messageID: report.id, status: report.status, failureReason: report.failureReason, delivered: report.known == .success,
            final: report.known?.isFinal ?? false
        )
    }

    /// Whether the outbox is sending a message right now (``Outbox/sendingNow()``).
    func sendingNow() async throws -> Bool {
        try await Outbox(postgres: self.postgres).sendingNow()
    }

    /// Queues an operator's message (`ussd-gateway sms send`); returns the outbox id.
    public static func queue(
        _ postgres: PostgresClient, personalData: PersonalData?, to msisdn: MSISDN, text: String, by action: OperatorAction? = nil
    ) async throws -> Int64 {
        try await Outbox(postgres: postgres, personalData: personalData).queueOperatorMessage(text, to: msisdn, by: action)
    }

}
