import Wallet
import Foundation
import Postgres

/// A Daraja Transaction Status query as the wallet keeps it (`mpesa_status_queries`, migration
/// 0013): the id we chose at random, what it asks about, and the ConversationID Daraja's
/// acknowledgement named. An answer is the answer only when it names both ids.
public struct StatusQuery: Sendable, Hashable {
    /// What a query asks about.
    public enum Subject: String, Sendable {
        /// A paybill (C2B) payment, by its TransID.
        case c2b
        /// A payout (B2C), by its id (our OriginatorConversationID).
        case payout
    }

    public let id: String
    public let subject: Subject
    /// The TransID or the payout's id.
    public let reference: String
    /// Daraja's, once it acknowledged the query; nil before.
    public let conversationID: String?
    /// The OriginatorConversationID the acknowledgement named: ours when Daraja echoes it, else
    /// Safaricom's for the query. An answer may name either (with the ConversationID).
    public var acknowledgedOriginator: String? = nil

    /// Whether an answer naming `originator` and `conversation` is this query's: both must be the
    /// ones kept (an answer for a query never acknowledged cannot be told from a forgery).
    public func isAnswered(by originator: String, conversation: String) -> Bool {
        guard let known = self.conversationID, !conversation.isEmpty else { return false }
        return (originator == self.id || (originator == self.acknowledgedOriginator && !originator.isEmpty)) && conversation == known
    }
}

extension MPesaBook {
    /// Records a query before it is sent, so that its answer, however early, finds it. Queries are
    /// never deleted: each one's id and acknowledgement stay for the audit.
    public func recordStatusQuery(id: String, subject: StatusQuery.Subject, reference: String) async throws {
        try await self.postgres.query(
            "INSERT INTO mpesa_status_queries (id, subject, reference) VALUES (\(id), \(subject.rawValue), \(reference))"
        )
    }

    /// Notes the ConversationID Daraja's acknowledgement of the query named; written once (a
    /// second acknowledgement with another id changes nothing and says so).
    @discardableResult
    public func acknowledgeStatusQuery(id: String, conversationID: String, originator: String? = nil) async throws -> Bool {
        try await !self.postgres.query(
            """
            UPDATE mpesa_status_queries SET conversation_id = \(conversationID), acknowledged_originator = \(originator), acknowledged_at = now()
            WHERE id = \(id) AND conversation_id IS NULL RETURNING id
            """
        ).isEmpty
    }

    /// The query an answer names by our id, if we sent one under it; else (Daraja may answer
    /// under the OriginatorConversationID it gave the query) the query its acknowledgement named
    /// with that ConversationID and that originator.
    public func statusQuery(id: String, conversationID: String? = nil) async throws -> StatusQuery? {
        try await self.postgres.query(
            """
            SELECT id, subject, reference, conversation_id, acknowledged_originator FROM mpesa_status_queries
            WHERE id = \(id) OR (conversation_id = \(conversationID) AND acknowledged_originator = \(id))
            ORDER BY id = \(id) DESC LIMIT 1
            """
        ).single().map { row in
            let (id, subject, reference, conversation, originator) = try row.decode((String, String, String, String?, String?).self)
            var query = StatusQuery(id: id, subject: try Self.status(subject), reference: reference, conversationID: conversation)
            query.acknowledgedOriginator = originator
            return query
        }
    }

    /// Keeps an authentic answer with its query; the first one stays (a repeat returns false).
    @discardableResult
    public func recordStatusAnswer(id: String, raw: String) async throws -> Bool {
        // The names in it sealed for the customer of the payment the query was about.
        let asked = try await self.postgres.query("SELECT subject, reference FROM mpesa_status_queries WHERE id = \(id)").single()?
            .decode((String, String).self)
        let owner: PayloadOwner = asked.map { $0.0 == "payout" ? .payout($0.1) : .paybill($0.1) } ?? .nobody
        let raw = try await self.sealingNames(raw, reference: id, owner: owner)
        return try await !self.postgres.query(
            "UPDATE mpesa_status_queries SET answer = \(raw)::jsonb, answered_at = now() WHERE id = \(id) AND answer IS NULL RETURNING id"
        ).isEmpty
    }

    /// How many queries were sent about `reference`, acknowledged or not (for the tests and the desk).
    public func statusQueries(subject: StatusQuery.Subject, reference: String) async throws -> [StatusQuery] {
        try await self.postgres.query(
            """
            SELECT id, subject, reference, conversation_id FROM mpesa_status_queries
            WHERE subject = \(subject.rawValue) AND reference = \(reference) ORDER BY asked_at, id
            """
        ).map { row in
            let (id, subject, reference, conversation) = try row.decode((String, String, String, String?).self)
            return StatusQuery(id: id, subject: try Self.status(subject), reference: reference, conversationID: conversation)
        }
    }

    /// Keeps a report for review unless one of the same kind, reference and reason is already
    /// kept: a repeated callback leaves one row, not one per copy.
    public func keepForReviewOnce(
        kind: String, reference: String, reason: String, body: String, depositID: Int64? = nil, payoutID: String? = nil,
        earlierResult: String? = nil, newResult: String? = nil
    ) async throws {
        let body = try await self.sealingNames(
            body, reference: reference, owner: .review(kind: kind, reference: reference, depositID: depositID, payoutID: payoutID))
        try await self.postgres.transaction(maxAttempts: 5) { tx in
            // Concurrent copies of one callback wait for each other here.
            try await tx.query("SELECT pg_advisory_xact_lock(hashtextextended(\(kind + ":" + reference + ":" + reason), 26))")
            try await tx.query(
                """
                INSERT INTO mpesa_review (kind, reference, reason, body, deposit_id, payout_id, earlier_result, new_result)
                SELECT \(kind), \(reference), \(reason), \(body)::jsonb, \(depositID), \(payoutID), \(earlierResult), \(newResult)
                WHERE NOT EXISTS (SELECT 1 FROM mpesa_review WHERE kind = \(kind) AND reference = \(reference) AND reason = \(reason))
                """
            )
        }
    }
}
