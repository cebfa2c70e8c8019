import Wallet
import Basics
import Foundation
import Postgres

/// A payout with the pair Daraja's acknowledgement of its B2C request named (migration 0013): a
/// result callback is the payout's only when it names the same ConversationID.
public struct PayoutAcknowledgement: Sendable, Hashable {
    public let payout: Payout
    /// Nil while no acknowledgement was kept (its answer was lost, or Daraja refused a re-send as
    /// a duplicate): a result for such a payout cannot be checked and settles nothing by itself.
    public let conversationID: String?
    /// As the acknowledgement echoed it (ours, the payout's id).
    public let originatorConversationID: String?

    /// Whether a result naming `conversation` names the acknowledged pair (its OriginatorConversationID
    /// already found this payout).
    public func isNamed(by conversation: String) -> Bool {
        guard let known = self.conversationID else { return false }
        return conversation == known
    }
}

extension MPesaBook {
    /// The payout a B2C result names by its OriginatorConversationID (our id, or the one the
    /// acknowledgement echoed), with the acknowledged pair.
    public func payoutAcknowledgement(originator: String) async throws -> PayoutAcknowledgement? {
        try await self.postgres.query(
            """
            SELECT id, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = payouts.customer_id)), amount, status, conversation_id, originator_conversation_id FROM payouts
            WHERE id = \(originator) OR originator_conversation_id = \(originator) ORDER BY id = \(originator) DESC LIMIT 1
            """
        ).single().map { row in
            let (id, msisdn, cents, status, conversation, originator) = try row.decode((String, String?, Int64, String, String?, String?).self)
            let payout = Payout(id: id, msisdn: msisdn.flatMap { MSISDN($0) }, amount: Amount(cents: cents), status: try Self.status(status))
            return PayoutAcknowledgement(payout: payout, conversationID: conversation, originatorConversationID: originator)
        }
    }

    /// A result callback for an open payout that it cannot settle by itself (a failure, which only
    /// a Transaction Status answer may confirm, or any result for a payout whose acknowledgement was
    /// never kept): the hold stays, a payout Daraja took (`sent`, `unknown`) becomes `unknown` and
    /// is due for a status query now, its first such body kept. A `reserved` one is left to be sent
    /// again under the same id (a duplicate is refused), one in `needs_review` to its person. False
    /// when nothing changed.
    @discardableResult
    public func holdForStatus(_ id: String, raw: String) async throws -> Bool {
        let raw = try await self.sealingNames(raw, reference: id, owner: .payout(id))
        return try await !self.postgres.query(
            """
            UPDATE payouts SET status = 'unknown', raw_result = COALESCE(raw_result, \(raw)::jsonb), next_check_at = now(), updated_at = now()
            WHERE id = \(id) AND status IN ('sent', 'unknown') RETURNING id
            """
        ).isEmpty
    }
}
