import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Logging
import MPesa
import MPesaBook
import Wallet

/// Transaction Status: the queries that check what a callback claimed (a paybill confirmation, a
/// B2C failure, a payout whose result never came), and their answers.
///
/// Each query gets a random id (``StatusQueryID``) recorded before it leaves, and the ConversationID
/// of Daraja's acknowledgement recorded when it comes back. The answer arrives on the result URL,
/// which the callback token guards; anyone with the token could post one, so an answer counts only
/// when it names the acknowledged ConversationID and the query's OriginatorConversationID (ours, or
/// the one Safaricom's acknowledgement gave it instead). One that names a query but another
/// ConversationID is kept for review.
extension MPesaService {
    // MARK: Asking

    /// Asks Daraja about a paybill payment by its TransID (the paybill's initiator, the paybill as
    /// PartyA). A failure is logged: the reconciler asks again.
    @discardableResult
    public func verifyPaybill(_ transID: String) async -> Bool {
        await self.ask(.paybill(transID: transID), subject: .c2b, reference: transID)
    }

    /// Asks Daraja about a payout by its id (the B2C initiator and shortcode).
    @discardableResult
    func askPayoutStatus(_ payout: String) async -> Bool {
        await self.ask(.payout(originalConversationID: payout), subject: .payout, reference: payout)
    }

    /// Queues ``verifyPaybill(_:)`` after the current request, once per process at a time.
    func verifyPaybillLater(_ transID: String) {
        guard self.inFlight.claim("status:c2b:" + transID) else { return }
        self.later {
            await self.verifyPaybill(transID)
            self.inFlight.release("status:c2b:" + transID)
        }
    }

    /// Queues ``askPayoutStatus(_:)`` after the current request, once per process at a time.
    func askPayoutStatusLater(_ payout: String) {
        guard self.inFlight.claim("status:payout:" + payout) else { return }
        self.later {
            await self.askPayoutStatus(payout)
            self.inFlight.release("status:payout:" + payout)
        }
    }

    /// Whether Daraja acknowledged the query.
    private func ask(_ what: DarajaClient.StatusSubject, subject: StatusQuery.Subject, reference: String) async -> Bool {
        let queryID = StatusQueryID.random()
        var metadata: Logger.Metadata = ["subject": .string(subject.rawValue), "reference": .string(reference)]
        do {
            try await self.book.recordStatusQuery(id: queryID, subject: subject, reference: reference)
            let acknowledged = try await self.daraja.transactionStatus(what, queryID: queryID)
            try await self.book.acknowledgeStatusQuery(
                id: queryID, conversationID: acknowledged.conversationID, originator: acknowledged.originatorConversationID)
            if acknowledged.originatorConversationID != queryID {
                // Safaricom gave the query an id of its own: the answer counts when it names that id
                // with the acknowledged ConversationID (both kept), as one naming ours would.
                self.logger.notice("Transaction Status acknowledgement names Safaricom's own OriginatorConversationID; kept with the query", metadata: metadata)
            }
            self.counter("mpesa_status_queries_total", "accepted")
            self.logger.info("Transaction Status asked", metadata: metadata)
            return true
        } catch {
            self.counter("mpesa_status_queries_total", "failed")
            metadata["error"] = .string(safeDescription(of: error))
            self.logger.warning("Transaction Status not asked; the reconciler asks again", metadata: metadata)
            return false
        }
    }

    // MARK: Answers

    /// An answer (a `Result` on the result URL) naming one of our queries by its id. It counts only
    /// when it also names the ConversationID the query's acknowledgement gave.
    func statusAnswer(_ result: B2CResult, query: StatusQuery) async throws -> CallbackOutcome {
        guard let expected = query.conversationID else {
            // Its acknowledgement has not been recorded (yet): it cannot be told from a forgery.
            self.logger.notice("status answer before its acknowledgement was recorded; not trusted, asked again later", metadata: ["query": .string(query.id)])
            return .ignored
        }
        guard query.isAnswered(by: result.originatorConversationID, conversation: result.conversationID) else {
            try await self.book.keepForReviewOnce(
                kind: "b2c_result", reference: result.originatorConversationID,
                reason: "status answer naming another ConversationID than its query's acknowledgement: not trusted", body: result.raw,
                payoutID: query.subject == .payout ? query.reference : nil,
                earlierResult: "query about \(query.subject.rawValue) \(query.reference) acknowledged as \(expected)",
                newResult: "answer naming \(result.conversationID.isEmpty ? "no ConversationID" : result.conversationID)"
            )
            self.metrics.count("mpesa_status_answers_total", [("subject", query.subject.rawValue), ("outcome", "forged")])
            self.logger.error("status answer whose ConversationID is not its query's; kept for review", metadata: ["query": .string(query.id)])
            return .review
        }
        // Read before it is kept: a malformed answer is refused (400) and kept nowhere.
        let answer: TransactionStatusAnswer? = result.succeeded ? try TransactionStatusAnswer(result) : nil
        try await self.book.recordStatusAnswer(id: query.id, raw: result.raw)
        let outcome: CallbackOutcome
        switch query.subject {
        case .c2b: outcome = try await self.paybillAnswer(result, answer, transID: query.reference)
        case .payout: outcome = try await self.payoutAnswer(result, answer, payoutID: query.reference, queryID: query.id)
        }
        self.metrics.count("mpesa_status_answers_total", [("subject", query.subject.rawValue), ("outcome", outcome.rawValue)])
        return outcome
    }

    /// Settles a paybill payment on Safaricom's word: credited (or to suspense) when it confirms the
    /// confirmation, refused and kept for review as a conflict when it does not, left to be asked
    /// again when it says nothing yet.
    private func paybillAnswer(_ result: B2CResult, _ answer: TransactionStatusAnswer?, transID: String) async throws -> CallbackOutcome {
        let paybill = self.daraja.configuration.paybillShortcode
        guard let payment = try await self.book.paybillPayment(transID: transID) else {
            self.logger.error("status answer about a paybill payment never confirmed", metadata: ["trans_id": .string(transID)])
            return .ignored
        }
        let metadata: Logger.Metadata = ["trans_id": .string(transID)]
        switch PaybillVerdict.decide(result, answer, payment: payment, paybill: paybill) {
        case .confirmed:
            switch try await self.book.creditVerifiedPaybill(transID: transID, maximum: self.paybill.maxAmount, answer: result.raw) {
            case .credited:
                self.metrics.count("mpesa_paybill_total", [("kind", "verified"), ("outcome", "credited")])
                self.logger.info("paybill payment confirmed by Safaricom; credited", metadata: metadata)
                self.moneyMoved(.in, payment.amount)
                return .credited
            case .suspense(let reason):
                self.metrics.count("mpesa_paybill_total", [("kind", "verified"), ("outcome", "suspense")])
                self.logger.error("paybill payment confirmed by Safaricom, held in suspense for review", metadata: metadata.merging(["reason": .string(reason)]) { $1 })
                return .review
            case .stkPayment:
                self.metrics.count("mpesa_paybill_total", [("kind", "verified"), ("outcome", "stk")])
                self.logger.info("paybill confirmation of our own STK push: its deposit is credited by the STK callback or query", metadata: metadata)
                return .ignored
            case .alreadySettled, .unknown:
                return .alreadyFinal
            }
        case .refused(let says):
            let confirmation = "paybill confirmation: KES \(payment.amount) to paybill \(payment.shortcode ?? paybill), receipt \(transID)"
            guard try await self.book.refusePaybill(transID: transID, confirmation: confirmation, says: "transaction status: " + says) else {
                if payment.state == "credited" || payment.state == "suspense" {
                    _ = try await self.conflict(kind: "c2b", reference: transID, body: result.raw, earlier: "paybill payment \(payment.state)", new: "transaction status: " + says)
                    return .conflict
                }
                return .alreadyFinal
            }
            self.metrics.count("mpesa_conflicts_total", [("kind", "c2b")])
            self.metrics.count("mpesa_paybill_total", [("kind", "verified"), ("outcome", "refused")])
            self.logger.error("paybill confirmation not confirmed by Safaricom; nothing credited, kept for review", metadata: metadata.merging(["says": .string(says)]) { $1 })
            return .conflict
        case .undecided(let says):
            self.logger.notice("paybill payment not decided yet; asked again later", metadata: metadata.merging(["says": .string(says)]) { $1 })
            return .unknownOutcome
        }
    }

    /// Settles a payout on Safaricom's word: paid when it says Completed (and the amount, when
    /// given, is the payout's), refunded when it says Failed, Cancelled, Expired or Declined;
    /// anything else leaves the hold for the next check.
    private func payoutAnswer(_ result: B2CResult, _ answer: TransactionStatusAnswer?, payoutID: String, queryID: String) async throws -> CallbackOutcome {
        guard let payout = try await self.book.payout(id: payoutID) else { return .ignored }
        guard let answer, let status = answer.status else {
            self.logger.notice("transaction status query answered without a status", metadata: ["payout": .string(payout.id), "code": .string(result.resultCodeText)])
            return .unknownOutcome
        }
        if let cents = answer.cents, cents != payout.amount.cents {
            return try await self.conflict(
                kind: "b2c_result", reference: queryID, body: result.raw, payout: payout.id, earlier: "payout of KES \(payout.amount)",
                new: "transaction status: \(status), KES \(Amount(cents: cents))"
            )
        }
        if status == "completed" {
            // The receipt column is unique: without a receipt, the query's own id stands in.
            let receipt = answer.receipt ?? "status:" + queryID
            return try await self.settle(payout, paid: true, kind: "b2c_result", reference: queryID, body: result.raw, says: "transaction status: completed, receipt \(receipt)") {
                try await self.book.completeWithdrawal(payout.id, providerTransactionID: receipt, raw: result.raw)
            }
        }
        if TransactionStatusAnswer.notPaid.contains(status) {
            return try await self.settle(payout, paid: false, kind: "b2c_result", reference: queryID, body: result.raw, says: "transaction status: \(status)") {
                try await self.book.failWithdrawal(payout.id, code: result.resultCode, text: "transaction status: \(status)", raw: result.raw)
            }
        }
        return .unknownOutcome
    }
}
