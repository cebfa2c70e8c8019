import Wallet
import Foundation
import Postgres

/// A provider report kept for a person: a callback that matched nothing of ours or disagreed with
/// it, a final result contradicting an earlier one (`reason` `conflict`), or a payout the
/// reconciler could not settle.
public struct ReviewItem: Sendable, Hashable {
    public let id: Int64
    /// `stk`, `b2c_result`, `b2c_timeout`, `stk_query`, `payout` or `c2b` (a paybill payment).
    public let kind: String
    /// The provider's reference (CheckoutRequestID, OriginatorConversationID) or our payout id.
    public let reference: String
    public let reason: String
    public let depositID: Int64?
    public let payoutID: String?
    /// For a conflict: what was known before, and what the new report says.
    public let earlierResult: String?
    public let newResult: String?
    public let receivedAt: Date
    /// Set once a person closed it (`mpesa resolve`): `credited`, `refunded` or `nothing`.
    public var resolution: String? = nil
    public var resolvedBy: String? = nil
    public var resolutionNote: String? = nil

    /// The reason every contradiction is kept under.
    public static let conflict = "conflict"
}
