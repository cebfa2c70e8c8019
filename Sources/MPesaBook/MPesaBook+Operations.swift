import Basics
import Foundation
import Postgres
import Wallet

/// What an operator watches between the ledger and M-Pesa: the SMS outbox, the payouts and deposits
/// still in flight, the review queue and the float, read in three queries over the partial
/// indexes that keep each of them small (`outbox_due`, `payouts_open_check`,
/// `deposits_pending_check`, `mpesa_review_open`).
public struct OperationsSnapshot: Sendable, Hashable {
    public var outboxBacklog: Int64 = 0
    /// Seconds; 0 when nothing waits.
    public var outboxOldestAge: Double = 0
    public var payoutsInFlight: Int64 = 0
    public var payoutsInFlightAmount = Amount(cents: 0)
    public var payoutsOldestAge: Double = 0
    public var depositsAwaiting: Int64 = 0
    public var depositsOldestAge: Double = 0
    /// Open review items by kind: how many, and the oldest's age in seconds.
    public var review: [String: (count: Int64, oldestAge: Double)] = [:]
    public var float: MPesaBook.FloatReading?

    public init() {}

    public static func == (a: Self, b: Self) -> Bool {
        a.outboxBacklog == b.outboxBacklog && a.payoutsInFlight == b.payoutsInFlight && a.payoutsInFlightAmount == b.payoutsInFlightAmount
            && a.depositsAwaiting == b.depositsAwaiting && a.float == b.float
            && a.review.mapValues(\.count) == b.review.mapValues(\.count)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.outboxBacklog)
        hasher.combine(self.payoutsInFlight)
        hasher.combine(self.depositsAwaiting)
    }
}

extension MPesaBook {
    /// The review queue's kinds (the `mpesa_review_kind_check` of migration 0013): each is
    /// reported, at 0 when none waits, so an alert sees a series fall back to nothing waiting.
    public static let reviewKinds = ["stk", "b2c_result", "b2c_timeout", "stk_query", "payout", "c2b"]

    public func operationsSnapshot() async throws -> OperationsSnapshot {
        var snapshot = OperationsSnapshot()
        let row = try await self.postgres.query(
            """
            SELECT
                (SELECT count(*) FROM outbox WHERE status = 'pending'),
                (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 FROM outbox WHERE status = 'pending'),
                (SELECT count(*) FROM payouts WHERE status IN ('reserved', 'sent', 'unknown')),
                (SELECT COALESCE(sum(amount), 0)::bigint FROM payouts WHERE status IN ('reserved', 'sent', 'unknown')),
                (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 FROM payouts WHERE status IN ('reserved', 'sent', 'unknown')),
                (SELECT count(*) FROM deposits WHERE status = 'pending'),
                (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 FROM deposits WHERE status = 'pending')
            """
        ).single()
        if let row {
            let values = try row.decode((Int64, Double, Int64, Int64, Double, Int64, Double).self)
            snapshot.outboxBacklog = values.0
            snapshot.outboxOldestAge = values.1
            snapshot.payoutsInFlight = values.2
            snapshot.payoutsInFlightAmount = Amount(cents: values.3)
            snapshot.payoutsOldestAge = values.4
            snapshot.depositsAwaiting = values.5
            snapshot.depositsOldestAge = values.6
        }
        for kind in Self.reviewKinds { snapshot.review[kind] = (0, 0) }
        for row in try await self.postgres.query(
            "SELECT kind, count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0)::float8 FROM mpesa_review WHERE resolution IS NULL GROUP BY kind"
        ) {
            let (kind, count, oldest) = try row.decode((String, Int64, Double).self)
            snapshot.review[kind] = (count, oldest)
        }
        snapshot.float = try await self.latestFloat()
        return snapshot
    }
}
