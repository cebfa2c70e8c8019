import Wallet
import Basics
import Foundation
import Postgres

/// Provider reports kept for a person to review.
extension MPesaBook {
    /// Keeps a provider report for a human to review; the provider is still answered 200. A
    /// conflict names the deposit or payout it concerns and both results.
    public func keepForReview(
        kind: String, reference: String, reason: String, body: String, depositID: Int64? = nil, payoutID: String? = nil,
        earlierResult: String? = nil, newResult: String? = nil
    ) async throws {
        let body = try await self.sealingNames(
            body, reference: reference, owner: .review(kind: kind, reference: reference, depositID: depositID, payoutID: payoutID))
        try await self.postgres.query(
            """
            INSERT INTO mpesa_review (kind, reference, reason, body, deposit_id, payout_id, earlier_result, new_result)
            VALUES (\(kind), \(reference), \(reason), \(body)::jsonb, \(depositID), \(payoutID), \(earlierResult), \(newResult))
            """
        )
    }

    /// Reports kept for review, newest first: the open ones, or all with how each was resolved.
    public func reviewItems(limit: Int = 50, openOnly: Bool = true) async throws -> [ReviewItem] {
        try await self.postgres.query(
            """
            SELECT id, kind, reference, reason, deposit_id, payout_id, earlier_result, new_result, received_at, resolution, resolved_by, resolution_note
            FROM mpesa_review WHERE \(unescaped: openOnly ? "resolution IS NULL" : "true") ORDER BY id DESC LIMIT \(max(1, min(limit, 10_000)))
            """
        ).map { row in
            let (id, kind, reference, reason, deposit, payout, earlier, new, at, resolution, resolvedBy, note) = try row.decode(
                (Int64, String, String, String, Int64?, String?, String?, String?, Date, String?, String?, String?).self
            )
            return ReviewItem(
                id: id, kind: kind, reference: reference, reason: reason, depositID: deposit, payoutID: payout, earlierResult: earlier,
                newResult: new, receivedAt: at, resolution: resolution, resolvedBy: resolvedBy, resolutionNote: note
            )
        }
    }
}
