import Basics
import Foundation
import Postgres
import Wallet

/// The float: Daraja's Account Balance answers about the B2C shortcode (migration 0022).
///
/// One query per interval for the whole deployment (``claimBalanceQuery(interval:now:)``), its
/// acknowledgement kept, and an answer taken once and only when it names what the acknowledgement
/// named, as Transaction Status answers are.
extension MPesaBook {
    /// One account of an answer: `Utility Account|KES|8959269.60|...`.
    public struct FloatAccount: Sendable, Hashable {
        public let account: String
        public let currency: String
        public let available: Amount

        public init(account: String, currency: String, available: Amount) {
            (self.account, self.currency, self.available) = (account, currency, available)
        }
    }

    /// The latest reading of the B2C utility account: what payouts draw on.
    public struct FloatReading: Sendable, Hashable {
        public let currency: String
        public let available: Amount
        public let reportedAt: Date
    }

    /// What became of an answer.
    public enum BalanceAnswer: Sendable, Equatable {
        /// Kept, with the accounts it reported (none for a failure).
        case kept(accounts: Int)
        /// Its query had been answered already: a repeat changes nothing.
        case repeated
        /// It names no acknowledged query of ours: not trusted, nothing kept.
        case unknown
    }

    /// Takes this interval's slot; the query's id when this replica should ask, nil when another
    /// already did.
    public func claimBalanceQuery(interval: Duration, now: Date = Date()) async throws -> Int64? {
        let seconds = max(1, interval.components.seconds)
        let slot = Int64(now.timeIntervalSince1970) / seconds
        return try await self.postgres.query(
            "INSERT INTO mpesa_balance_queries (slot) VALUES (\(slot)) ON CONFLICT (slot) DO NOTHING RETURNING id"
        ).single()?.decode(Int64.self, column: 0)
    }

    /// Notes Daraja's acknowledgement of the query, once.
    public func acknowledgeBalanceQuery(id: Int64, conversationID: String, originator: String) async throws {
        try await self.postgres.query(
            """
            UPDATE mpesa_balance_queries SET conversation_id = \(conversationID), originator_conversation_id = \(originator)
            WHERE id = \(id) AND conversation_id IS NULL
            """
        )
    }

    /// Keeps an answer naming `conversationID` and `originator` with the accounts it reported, in
    /// one statement: the query is marked answered and its accounts written together, or neither.
    public func recordBalanceAnswer(
        conversationID: String, originator: String, resultCode: String, resultText: String, accounts: [FloatAccount], reportedAt: Date
    ) async throws -> BalanceAnswer {
        let rows = JSONValue.array(
            accounts.map {
                .object(["account": .string($0.account), "currency": .string($0.currency), "available": .integer(Int64($0.available.cents))])
            }
        ).serialized
        let kept = try await self.postgres.query(
            """
            WITH answered AS (
                UPDATE mpesa_balance_queries SET answered_at = now(), result_code = \(resultCode), result_text = left(\(resultText), 500)
                WHERE conversation_id = \(conversationID) AND originator_conversation_id IS NOT DISTINCT FROM \(originator) AND answered_at IS NULL
                RETURNING id
            ), written AS (
                INSERT INTO mpesa_float (query_id, account, currency, available, reported_at)
                SELECT answered.id, a.account, a.currency, a.available, \(reportedAt)
                FROM answered, jsonb_to_recordset(\(rows)::jsonb) AS a(account TEXT, currency TEXT, available BIGINT)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM answered), (SELECT count(*) FROM written)
            """
        ).single()?.decode((Int64, Int64).self)
        if let kept, kept.0 == 1 { return .kept(accounts: Int(kept.1)) }
        let known = try await self.postgres.query(
            "SELECT 1 FROM mpesa_balance_queries WHERE conversation_id = \(conversationID) AND originator_conversation_id IS NOT DISTINCT FROM \(originator)"
        )
        return known.isEmpty ? .unknown : .repeated
    }

    /// The B2C utility account at its latest reading, if M-Pesa ever reported one: the answer to
    /// the latest query (never the latest time an answer claims, which is Daraja's to write).
    public func latestFloat() async throws -> FloatReading? {
        guard
            let row = try await self.postgres.query(
                "SELECT currency, available, reported_at FROM mpesa_float WHERE account = 'Utility Account' ORDER BY query_id DESC LIMIT 1"
            ).single()
        else { return nil }
        let (currency, cents, at) = try row.decode((String, Int64, Date).self)
        return FloatReading(currency: currency, available: Amount(cents: cents), reportedAt: at)
    }
}
