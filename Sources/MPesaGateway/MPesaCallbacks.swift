import Basics
import Foundation
import GatewayActions
import GatewayHTTP
import GatewayTelemetry
import Logging
import Metrics
import MPesa
import MPesaBook
import Wallet

extension MPesaService {
    /// What a callback did, for the log and the metrics.
    public enum CallbackOutcome: String, Sendable {
        case credited, paid, failed, unknownOutcome = "unknown", alreadyFinal = "already_final", review, conflict, ignored
        /// A payment for a push whose answer was lost, matched to its deposit and waiting for an STK
        /// Query to confirm it.
        case awaitingQuery = "awaiting_query"
        /// A claim (a B2C failure) waiting for a Transaction Status answer to confirm it.
        case awaitingStatus = "awaiting_status"
    }

    /// `POST /mpesa/stk/callback`: credits a paid deposit once, fails an unpaid one once; a
    /// callback for a deposit we do not know, or whose amount or phone disagree, is kept for
    /// review, and one that contradicts a final result is kept as a conflict.
    public func stkCallback(_ body: [UInt8]) async throws -> CallbackOutcome {
        let callback = try STKCallback(json: body)
        let checkout = callback.checkoutRequestID
        if let field = callback.outOfRange {
            try await self.book.keepForReview(kind: "stk", reference: checkout, reason: "\(field) out of range", body: callback.raw)
            return .review
        }
        guard let paid = callback.paid else { return try await self.unpaid(callback) }
        guard let shillings = paid.shillings, let amount = Amount(shillings: shillings) else {
            try await self.book.keepForReview(kind: "stk", reference: checkout, reason: "Amount outside 1 to 250,000 whole shillings", body: callback.raw)
            return .review
        }
        guard let phone = MSISDN(paid.phone) else {
            try await self.book.keepForReview(kind: "stk", reference: checkout, reason: "PhoneNumber is not a Kenyan MSISDN", body: callback.raw)
            return .review
        }
        do {
            let before = try await self.book.deposit(checkoutRequestID: checkout)?.status
            let completed = try await self.book.completeDeposit(checkoutRequestID: checkout, receipt: paid.receipt, amount: amount, phone: phone, raw: callback.raw)
            if completed.creditedNow { self.moneyMoved(.in, amount) }
            return before == .completed ? .alreadyFinal : .credited
        } catch ProviderRecordError.unknownDeposit {
            return try await self.adopt(callback, receipt: paid.receipt, amount: amount, phone: phone)
        } catch ProviderRecordError.awaitingQuery {
            return .awaitingQuery
        } catch ProviderRecordError.mismatch {
            try await self.book.keepForReview(kind: "stk", reference: checkout, reason: "amount or phone differ from the deposit", body: callback.raw)
            return .review
        } catch ProviderRecordError.conflict(let current) {
            let deposit = try await self.book.deposit(checkoutRequestID: checkout)
            return try await self.conflict(
                kind: "stk", reference: checkout, body: callback.raw, deposit: deposit?.id, earlier: current, new: "STK callback: paid, receipt \(paid.receipt)"
            )
        }
    }

    /// An STK callback that says not paid: fails its pending deposit once; after a credit it is a
    /// conflict, and for a deposit we do not know it is kept for review.
    func unpaid(_ callback: STKCallback) async throws -> CallbackOutcome {
        let checkout = callback.checkoutRequestID
        if try await self.book.failDeposit(.checkout(checkout), code: callback.resultCode, text: callback.resultDescription, raw: callback.raw) {
            return .failed
        }
        guard let deposit = try await self.book.deposit(checkoutRequestID: checkout) else {
            try await self.book.keepForReview(kind: "stk", reference: checkout, reason: "unknown CheckoutRequestID", body: callback.raw)
            return .review
        }
        if deposit.status == .completed {
            return try await self.conflict(
                kind: "stk", reference: checkout, body: callback.raw, deposit: deposit.id,
                earlier: "credited under receipt \(deposit.receipt ?? "-")", new: "STK callback: not paid (\(callback.resultCode))"
            )
        }
        return .alreadyFinal
    }

    /// Paid, but we never learnt this CheckoutRequestID: the push's answer was lost (or has not
    /// come yet). The one recent pending deposit of this phone and amount is it, but a callback is
    /// unsigned: the credit waits for an STK Query of that CheckoutRequestID.
    func adopt(_ callback: STKCallback, receipt: String, amount: Amount, phone: MSISDN) async throws -> CallbackOutcome {
        let checkout = callback.checkoutRequestID
        guard let deposit = try await self.book.adoptUnconfirmedDeposit(checkoutRequestID: checkout, phone: phone, amount: amount, receipt: receipt, raw: callback.raw) else {
            if let known = try await self.book.deposit(checkoutRequestID: checkout) {
                // A copy of this callback matched it meanwhile.
                return known.status == .completed ? .alreadyFinal : .awaitingQuery
            }
            try await self.book.keepForReview(kind: "stk", reference: checkout, reason: "unknown CheckoutRequestID", body: callback.raw)
            return .review
        }
        self.logger.notice("paid STK callback matched to a deposit whose push was never confirmed; querying", metadata: ["deposit": .stringConvertible(deposit.id)])
        self.later { await self.confirm(deposit, checkout: checkout, receipt: receipt) }
        return .awaitingQuery
    }

    /// Credits a deposit matched to a payment for a push whose answer was lost, once an STK Query
    /// says it was paid. A query that says otherwise contradicts the callback: both go to a person.
    /// Without an answer the deposit stays pending and the reconciler asks again.
    func confirm(_ deposit: Deposit, checkout: String, receipt: String) async {
        do {
            switch try await self.daraja.stkQuery(checkoutRequestID: checkout) {
            case .pending:
                self.logger.info("matched payment not confirmed yet; the reconciler asks again", metadata: ["deposit": .stringConvertible(deposit.id)])
            case .paid:
                // A deposit in flight holds its number (only a settled one, or an erased customer's, has none).
                guard let phone = deposit.msisdn else { throw WalletError.notRegistered }
                try await self.book.completeDeposit(checkoutRequestID: checkout, receipt: receipt, amount: deposit.amount, phone: phone, confirmedByQuery: true)
                self.logger.info("STK query confirmed a payment for a push whose answer was lost", metadata: ["deposit": .stringConvertible(deposit.id)])
            case .failed(let code, let text):
                _ = try await self.conflict(
                    kind: "stk_query", reference: checkout, body: "{}", deposit: deposit.id, earlier: "STK callback: paid, receipt \(receipt)",
                    new: "STK query: not paid (\(code) \(String(text.prefix(100))))"
                )
                try await self.book.failDeposit(.checkout(checkout), code: code, text: text)
            }
        } catch {
            self.logger.warning("STK query of a matched payment failed; the reconciler asks again", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(safeDescription(of: error))])
        }
    }

    /// A final result that contradicts an earlier final one: kept with both results for a person,
    /// logged at error and counted; nothing moves.
    func conflict(kind: String, reference: String, body: String, deposit: Int64? = nil, payout: String? = nil, earlier: String, new: String) async throws -> CallbackOutcome {
        try await self.book.keepForReview(
            kind: kind, reference: reference, reason: ReviewItem.conflict, body: body, depositID: deposit, payoutID: payout, earlierResult: earlier, newResult: new
        )
        self.metrics.count("mpesa_conflicts_total", [("kind", kind)])
        var metadata: Logger.Metadata = ["kind": .string(kind), "earlier": .string(earlier), "new": .string(new)]
        if let deposit { metadata["deposit"] = .stringConvertible(deposit) }
        if let payout { metadata["payout"] = .string(payout) }
        self.logger.error("M-Pesa reports disagree; kept for review", metadata: metadata)
        return .conflict
    }

    /// `POST /mpesa/b2c/result`: a Transaction Status answer (named by one of our queries' ids) or a
    /// payout's B2C result. A result counts only when it names the pair Daraja's acknowledgement of
    /// the B2C request named: one naming another ConversationID is kept for review and moves nothing.
    /// A success posts the hold, once. A failure releases nothing by itself: the payout waits, as an
    /// unknown one does, for a Transaction Status answer that says Failed, Cancelled, Expired or
    /// Declined (asked at once). A result for a payout whose acknowledgement was never kept cannot
    /// be checked and waits the same way. A result contradicting an earlier final one is a conflict.
    public func b2cResult(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        if let query = try await self.book.statusQuery(id: result.originatorConversationID, conversationID: result.conversationID) {
            return try await self.statusAnswer(result, query: query)
        }
        let raw = result.raw
        if let field = result.outOfRange, result.resultCodeName == nil {
            try await self.book.keepForReview(kind: "b2c_result", reference: result.originatorConversationID, reason: "\(field) out of range", body: raw)
            return .review
        }
        if let acknowledged = try await self.book.payoutAcknowledgement(originator: result.originatorConversationID) {
            return try await self.payoutResult(result, acknowledged)
        }
        if let payout = try await self.book.payout(statusQueryID: result.originatorConversationID) {
            // The answer to a query whose id was derived from the payout's (before migration 0013):
            // anyone could have made that id up. The payout is asked about again.
            self.logger.notice("answer to a status query of the old kind; not trusted, asked again", metadata: ["payout": .string(payout.id)])
            self.askPayoutStatusLater(payout.id)
            return .ignored
        }
        try await self.book.keepForReview(kind: "b2c_result", reference: result.originatorConversationID, reason: "unknown OriginatorConversationID", body: raw)
        return .review
    }

    /// A B2C result for one of our payouts, checked against the acknowledged pair.
    private func payoutResult(_ result: B2CResult, _ acknowledged: PayoutAcknowledgement) async throws -> CallbackOutcome {
        let (payout, raw, reference) = (acknowledged.payout, result.raw, result.originatorConversationID)
        guard let known = acknowledged.conversationID else {
            // No acknowledgement was kept: the pair cannot be checked. A final payout stays as it is;
            // an open one waits for Transaction Status, asked now.
            if payout.status == .paid || payout.status == .failed { return .alreadyFinal }
            try await self.book.holdForStatus(payout.id, raw: raw)
            self.askPayoutStatusLater(payout.id)
            self.logger.notice("B2C result for a payout without a kept acknowledgement; asking Transaction Status", metadata: ["payout": .string(payout.id)])
            return .unknownOutcome
        }
        guard acknowledged.isNamed(by: result.conversationID) else {
            try await self.book.keepForReviewOnce(
                kind: "b2c_result", reference: reference, reason: ReviewItem.conflict, body: raw, payoutID: payout.id,
                earlierResult: "B2C acknowledged as ConversationID \(known)",
                newResult: "B2C result (\(result.resultCodeText)) naming ConversationID \(result.conversationID.isEmpty ? "none" : result.conversationID): not trusted"
            )
            self.metrics.count("mpesa_conflicts_total", [("kind", "b2c_result")])
            self.logger.error("B2C result naming another ConversationID than the acknowledgement; kept for review", metadata: ["payout": .string(payout.id)])
            return .review
        }
        if result.succeeded {
            let receipt = try result.receipt ?? Self.firstNonEmpty(result.transactionID, result.conversationID) ?? "b2c:" + payout.id
            return try await self.settle(payout, paid: true, kind: "b2c_result", reference: reference, body: raw, says: "B2C result: paid, receipt \(receipt)") {
                try await self.book.completeWithdrawal(payout.id, providerTransactionID: receipt, raw: raw)
            }
        }
        switch payout.status {
        case .failed:
            return .alreadyFinal
        case .paid:
            return try await self.conflict(kind: "b2c_result", reference: reference, body: raw, payout: payout.id, earlier: "paid", new: "B2C result: not paid (\(result.resultCodeText))")
        default:
            // A failure is released only on Transaction Status's word.
            try await self.book.holdForStatus(payout.id, raw: raw)
            self.askPayoutStatusLater(payout.id)
            self.logger.notice("B2C result says not paid; the hold stays until Transaction Status confirms it", metadata: ["payout": .string(payout.id), "code": .string(result.resultCodeText)])
            return .awaitingStatus
        }
    }

    /// Applies a final payout result once; the same result again is `already_final`, the opposite
    /// one a conflict.
    func settle(
        _ payout: Payout, paid: Bool, kind: String, reference: String, body: String, says: String, _ apply: () async throws -> Payout
    ) async throws -> CallbackOutcome {
        if payout.status == (paid ? .paid : .failed) { return .alreadyFinal }
        do {
            let settled = try await apply()
            if paid && settled.settledNow { self.moneyMoved(.out, payout.amount) }
            return paid ? .paid : .failed
        } catch ProviderRecordError.conflict(let current) {
            return try await self.conflict(
                kind: kind, reference: reference, body: body, payout: payout.id, earlier: current == "paid" ? "paid" : "refunded (failed)", new: says
            )
        }
    }

    /// `POST /mpesa/b2c/timeout`: the outcome is unknown, so the hold stays and the reconciler asks.
    /// One naming another ConversationID than the payout's acknowledgement is kept for review.
    public func b2cTimeout(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        let raw = result.raw
        if try await self.book.statusQuery(id: result.originatorConversationID) != nil { return .ignored }
        if let acknowledged = try await self.book.payoutAcknowledgement(originator: result.originatorConversationID) {
            if acknowledged.conversationID != nil, !acknowledged.isNamed(by: result.conversationID) {
                try await self.book.keepForReviewOnce(
                    kind: "b2c_timeout", reference: result.originatorConversationID, reason: ReviewItem.conflict, body: raw, payoutID: acknowledged.payout.id,
                    earlierResult: "B2C acknowledged as ConversationID \(acknowledged.conversationID ?? "")",
                    newResult: "timeout naming ConversationID \(result.conversationID.isEmpty ? "none" : result.conversationID): not trusted"
                )
                return .review
            }
            return try await self.book.markWithdrawalUnknown(acknowledged.payout.id, raw: raw) ? .unknownOutcome : .alreadyFinal
        }
        if try await self.book.payout(statusQueryID: result.originatorConversationID) != nil { return .ignored }
        try await self.book.keepForReview(kind: "b2c_timeout", reference: result.originatorConversationID, reason: "unknown OriginatorConversationID", body: raw)
        return .review
    }

    private static func firstNonEmpty(_ values: String?...) -> String? {
        values.lazy.compactMap { $0 }.first { !$0.isEmpty }
    }
}

extension MPesaService {
    enum MoneyDirection: String { case `in`, out }

    /// `wallet_money_total{direction,currency}`, in whole units: counted where a deposit is credited
    /// or a payout paid, once: only by the call whose write made it final (the ledger says which).
    func moneyMoved(_ direction: MoneyDirection, _ amount: Amount) {
        self.metrics.floatingCounter("wallet_money_total", [("direction", direction.rawValue), ("currency", "KES")])
            .increment(by: Double(amount.cents) / 100)
    }
}
