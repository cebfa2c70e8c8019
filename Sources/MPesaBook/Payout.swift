import Wallet
import Basics
import Foundation
import Postgres

/// A withdrawal to M-Pesa (B2C): its id is our OriginatorConversationID.
public struct Payout: Sendable, Hashable {
    /// Reserved (the hold placed), sent (Daraja took the request), unknown (an answer was lost),
    /// then paid or failed (final); needs review when the reconciler gave up asking.
    public enum Status: String, Sendable {
        case reserved, sent, unknown, paid, failed
        case needsReview = "needs_review"
    }

    public let id: String
    /// The customer's number; nil once they were erased (a settled payout holds no number of its
    /// own: migration 0021).
    public let msisdn: MSISDN?
    public let amount: Amount
    public let status: Status
    /// Set by a settlement that made the payout final just now (not when it found it final
    /// already): what counts the money once (`wallet_money_total`).
    public var settledNow = false
}
