import Foundation
import Logging
import MPesa
import Wallet

extension MPesaService {
    /// What a callback did, for the log and the metrics.
    public enum CallbackOutcome: String, Sendable {
        case credited, paid, failed, unknownOutcome = "unknown", alreadyFinal = "already_final", review, ignored
    }

    /// `POST /mpesa/stk/callback`: credits a paid deposit once, fails an unpaid one once; a
    /// callback for a deposit we do not know, or whose amount or phone disagree, is kept for review.
    public func stkCallback(_ body: [UInt8]) async throws -> CallbackOutcome {
        let callback = try STKCallback(json: body)
        let raw = String(decoding: body, as: UTF8.self)
        let checkout = callback.checkoutRequestID
        guard let paid = callback.paid else {
            if try await self.wallet.failDeposit(checkoutRequestID: checkout, code: callback.resultCode, text: callback.resultDescription, raw: raw) {
                return .failed
            }
            if try await self.wallet.deposit(checkoutRequestID: checkout) == nil {
                try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "unknown CheckoutRequestID", body: raw)
                return .review
            }
            return .alreadyFinal
        }
        guard let phone = MSISDN(paid.phone) else {
            try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "PhoneNumber is not a Kenyan MSISDN", body: raw)
            return .review
        }
        let amount = Amount(cents: paid.shillings * 100)
        let complete = { () async throws -> CallbackOutcome in
            let before = try await self.wallet.deposit(checkoutRequestID: checkout)?.status
            try await self.wallet.completeDeposit(checkoutRequestID: checkout, receipt: paid.receipt, amount: amount, phone: phone, raw: raw)
            return before == "completed" ? .alreadyFinal : .credited
        }
        do {
            do {
                return try await complete()
            } catch ProviderRecordError.unknownDeposit {
                // Paid, but we never learnt this CheckoutRequestID: the push's answer was lost (or
                // has not come yet). The one recent deposit of this phone and amount still without
                // one is it; a duplicate of this callback may have matched it meanwhile, so the
                // credit is tried again either way.
                if let deposit = try await self.wallet.adoptUnconfirmedDeposit(checkoutRequestID: checkout, phone: phone, amount: amount) {
                    self.logger.notice("paid STK callback matched to a deposit whose push was never confirmed", metadata: ["deposit": .stringConvertible(deposit)])
                }
                return try await complete()
            }
        } catch ProviderRecordError.unknownDeposit {
            try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "unknown CheckoutRequestID", body: raw)
            return .review
        } catch ProviderRecordError.mismatch {
            try await self.wallet.keepForReview(kind: "stk", reference: checkout, reason: "amount or phone differ from the deposit", body: raw)
            return .review
        }
    }

    /// `POST /mpesa/b2c/result`: a payout's result posts or voids its hold, once; a transaction
    /// status answer (under the query's id) settles a payout only when it says Completed or a
    /// definite failure.
    public func b2cResult(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        let raw = String(decoding: body, as: UTF8.self)
        if let payout = try await self.wallet.payout(id: result.originatorConversationID) {
            if payout.status == "paid" || payout.status == "failed" { return .alreadyFinal }
            if result.resultCode == 0 {
                let receipt = Self.firstNonEmpty(result.parameters["TransactionReceipt"]?.string, result.transactionID, result.conversationID) ?? "b2c:" + payout.id
                try await self.wallet.completeWithdrawal(payout.id, providerTransactionID: receipt, raw: raw)
                return .paid
            }
            try await self.wallet.failWithdrawal(payout.id, code: result.resultCode, text: result.resultDescription, raw: raw)
            return .failed
        }
        if let payout = try await self.wallet.payout(statusQueryID: result.originatorConversationID) {
            if payout.status == "paid" || payout.status == "failed" { return .alreadyFinal }
            guard result.resultCode == 0 else {
                self.logger.notice("transaction status query answered without a status", metadata: ["payout": .string(payout.id), "code": .stringConvertible(result.resultCode)])
                return .unknownOutcome
            }
            let status = (result.parameters["TransactionStatus"]?.string ?? "").lowercased()
            switch status {
            case "completed":
                // The receipt column is unique: without a receipt, the query's own id stands in.
                let receipt = Self.firstNonEmpty(result.parameters["ReceiptNo"]?.string) ?? "status:" + result.originatorConversationID
                try await self.wallet.completeWithdrawal(payout.id, providerTransactionID: receipt, raw: raw)
                return .paid
            case "failed", "cancelled", "expired", "declined":
                try await self.wallet.failWithdrawal(payout.id, code: result.resultCode, text: "transaction status: \(status)", raw: raw)
                return .failed
            default:
                return .unknownOutcome
            }
        }
        try await self.wallet.keepForReview(kind: "b2c_result", reference: result.originatorConversationID, reason: "unknown OriginatorConversationID", body: raw)
        return .review
    }

    /// `POST /mpesa/b2c/timeout`: the outcome is unknown, so the hold stays and the reconciler asks.
    public func b2cTimeout(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        let raw = String(decoding: body, as: UTF8.self)
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
        for deposit in try await self.wallet.claimDepositsToCheck(limit: limit) {
            do {
                if let line = try await self.check(deposit) { changes.append(line) }
            } catch {
                self.logger.warning("deposit check failed", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(safeDescription(of: error))])
            }
        }
        for (payout, checks) in try await self.wallet.claimPayoutsToCheck(limit: limit) {
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
            // The push never got a CheckoutRequestID (refused unanswered, or lost in a crash).
            guard !self.inFlight.contains("deposit:\(deposit.id)") else { return nil }
            guard try await self.wallet.failDeposit(id: deposit.id, code: DepositFailure.notSentCode, text: "STK push not confirmed") else { return nil }
            return "deposit \(deposit.id): failed, the STK push was never confirmed"
        }
        switch try await self.daraja.stkQuery(checkoutRequestID: checkout) {
        case .pending:
            return nil
        case .paid:
            // No receipt number in a query answer; a later callback finds the deposit completed.
            try await self.wallet.completeDeposit(checkoutRequestID: checkout, receipt: nil, amount: deposit.amount, phone: deposit.msisdn)
            return "deposit \(deposit.id): credited \(deposit.amount) (STK query says paid)"
        case .failed(let code, let text):
            guard try await self.wallet.failDeposit(checkoutRequestID: checkout, code: code, text: text) else { return nil }
            return "deposit \(deposit.id): failed (STK query: \(code) \(text))"
        }
    }

    private func check(_ payout: Payout, checks: Int) async throws -> String? {
        if payout.status == "reserved" {
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
