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
import ServiceLifecycle
import Synchronization
import Wallet

/// Sends the outbox through Africa's Talking, safely from any number of replicas.
///
/// Rows are claimed with `FOR UPDATE SKIP LOCKED` for a minute at a time under a token, and each
/// claim is renewed right before its message goes, so two senders never send the same row; a row
/// whose sender died mid-send is sent again once its claim expires
/// (the price of at-least-once: a crash between Africa's Talking's answer and our update can send
/// one message twice). Transient failures (HTTP 5xx, no answer, per-recipient 500-502) come back
/// with exponential backoff and jitter until `maxAttempts`; permanent ones (per-recipient 401-409,
/// HTTP 4xx) are recorded with their reason and never retried.
public final class OutboxSender: Service, Sendable {
    let outbox: Outbox
    let client: AfricasTalkingSMS
    let graph: MenuGraph
    let settings: SMSSettings
    let logger: Logger
    let metrics: MetricCache
    private let pacing = Mutex(ContinuousClock.now)

    public init(
        postgres: PostgresClient, personalData: PersonalData?, client: AfricasTalkingSMS, graph: MenuGraph, settings: SMSSettings, metrics: MetricCache,
        logger: Logger
    ) {
        self.metrics = metrics
        self.outbox = Outbox(postgres: postgres, personalData: personalData)
        self.client = client
        self.graph = graph
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            var handled = 0
            do {
                handled = try await self.sendDue()
            } catch {
                self.logger.warning("outbox pass failed", metadata: ["error": .string(safeDescription(of: error))])
            }
            if handled == 0 {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.settings.pollInterval) }
            }
        }
    }

    /// What one pass did with each message it claimed.
    public enum Outcome: String, Sendable {
        case sent, retrying, failed
        /// The claim ran out and another sender holds the message now: left to it.
        case skipped
    }

    /// Claims up to `limit` due messages, sends them, and records each outcome. Returns how many
    /// it handled.
    @discardableResult
    public func sendDue(limit: Int = 20) async throws -> Int {
        let claimed = try await self.outbox.claimDue(limit: limit)
        for message in claimed {
            let outcome = await self.send(message)
            self.metrics.count("sms_outbox_total", [("outcome", outcome.rawValue)])
        }
        return claimed.count
    }

    /// Sends one claimed message, after renewing the claim: a batch sent slowly (a low rate, slow
    /// answers) can outlive its first minute, and a message another sender claimed meanwhile is
    /// left to that sender.
    public func send(_ claimed: Outbox.Claimed) async -> Outcome {
        let id = claimed.id
        let worded: String?
        do {
            let (text, erased) = try await self.outbox.text(of: claimed)
            if erased {
                await self.record(claimed) { try await $0.markFailed($1, reason: "the recipient's personal data was erased") }
                return .failed
            }
            worded = text
        } catch let error as PersonalDataError {
            switch error {
            case .keys, .missingKey:
                // The key store or the keys are not reachable now: another attempt later, within the attempts' limit.
                self.logger.warning("outbox text not opened; tried again later", metadata: ["outbox": .stringConvertible(id), "error": .string(error.description)])
                return await self.retry(claimed, reason: "personal-data keys unavailable")
            case .doesNotOpen, .malformed, .destroyed:
                // It will never open: given up on at once, never sent as anything else.
                await self.record(claimed) { try await $0.markFailed($1, reason: "its sealed text does not open") }
                self.logger.error("outbox text does not open; not sent", metadata: ["outbox": .stringConvertible(id), "error": .string(error.description)])
                return .failed
            }
        } catch {
            self.logger.warning("outbox text not opened; tried again later", metadata: ["outbox": .stringConvertible(id), "error": .string(safeDescription(of: error))])
            return await self.retry(claimed, reason: "personal-data keys unavailable")
        }
        guard let text = worded ?? self.word(template: claimed.template, language: claimed.language, params: claimed.params) else {
            await self.record(claimed) { try await $0.markFailed($1, reason: "menus.json has no wording for this template") }
            self.logger.error("no wording for an outbox template", metadata: ["template": .string(claimed.template), "outbox": .stringConvertible(id)])
            return .failed
        }
        await self.pace()
        do {
            guard try await self.outbox.renew(claimed) else { return .skipped }
        } catch {
            self.logger.warning("outbox claim not renewed; left for later", metadata: ["outbox": .stringConvertible(id), "error": .string(safeDescription(of: error))])
            return .skipped
        }
        let start = ContinuousClock.now
        do {
            let status = try await self.client.send(to: claimed.recipient.international, message: text)
            self.timeSend(since: start, status.accepted ? "accepted" : "refused")
            if status.accepted {
                await self.record(claimed) { try await $0.markSent($1, messageID: status.messageID, providerStatus: status.status) }
                return .sent
            }
            let reason = "\(status.statusCode) \(status.status)"
            return await status.transient ? self.retry(claimed, reason: reason) : self.fail(claimed, reason: reason)
        } catch {
            self.timeSend(since: start, "error")
            return await error.transient ? self.retry(claimed, reason: error.description) : self.fail(claimed, reason: error.description)
        }
    }

    /// `sms_send_duration_seconds{outcome}`: the provider's answer time, accepted, refused or none.
    private func timeSend(since start: ContinuousClock.Instant, _ outcome: String) {
        self.metrics.timer("sms_send_duration_seconds", [("outcome", outcome)]).record(duration: ContinuousClock.now - start)
    }

    private func retry(_ claimed: Outbox.Claimed, reason: String) async -> Outcome {
        let (id, attempts) = (claimed.id, claimed.attempts)
        guard attempts < self.settings.maxAttempts else { return await self.fail(claimed, reason: "gave up after \(attempts) attempts: \(reason)") }
        let delay = Self.backoff(attempt: attempts, base: self.settings.retryBase)
        await self.record(claimed) { try await $0.retry($1, after: delay, reason: reason) }
        self.logger.notice("SMS will be retried", metadata: ["outbox": .stringConvertible(id), "attempt": .stringConvertible(attempts), "reason": .string(reason)])
        return .retrying
    }

    private func fail(_ claimed: Outbox.Claimed, reason: String) async -> Outcome {
        await self.record(claimed) { try await $0.markFailed($1, reason: reason) }
        self.logger.warning("SMS failed for good", metadata: ["outbox": .stringConvertible(claimed.id), "reason": .string(reason)])
        return .failed
    }

    private func record(_ claimed: Outbox.Claimed, _ change: (Outbox, Outbox.Claimed) async throws -> Void) async {
        do {
            try await change(self.outbox, claimed)
        } catch {
            // The claim expires and the row is tried again: at least once, never lost.
            self.logger.error("outbox update failed", metadata: ["outbox": .stringConvertible(claimed.id), "error": .string(safeDescription(of: error))])
        }
    }

    /// `base * 2^(attempt - 1)`, at most an hour, scattered by ±25 % so that retries of many rows
    /// do not arrive together.
    static func backoff(attempt: Int, base: Duration) -> Duration {
        let raw = min(3600, base.inSeconds * pow(2, Double(max(0, attempt - 1))))
        return .milliseconds(Int(raw * Double.random(in: 0.75...1.25) * 1000))
    }

    /// Waits for this replica's next sending slot (`SMS_RATE_PER_SECOND`).
    private func pace() async {
        guard self.settings.ratePerSecond > 0 else { return }
        let interval = Duration.milliseconds(Int(1000 / self.settings.ratePerSecond))
        let slot = self.pacing.withLock { next -> ContinuousClock.Instant in
            let now = ContinuousClock.now
            let slot = max(next, now)
            next = slot + interval
            return slot
        }
        if slot > .now { try? await Task.sleep(until: slot) }
    }

    /// A template worded in `language` from menus.json's notifications.
    func word(template: String, language: String, params json: String) -> String? {
        var params: [String: String] = [:]
        if case .object(let members)? = JSONValue.parse(Array(json.utf8)) {
            for (key, value) in members { params[key] = value.string }
        }
        if let key = params["key"] { params["reference"] = TransferReference.of(key) }
        let language = self.graph.languages.contains(language) ? language : self.graph.defaultLanguage
        return self.graph.notification(template, language: language, params: params)
    }
}
