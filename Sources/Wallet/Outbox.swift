import Basics
import Foundation
import Postgres

/// The outbox table, and the only code that touches it: every message the gateway owes a
/// customer is a row here, written in the same transaction as what it reports and sent
/// afterwards by the sender (at least once; a row is claimed under a token so two senders never
/// send it together).
public struct Outbox: Sendable {
    let postgres: PostgresClient
    /// Seals worded texts when queued and opens them to send (``PersonalData``).
    let personalData: PersonalData?

    public init(postgres: PostgresClient, personalData: PersonalData? = nil) {
        self.postgres = postgres
        self.personalData = personalData
    }

    /// A row's life: waiting to go, accepted by the provider, or given up on.
    public enum Status: String, Sendable {
        case pending, sent, failed
    }

    /// A message a sender has claimed: its row, its words (a template and parameters, or a text
    /// already worded) and the token the claim was made under.
    public struct Claimed: Sendable {
        public let id: Int64
        public let token: String
        public let recipient: MSISDN
        public let language: String
        public let template: String
        /// The template's parameters as JSON text.
        public let params: String
        /// The text when it was worded when queued (replies, operators' messages) before texts
        /// were sealed; ``sealedMessage`` since.
        public let message: String?
        /// The worded text sealed for ``subject`` at its de-duplication key.
        public let sealedMessage: Data?
        public let subject: UUID?
        public let dedupeKey: String
        /// Attempts so far, this one included.
        public let attempts: Int
    }

    /// A row as `ussd-gateway sms outbox` lists it.
    public struct Entry: Sendable {
        public let id: Int64
        public let status: Status
        public let attempts: Int
        public let recipient: String
        public let template: String
        public let lastError: String?
        public let nextAttemptAt: Date?
    }

    // MARK: Writing messages

    /// Queues a template notice in the caller's transaction, once per `dedupe` key, in the
    /// customer's language (nothing when the number has no wallet).
    static func queue(_ tx: PostgresConnection, notice template: String, to msisdn: MSISDN, params: [String: String], dedupe: String) async throws {
        let json = JSONValue.object(params.mapValues(JSONValue.string)).serialized
        try await tx.query(
            """
            INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
            SELECT 'sms', \(msisdn.value), c.language, \(template), \(json)::jsonb, \(dedupe) FROM customers c WHERE c.msisdn = \(msisdn.value)
            ON CONFLICT (dedupe_key) DO NOTHING
            """
        )
    }

    /// A worded text sealed for the outbox: for `subject` (the recipient's, or the month's for a
    /// number with no wallet), bound to the row's de-duplication key.
    public struct SealedText: Sendable {
        public let sealed: Data
        public let subject: UUID
        public let dedupe: String
    }

    /// Seals `text` for the row `dedupe` to `msisdn` (before the transaction that queues it).
    public func seal(_ text: String, to msisdn: MSISDN, dedupe: String) async throws -> SealedText {
        guard let personalData = self.personalData else {
            throw PersonalDataError.keys("this outbox has no personal-data keys: worded texts cannot be sealed")
        }
        let customer = try await self.postgres.query("SELECT subject::text FROM customers WHERE msisdn = \(msisdn.value) AND erased_at IS NULL").single()
        let known = try customer.flatMap { UUID(uuidString: try $0.decode(String.self, column: 0)) }
        // Decided once: a month that ends meanwhile must not part the key from the row.
        let subject = known ?? PersonalData.periodSubject(Date())
        let sealed = try await personalData.seal(text, for: subject, purpose: known == nil ? .period : .customer, at: .outboxMessage(dedupe))
        return SealedText(sealed: sealed, subject: subject, dedupe: dedupe)
    }

    /// Queues a text already worded (a reply to a command) and sealed (``seal(_:to:dedupe:)``) in
    /// the caller's transaction, once per its de-duplication key.
    public static func queue(_ tx: PostgresConnection, text: SealedText, to msisdn: MSISDN, language: String, template: String) async throws {
        try await tx.query(
            """
            INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key, message_sealed, subject)
            VALUES ('sms', \(msisdn.value), \(language), \(template), '{}', \(text.dedupe), \(text.sealed), \(text.subject.uuidString)::uuid)
            ON CONFLICT (dedupe_key) DO NOTHING
            """
        )
    }

    /// Queues an operator's message; its outbox id. A member of staff's message is written to the
    /// audit trail in the same transaction (who, by the database's identity; why; the outbox row and
    /// the message's length, not its words, which stay in the outbox).
    public func queueOperatorMessage(_ text: String, to msisdn: MSISDN, by action: OperatorAction? = nil) async throws -> Int64 {
        let sealed = try await self.seal(text, to: msisdn, dedupe: "operator:" + UUID().uuidString)
        return try await self.postgres.transaction { tx in
            let id = try await tx.query(
                """
                INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key, message_sealed, subject)
                VALUES ('sms', \(msisdn.value), 'en', 'operator', '{}', \(sealed.dedupe), \(sealed.sealed), \(sealed.subject.uuidString)::uuid)
                RETURNING id
                """
            ).single()!.decode(Int64.self, column: 0)
            if let action {
                try await Wallet.audit(
                    tx, action, "sms.sent", msisdn: msisdn, before: nil, after: ["outbox": String(id), "characters": String(text.count)])
            }
            return id
        }
    }

    // MARK: Sending

    /// Claims up to `limit` due messages for a minute, under a token of this pass.
    public func claimDue(limit: Int) async throws -> [Claimed] {
        let token = UUID().uuidString
        return try await self.postgres.query(
            """
            UPDATE outbox o SET claimed_until = now() + interval '60 seconds', claim_token = \(token), attempts = o.attempts + 1
            WHERE o.id IN (
                SELECT id FROM outbox WHERE kind = 'sms' AND status = 'pending' AND next_attempt_at <= now()
                    AND (claimed_until IS NULL OR claimed_until < now())
                ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING o.id, o.recipient, o.language, o.template, o.params::text, o.message, o.attempts, o.message_sealed, o.subject::text, o.dedupe_key
            """
        ).map { row in
            let (id, recipient, language, template, params, message, attempts) = try row.decode((Int64, String, String, String, String, String?, Int32).self)
            return Claimed(
                id: id, token: token, recipient: MSISDN(recipient)!, language: language, template: template, params: params, message: message,
                sealedMessage: try row.decode(Data?.self, column: 7), subject: try row.decode(String?.self, column: 8).flatMap(UUID.init(uuidString:)),
                dedupeKey: try row.decode(String.self, column: 9), attempts: Int(attempts)
            )
        }
    }

    /// A claimed message's worded text, opened when sealed; nil when it has none (a template's) or
    /// its subject was erased meanwhile (``sealedMessage`` set but unreadable).
    public func text(of claimed: Claimed) async throws -> (text: String?, erased: Bool) {
        if let message = claimed.message { return (message, false) }
        guard let sealed = claimed.sealedMessage, let subject = claimed.subject else { return (nil, false) }
        guard let personalData = self.personalData else {
            throw PersonalDataError.keys("this outbox has no personal-data keys: a sealed text cannot be opened")
        }
        let text = try await personalData.open(sealed, for: subject, at: .outboxMessage(claimed.dedupeKey))
        return (text, text == nil)
    }

    /// Renews a claim right before its message goes; false when another sender holds the row now
    /// or it is no longer pending (then it is left alone).
    public func renew(_ claimed: Claimed) async throws -> Bool {
        try await !self.postgres.query(
            """
            UPDATE outbox SET claimed_until = now() + interval '60 seconds'
            WHERE id = \(claimed.id) AND claim_token = \(claimed.token) AND status = 'pending' RETURNING id
            """
        ).isEmpty
    }

    /// The provider accepted the message under `messageID`.
    public func markSent(_ claimed: Claimed, messageID: String?, providerStatus: String) async throws {
        try await self.postgres.query(
            """
            UPDATE outbox SET status = 'sent', sent_at = now(), claimed_until = NULL, provider_message_id = \(messageID),
                provider_status = \(providerStatus), last_error = NULL
            WHERE id = \(claimed.id) AND claim_token = \(claimed.token)
            """
        )
    }

    /// Leaves the message for another attempt after `delay`.
    public func retry(_ claimed: Claimed, after delay: Duration, reason: String) async throws {
        try await self.postgres.query(
            """
            UPDATE outbox SET claimed_until = NULL, last_error = \(reason), next_attempt_at = now() + make_interval(secs => \(delay.inSeconds))
            WHERE id = \(claimed.id) AND claim_token = \(claimed.token)
            """
        )
    }

    /// Gives up on the message for good.
    public func markFailed(_ claimed: Claimed, reason: String) async throws {
        try await self.postgres.query(
            "UPDATE outbox SET status = 'failed', claimed_until = NULL, last_error = \(reason) WHERE id = \(claimed.id) AND claim_token = \(claimed.token)"
        )
    }

    // MARK: Delivery

    /// Records a delivery report on the message the provider knows as `messageID`; a final status
    /// is not undone by a late in-progress one. False when no message of ours has that id.
    public func recordDelivery(messageID: String, status: String, failureReason: String?, delivered: Bool, final: Bool) async throws -> Bool {
        let rows = try await self.postgres.query(
            """
            UPDATE outbox SET delivery_status = \(status), failure_reason = COALESCE(\(failureReason), failure_reason),
                delivered_at = CASE WHEN \(delivered) THEN now() ELSE delivered_at END
            WHERE provider_message_id = \(messageID)
                AND (delivery_status IS NULL OR delivery_status NOT IN ('Success', 'Rejected', 'Failed', 'AbsentSubscriber', 'Expired') OR \(final))
            RETURNING id
            """
        )
        if !rows.isEmpty { return true }
        return try await !self.postgres.query("SELECT 1 FROM outbox WHERE provider_message_id = \(messageID)").isEmpty
    }

    /// Whether a message is being sent right now (claimed, its provider's id not yet recorded): a
    /// delivery report naming an unknown id may be for it.
    public func sendingNow() async throws -> Bool {
        try await !self.postgres.query("SELECT 1 FROM outbox WHERE status = 'pending' AND claimed_until > now() LIMIT 1").isEmpty
    }

    // MARK: Support

    /// Pending and failed messages, oldest first.
    public func undelivered(limit: Int) async throws -> [Entry] {
        try await self.postgres.query(
            """
            SELECT id, status, attempts, recipient, template, last_error, CASE WHEN status = 'pending' THEN next_attempt_at END
            FROM outbox WHERE status IN ('pending', 'failed') ORDER BY id LIMIT \(limit)
            """
        ).map { row in
            let (id, status, attempts, recipient, template, error, next) = try row.decode((Int64, String, Int32, String, String, String?, Date?).self)
            return Entry(
                id: id, status: Status(rawValue: status) ?? .pending, attempts: Int(attempts), recipient: recipient, template: template, lastError: error,
                nextAttemptAt: next
            )
        }
    }
}
