import AfricasTalking
import Foundation
import Logging
import Menus
import Metrics
import Postgres
import ServiceLifecycle
import Synchronization

/// Sends the outbox through Africa's Talking, safely from any number of replicas.
///
/// Rows are claimed with `FOR UPDATE SKIP LOCKED` for a minute at a time, so two senders never
/// hold the same row, and a row whose sender died mid-send is sent again once its claim expires
/// (the price of at-least-once: a crash between Africa's Talking's answer and our update can send
/// one message twice). Transient failures (HTTP 5xx, no answer, per-recipient 500-502) come back
/// with exponential backoff and jitter until `maxAttempts`; permanent ones (per-recipient 401-409,
/// HTTP 4xx) are recorded with their reason and never retried.
public final class OutboxSender: Service, Sendable {
    let postgres: PostgresClient
    let client: AfricasTalkingSMS
    let graph: MenuGraph
    let settings: SMSSettings
    let logger: Logger
    private let pacing = Mutex(ContinuousClock.now)

    public init(postgres: PostgresClient, client: AfricasTalkingSMS, graph: MenuGraph, settings: SMSSettings, logger: Logger) {
        self.postgres = postgres
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
    }

    /// Claims up to `limit` due messages, sends them, and records each outcome. Returns how many
    /// it handled.
    @discardableResult
    public func sendDue(limit: Int = 20) async throws -> Int {
        let rows = try await self.postgres.query(
            """
            UPDATE outbox o SET claimed_until = now() + interval '60 seconds', attempts = o.attempts + 1
            WHERE o.id IN (
                SELECT id FROM outbox WHERE kind = 'sms' AND status = 'pending' AND next_attempt_at <= now()
                    AND (claimed_until IS NULL OR claimed_until < now())
                ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING o.id, o.recipient, o.language, o.template, o.params::text, o.message, o.attempts
            """
        )
        for row in rows {
            let (id, recipient, language, template, params, message, attempts) = try row.decode((Int64, String, String, String, String, String?, Int32).self)
            let outcome = await self.deliver(id: id, recipient: recipient, language: language, template: template, params: params, message: message, attempts: Int(attempts))
            Counter(label: "sms_outbox_total", dimensions: [("outcome", outcome.rawValue)]).increment()
        }
        return rows.count
    }

    private func deliver(id: Int64, recipient: String, language: String, template: String, params: String, message: String?, attempts: Int) async -> Outcome {
        guard let text = message ?? self.word(template: template, language: language, params: params) else {
            await self.record(id, "UPDATE outbox SET status = 'failed', claimed_until = NULL, last_error = 'menus.json has no wording for this template' WHERE id = \(id)")
            self.logger.error("no wording for an outbox template", metadata: ["template": .string(template), "outbox": .stringConvertible(id)])
            return .failed
        }
        await self.pace()
        do {
            let status = try await self.client.send(to: "+" + recipient, message: text)
            if status.accepted {
                await self.record(
                    id,
                    """
                    UPDATE outbox SET status = 'sent', sent_at = now(), claimed_until = NULL, provider_message_id = \(status.messageID),
                        provider_status = \(status.status), last_error = NULL
                    WHERE id = \(id)
                    """
                )
                return .sent
            }
            let reason = "\(status.statusCode) \(status.status)"
            return await status.transient ? self.retry(id, attempts: attempts, reason: reason) : self.fail(id, reason: reason)
        } catch {
            return await error.transient ? self.retry(id, attempts: attempts, reason: error.description) : self.fail(id, reason: error.description)
        }
    }

    private func retry(_ id: Int64, attempts: Int, reason: String) async -> Outcome {
        guard attempts < self.settings.maxAttempts else { return await self.fail(id, reason: "gave up after \(attempts) attempts: \(reason)") }
        let delay = Self.backoff(attempt: attempts, base: self.settings.retryBase)
        let milliseconds = Int(delay.components.seconds) * 1000 + Int(delay.components.attoseconds / 1_000_000_000_000_000)
        await self.record(
            id,
            """
            UPDATE outbox SET claimed_until = NULL, last_error = \(reason),
                next_attempt_at = now() + make_interval(secs => \(Double(milliseconds) / 1000))
            WHERE id = \(id)
            """
        )
        self.logger.notice("SMS will be retried", metadata: ["outbox": .stringConvertible(id), "attempt": .stringConvertible(attempts), "reason": .string(reason)])
        return .retrying
    }

    private func fail(_ id: Int64, reason: String) async -> Outcome {
        await self.record(id, "UPDATE outbox SET status = 'failed', claimed_until = NULL, last_error = \(reason) WHERE id = \(id)")
        self.logger.warning("SMS failed for good", metadata: ["outbox": .stringConvertible(id), "reason": .string(reason)])
        return .failed
    }

    private func record(_ id: Int64, _ query: PostgresQuery) async {
        do {
            try await self.postgres.query(query)
        } catch {
            // The claim expires and the row is tried again: at least once, never lost.
            self.logger.error("outbox update failed", metadata: ["outbox": .stringConvertible(id), "error": .string(safeDescription(of: error))])
        }
    }

    /// `base * 2^(attempt - 1)`, at most an hour, scattered by ±25 % so that retries of many rows
    /// do not arrive together.
    static func backoff(attempt: Int, base: Duration) -> Duration {
        let seconds = Double(base.components.seconds) + Double(base.components.attoseconds) / 1e18
        let raw = min(3600, seconds * pow(2, Double(max(0, attempt - 1))))
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
        if let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] {
            for (key, value) in object {
                switch value {
                case let text as String: params[key] = text
                case let number as NSNumber: params[key] = number.stringValue
                default: break
                }
            }
        }
        if let key = params["key"] { params["reference"] = WalletActions.reference(key) }
        let language = self.graph.languages.contains(language) ? language : self.graph.defaultLanguage
        return self.graph.notification(template, language: language, params: params)
    }
}
