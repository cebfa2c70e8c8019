import Foundation
import GatewayActions
import GatewayHTTP
import Logging
import Metrics
import MPesa
import Wallet

extension MPesaService {
    /// What a callback did, for the log and the metrics.
    public enum CallbackOutcome: String, Sendable {
        case credited, paid, failed, unknownOutcome = "unknown", alreadyFinal = "already_final", review, conflict, ignored
        /// A payment for a push whose answer was lost, matched to its deposit and waiting for an STK
        /// Query to confirm it.
        case awaitingQuery = "awaiting_query"
    }

    /// `POST /mpesa/stk/callback`: credits a paid deposit once, fails an unpaid one once; a
    /// callback for a deposit we do not know, or whose amount or phone disagree, is kept for
    /// review, and one that contradicts a final result is kept as a conflict.
    public func stkCallback(_ body: [UInt8]) async throws -> CallbackOutcome {
        let callback = try STKCallback(json: body)
        let raw = callback.raw
        let checkout = callback.checkoutRequestID
        if let field = callback.outOfRange {
            try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "\(field) out of range", body: raw)
            return .review
        }
        guard let paid = callback.paid else {
            if try await self.wallet.failDeposit(.checkout(checkout), code: callback.resultCode, text: callback.resultDescription, raw: raw) {
                return .failed
            }
            guard let deposit = try await self.wallet.deposit(checkoutRequestID: checkout) else {
                try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "unknown CheckoutRequestID", body: raw)
                return .review
            }
            if deposit.status == .completed {
                return try await self.conflict(
                    kind: "stk", reference: checkout, body: raw, deposit: deposit.id,
                    earlier: "credited under receipt \(deposit.receipt ?? "-")", new: "STK callback: not paid (\(callback.resultCode))"
                )
            }
            return .alreadyFinal
        }
        guard let shillings = paid.shillings, let amount = Amount(shillings: shillings) else {
            try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "Amount outside 1 to 250,000 whole shillings", body: raw)
            return .review
        }
        guard let phone = MSISDN(paid.phone) else {
            try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "PhoneNumber is not a Kenyan MSISDN", body: raw)
            return .review
        }
        do {
            let before = try await self.wallet.deposit(checkoutRequestID: checkout)?.status
            try await self.wallet.completeDeposit(checkoutRequestID: checkout, receipt: paid.receipt, amount: amount, phone: phone, raw: raw)
            return before == .completed ? .alreadyFinal : .credited
        } catch ProviderRecordError.unknownDeposit {
            // Paid, but we never learnt this CheckoutRequestID: the push's answer was lost (or has
            // not come yet). The one recent pending deposit of this phone and amount is it, but a
            // callback is unsigned: the credit waits for an STK Query of that CheckoutRequestID.
            guard let deposit = try await self.wallet.adoptUnconfirmedDeposit(
                checkoutRequestID: checkout, phone: phone, amount: amount, receipt: paid.receipt, raw: raw
            ) else {
                if let known = try await self.wallet.deposit(checkoutRequestID: checkout) {
                    // A copy of this callback matched it meanwhile.
                    return known.status == .completed ? .alreadyFinal : .awaitingQuery
                }
                try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "unknown CheckoutRequestID", body: raw)
                return .review
            }
            self.logger.notice("paid STK callback matched to a deposit whose push was never confirmed; querying", metadata: ["deposit": .stringConvertible(deposit.id)])
            self.later { await self.confirm(deposit, checkout: checkout, receipt: paid.receipt) }
            return .awaitingQuery
        } catch ProviderRecordError.awaitingQuery {
            return .awaitingQuery
        } catch ProviderRecordError.mismatch {
            try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "amount or phone differ from the deposit", body: raw)
            return .review
        } catch ProviderRecordError.conflict(let current) {
            let deposit = try await self.wallet.deposit(checkoutRequestID: checkout)
            return try await self.conflict(
                kind: "stk", reference: checkout, body: raw, deposit: deposit?.id, earlier: current, new: "STK callback: paid, receipt \(paid.receipt)"
            )
        }
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
                try await self.wallet.completeDeposit(checkoutRequestID: checkout, receipt: receipt, amount: deposit.amount, phone: deposit.msisdn, confirmedByQuery: true)
                self.logger.info("STK query confirmed a payment for a push whose answer was lost", metadata: ["deposit": .stringConvertible(deposit.id)])
            case .failed(let code, let text):
                _ = try await self.conflict(
                    kind: "stk_query", reference: checkout, body: "{}", deposit: deposit.id, earlier: "STK callback: paid, receipt \(receipt)",
                    new: "STK query: not paid (\(code) \(String(text.prefix(100))))"
                )
                try await self.wallet.failDeposit(.checkout(checkout), code: code, text: text)
            }
        } catch {
            self.logger.warning("STK query of a matched payment failed; the reconciler asks again", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(safeDescription(of: error))])
        }
    }

    /// A final result that contradicts an earlier final one: kept with both results for a person,
    /// logged at error and counted; nothing moves.
    func conflict(kind: String, reference: String, body: String, deposit: Int64? = nil, payout: String? = nil, earlier: String, new: String) async throws -> CallbackOutcome {
        try await self.wallet.keepForReview(
            kind: kind, reference: reference, reason: ReviewItem.conflict, body: body, depositID: deposit, payoutID: payout, earlierResult: earlier, newResult: new
        )
        GatewayMetrics.count("mpesa_conflicts_total", [("kind", kind)])
        var metadata: Logger.Metadata = ["kind": .string(kind), "earlier": .string(earlier), "new": .string(new)]
        if let deposit { metadata["deposit"] = .stringConvertible(deposit) }
        if let payout { metadata["payout"] = .string(payout) }
        self.logger.error("M-Pesa reports disagree; kept for review", metadata: metadata)
        return .conflict
    }

    /// `POST /mpesa/b2c/result`: a payout's result posts or voids its hold, once; a transaction
    /// status answer (under the query's id) settles a payout only when it says Completed or a
    /// definite failure. A result contradicting an earlier final one is a conflict.
    public func b2cResult(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        let raw = result.raw
        if let field = result.outOfRange {
            try await self.wallet.keepForReview(kind: "b2c_result", reference: result.originatorConversationID, reason: "\(field) out of range", body: raw)
            return .review
        }
        if let payout = try await self.wallet.payout(id: result.originatorConversationID) {
            if result.resultCode == 0 {
                let receipt = try result.receipt ?? Self.firstNonEmpty(result.transactionID, result.conversationID) ?? "b2c:" + payout.id
                return try await self.settle(payout, paid: true, kind: "b2c_result", reference: result.originatorConversationID, body: raw, says: "B2C result: paid, receipt \(receipt)") {
                    try await self.wallet.completeWithdrawal(payout.id, providerTransactionID: receipt, raw: raw)
                }
            }
            return try await self.settle(payout, paid: false, kind: "b2c_result", reference: result.originatorConversationID, body: raw, says: "B2C result: not paid (\(result.resultCode))") {
                try await self.wallet.failWithdrawal(payout.id, code: result.resultCode, text: result.resultDescription, raw: raw)
            }
        }
        if let payout = try await self.wallet.payout(statusQueryID: result.originatorConversationID) {
            guard result.resultCode == 0 else {
                self.logger.notice("transaction status query answered without a status", metadata: ["payout": .string(payout.id), "code": .stringConvertible(result.resultCode)])
                return .unknownOutcome
            }
            let status = try result.transactionStatus ?? ""
            switch status {
            case "completed":
                // The receipt column is unique: without a receipt, the query's own id stands in.
                let receipt = try result.receipt ?? "status:" + result.originatorConversationID
                return try await self.settle(payout, paid: true, kind: "b2c_result", reference: result.originatorConversationID, body: raw, says: "transaction status: completed, receipt \(receipt)") {
                    try await self.wallet.completeWithdrawal(payout.id, providerTransactionID: receipt, raw: raw)
                }
            case "failed", "cancelled", "expired", "declined":
                return try await self.settle(payout, paid: false, kind: "b2c_result", reference: result.originatorConversationID, body: raw, says: "transaction status: \(status)") {
                    try await self.wallet.failWithdrawal(payout.id, code: result.resultCode, text: "transaction status: \(status)", raw: raw)
                }
            default:
                return .unknownOutcome
            }
        }
        try await self.wallet.keepForReview(kind: "b2c_result", reference: result.originatorConversationID, reason: "unknown OriginatorConversationID", body: raw)
        return .review
    }

    /// Applies a final payout result once; the same result again is `already_final`, the opposite
    /// one a conflict.
    private func settle(
        _ payout: Payout, paid: Bool, kind: String, reference: String, body: String, says: String, _ apply: () async throws -> Payout
    ) async throws -> CallbackOutcome {
        if payout.status == (paid ? .paid : .failed) { return .alreadyFinal }
        do {
            _ = try await apply()
            return paid ? .paid : .failed
        } catch ProviderRecordError.conflict(let current) {
            return try await self.conflict(
                kind: kind, reference: reference, body: body, payout: payout.id, earlier: current == "paid" ? "paid" : "refunded (failed)", new: says
            )
        }
    }

    /// `POST /mpesa/b2c/timeout`: the outcome is unknown, so the hold stays and the reconciler asks.
    public func b2cTimeout(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        let raw = result.raw
        if try await self.wallet.markWithdrawalUnknown(result.originatorConversationID, raw: raw) { return .unknownOutcome }
        if try await self.wallet.payout(id: result.originatorConversationID) != nil { return .alreadyFinal }
        if try await self.wallet.payout(statusQueryID: result.originatorConversationID) != nil { return .ignored }
        try await self.wallet.keepForReview(kind: "b2c_timeout", reference: result.originatorConversationID, reason: "unknown OriginatorConversationID", body: raw)
        return .review
    }

    private static func firstNonEmpty(_ values: String?...) -> String? {
        values.lazy.compactMap { $0 }.first { !$0.isEmpty }
    }

    // MARK: Reconciliation

    /// One pass: every pending deposit and open payout that is due is checked with Daraja, the
    /// rows claimed with `FOR UPDATE SKIP LOCKED` so replicas share the work. Returns one line per
    /// change (what `ussd-gateway mpesa reconcile` prints).
    public func reconcile(limit: Int = 50) async throws -> [String] {
        var changes: [String] = []
        for deposit in try await self.wallet.claimDepositsToCheck(limit: limit, lease: self.claimLease) {
            do {
                if let line = try await self.check(deposit) { changes.append(line) }
            } catch {
                self.logger.warning("deposit check failed", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(safeDescription(of: error))])
            }
        }
        for payout in try await self.wallet.escalateUnsettledPayouts(maxChecks: self.payoutReview.checks, maxAge: self.payoutReview.age) {
            GatewayMetrics.count("mpesa_payouts_needs_review_total")
            self.logger.error("payout still unsettled after its last check; held for review", metadata: ["payout": .string(payout.id)])
            try await self.wallet.keepForReview(
                kind: "payout", reference: payout.id, reason: "unsettled after \(self.payoutReview.checks) checks or \(self.payoutReview.age)", body: "{}",
                payoutID: payout.id
            )
            changes.append("payout \(payout.id): needs review, its hold kept")
        }
        for (payout, checks) in try await self.wallet.claimPayoutsToCheck(limit: limit, lease: self.claimLease) {
            do {
                if let line = try await self.check(payout, checks: checks) { changes.append(line) }
            } catch {
                self.logger.warning("payout check failed", metadata: ["payout": .string(payout.id), "error": .string(safeDescription(of: error))])
            }
        }
        for line in changes { self.logger.info("reconciled", metadata: ["change": .string(line)]) }
        return changes
    }

    private func check(_ deposit: Deposit) async throws -> String? {
        guard let checkout = deposit.checkoutRequestID else {
            // The push never got a CheckoutRequestID (unanswered, or lost in a crash). A payment for
            // it may still be matched within the window; after that it is failed.
            guard !self.inFlight.contains("deposit:\(deposit.id)"), try await self.wallet.isPastUnconfirmedWindow(deposit) else { return nil }
            guard try await self.wallet.failDeposit(.id(deposit.id), code: DepositFailure.unconfirmedCode, text: "STK push not confirmed") else { return nil }
            return "deposit \(deposit.id): failed, the STK push was never confirmed"
        }
        switch try await self.daraja.stkQuery(checkoutRequestID: checkout) {
        case .pending:
            return nil
        case .paid:
            // A query carries no receipt; a paid callback that matched this deposit left its own.
            try await self.wallet.completeDeposit(checkoutRequestID: checkout, receipt: deposit.receipt, amount: deposit.amount, phone: deposit.msisdn, confirmedByQuery: true)
            return "deposit \(deposit.id): credited \(deposit.amount) (STK query says paid)"
        case .failed(let code, let text):
            guard try await self.wallet.failDeposit(.checkout(checkout), code: code, text: text) else { return nil }
            return "deposit \(deposit.id): failed (STK query: \(code) \(text))"
        }
    }

    private func check(_ payout: Payout, checks: Int) async throws -> String? {
        if payout.status == .reserved {
            // Never confirmed as sent: send again under the same id (a duplicate is refused).
            guard self.inFlight.claim("payout:" + payout.id) else { return nil }
            defer { self.inFlight.release("payout:" + payout.id) }
            await self.pay(payout)
            return "payout \(payout.id): B2C sent again under the same OriginatorConversationID"
        }
        let queryID = "\(payout.id)-q\(checks)"
        try await self.wallet.recordStatusQuery(payout.id, queryID: queryID)
        _ = try await self.daraja.transactionStatus(originalConversationID: payout.id, queryID: queryID)
        return "payout \(payout.id): transaction status asked (\(payout.status))"
    }
}
