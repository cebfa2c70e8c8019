import Basics
import Foundation
import GatewayTelemetry
import MoMo
import MPesaBook
import Wallet

/// Settling what MoMo did: by the status query, from a callback (a hint) or the reconciler.
extension MoMoService {
    /// A callback for `reference` (from its URL): the body must be MoMo's shape
    /// (``MoMoCallbackMalformed`` otherwise), but it moves nothing. It is unsigned, so MoMo is
    /// asked about the reference at once and only that answer settles the deposit or payout.
    /// Returns what happened, for the log and the metric.
    public func callback(reference: MoMoReference, body: [UInt8]) async throws -> String {
        _ = try MoMoTransaction.decodeCallback(body)
        if let deposit = try await self.book.deposit(checkoutRequestID: reference.uuidString) {
            return try await self.settle(deposit, reference) == nil ? "pending" : "settled"
        }
        if let payout = try await self.book.payout(conversationID: reference.uuidString) {
            return try await self.settle(payout, askFirst: true) == nil ? "pending" : "settled"
        }
        // Not ours, or a transfer whose acceptance is still being written: the reconciler asks.
        return "unknown_reference"
    }

    /// One pass: every pending deposit and open payout that is due is asked about, the rows claimed
    /// with `FOR UPDATE SKIP LOCKED` so replicas share the work. One line per change.
    public func reconcile(limit: Int = 50) async throws -> [String] {
        var changes: [String] = []
        for deposit in try await self.book.claimDepositsToCheck(limit: limit, lease: self.claimLease) {
            do {
                let reference = Self.reference(deposit: deposit.key)
                if deposit.checkoutRequestID == nil {
                    // Recorded, but the reference was never stored (a crash in between): ask now.
                    try await self.book.recordCheckout(depositID: deposit.id, checkoutRequestID: reference.uuidString)
                    self.later("deposit:\(deposit.id)") { await self.requestToPay(deposit, reference) }
                    changes.append("deposit \(deposit.id): request to pay sent")
                } else if let line = try await self.settle(deposit, reference) {
                    changes.append(line)
                }
            } catch {
                self.logger.warning("MoMo deposit check failed", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(safeDescription(of: error))])
            }
        }
        for payout in try await self.book.escalateUnsettledPayouts(maxChecks: self.payoutReview.checks, maxAge: self.payoutReview.age) {
            self.metrics.count("mpesa_payouts_needs_review_total")
            self.logger.error("payout still unsettled after its last check; held for review", metadata: ["payout": .string(payout.id)])
            try await self.book.keepForReview(
                kind: "payout", reference: payout.id, reason: "unsettled after \(self.payoutReview.checks) checks or \(self.payoutReview.age)", body: "{}",
                payoutID: payout.id)
            changes.append("payout \(payout.id): needs review, its hold kept")
        }
        for (payout, _) in try await self.book.claimPayoutsToCheck(limit: limit, lease: self.claimLease) {
            do {
                // Only MoMo's own payouts (their reference was recorded with the hold): one another
                // rail left open on this ledger is that rail's to settle, never sent through MoMo.
                guard try await self.book.payout(conversationID: Self.reference(payout: payout.id).uuidString)?.id == payout.id else {
                    self.logger.warning("open payout of another rail left to its own; MoMo does not send it", metadata: ["payout": .string(payout.id)])
                    continue
                }
                if let line = try await self.settle(payout) { changes.append(line) }
            } catch {
                self.logger.warning("MoMo payout check failed", metadata: ["payout": .string(payout.id), "error": .string(safeDescription(of: error))])
            }
        }
        for line in changes { self.logger.info("reconciled", metadata: ["change": .string(line)]) }
        return changes
    }

    /// Settles a deposit by MoMo's answer about its request to pay; nil when nothing changed.
    func settle(_ deposit: Deposit, _ reference: MoMoReference) async throws -> String? {
        guard let answer = try await Self.known({ () async throws(MoMoError) in try await self.client.requestToPayStatus(reference) }) else {
            // MoMo never received the request (its answer was lost before it got there): no
            // prompt, nothing to pay. One still queued here is not judged yet.
            // A request still on its way from another replica is not judged: only once the
            // deposit is past the window in which a prompt could still appear.
            guard !self.isInFlight("deposit:\(deposit.id)"), try await self.book.isPastUnconfirmedWindow(deposit) else { return nil }
            guard try await self.book.failDeposit(.checkout(reference.uuidString), code: DepositFailure.unconfirmedCode, text: "MoMo has no such request")
            else { return nil }
            return "deposit \(deposit.id): failed, MoMo never received the request"
        }
        switch answer.status {
        case .pending:
            return nil
        case .failed:
            let reason = answer.reason?.code ?? "FAILED"
            guard try await self.book.failDeposit(.checkout(reference.uuidString), code: Self.depositCode(reason), text: reason, raw: Self.record(answer))
            else { return nil }
            return "deposit \(deposit.id): failed (MoMo: \(reason))"
        case .successful:
            guard let phone = deposit.msisdn else { throw WalletError.notRegistered }
            if let problem = self.disagreement(answer, amount: deposit.amount, party: phone, externalID: Self.externalID(deposit: deposit)) {
                try await self.book.keepForReviewOnce(
                    kind: "momo_deposit", reference: reference.uuidString, reason: problem, body: Self.record(answer), depositID: deposit.id,
                    earlierResult: "request to pay of \(self.currency.format(deposit.amount.cents))", newResult: "MoMo: SUCCESSFUL, \(answer.amount) \(answer.currency)")
                return "deposit \(deposit.id): needs review (\(problem))"
            }
            do {
                let completed = try await self.book.completeDeposit(
                    checkoutRequestID: reference.uuidString, receipt: answer.financialTransactionId ?? reference.uuidString, amount: deposit.amount, phone: phone,
                    raw: Self.record(answer), confirmedByQuery: true)
                guard completed.creditedNow else { return nil }
                self.moneyMoved("in", deposit.amount)
                return "deposit \(deposit.id): credited \(self.currency.format(deposit.amount.cents)) (MoMo says SUCCESSFUL)"
            } catch ProviderRecordError.conflict(let current) {
                // MoMo says paid, the ledger has it otherwise: keep both, tell a person.
                try await self.book.keepForReviewOnce(
                    kind: "momo_deposit", reference: reference.uuidString, reason: "MoMo says SUCCESSFUL; the deposit was \(current)", body: Self.record(answer),
                    depositID: deposit.id, earlierResult: current, newResult: "MoMo: SUCCESSFUL")
                return "deposit \(deposit.id): needs review (MoMo says SUCCESSFUL, the ledger \(current))"
            }
        }
    }

    /// Settles a payout by MoMo's answer about its transfer; nil when nothing changed. An open
    /// payout never confirmed as sent (unless a callback says MoMo has it: `askFirst`), or one
    /// MoMo has no record of, is sent again under the same reference: MoMo refuses a repeat, so
    /// that cannot pay twice. A settled payout (or one a person holds) is never sent again: MoMo's
    /// answer is only compared with it, and a disagreement goes to review.
    func settle(_ payout: Payout, askFirst: Bool = false) async throws -> String? {
        let reference = Self.reference(payout: payout.id)
        let open = [Payout.Status.reserved, .sent, .unknown].contains(payout.status)
        if payout.status == .reserved && !askFirst { return await self.resend(payout, because: "never confirmed as sent") }
        guard let answer = try await Self.known({ () async throws(MoMoError) in try await self.client.transferStatus(reference) }) else {
            guard open else { return nil }
            return await self.resend(payout, because: "MoMo had no transfer")
        }
        do {
            switch answer.status {
            case .pending:
                return nil
            case .successful:
                guard let phone = payout.msisdn else { throw WalletError.notRegistered }
                if let problem = self.disagreement(answer, amount: payout.amount, party: phone, externalID: Self.externalID(payout: payout)) {
                    try await self.book.keepForReviewOnce(
                        kind: "momo_payout", reference: payout.id, reason: problem, body: Self.record(answer), payoutID: payout.id,
                        earlierResult: "transfer of \(self.currency.format(payout.amount.cents))", newResult: "MoMo: SUCCESSFUL, \(answer.amount) \(answer.currency)")
                    return "payout \(payout.id): needs review (\(problem))"
                }
                let settled = try await self.book.completeWithdrawal(
                    payout.id, providerTransactionID: answer.financialTransactionId ?? reference.uuidString, raw: Self.record(answer))
                guard settled.settledNow else { return nil }
                self.moneyMoved("out", payout.amount)
                return "payout \(payout.id): paid (MoMo says SUCCESSFUL)"
            case .failed:
                let reason = answer.reason?.code ?? "FAILED"
                let settled = try await self.book.failWithdrawal(payout.id, code: -1, text: "MoMo: " + reason, raw: Self.record(answer))
                guard settled.settledNow else { return nil }
                return "payout \(payout.id): failed (MoMo: \(reason)), the hold released"
            }
        } catch ProviderRecordError.conflict(let current) {
            try await self.book.keepForReviewOnce(
                kind: "momo_payout", reference: payout.id, reason: "MoMo says \(answer.status.rawValue); the payout was \(current)", body: Self.record(answer),
                payoutID: payout.id, earlierResult: current, newResult: "MoMo: \(answer.status.rawValue)")
            return "payout \(payout.id): needs review (MoMo says \(answer.status.rawValue), the ledger \(current))"
        }
    }

    /// MoMo's answer about a reference, or nil when MoMo has no request under it.
    static func known(_ ask: () async throws(MoMoError) -> MoMoTransaction) async throws -> MoMoTransaction? {
        do {
            return try await ask()
        } catch {
            if error == .notFound { return nil }
            throw error
        }
    }

    private func resend(_ payout: Payout, because why: String) async -> String? {
        guard !self.isInFlight("payout:" + payout.id) else { return nil }
        // An attempt went out before: from now on a refusal of a re-send proves nothing.
        if payout.status != .reserved {
            do { try await self.book.markPayoutOutcomeUnknown(payout.id) } catch { return nil }
        }
        self.later("payout:" + payout.id) { await self.transfer(payout) }
        return "payout \(payout.id): \(why), transfer sent again under the same reference"
    }

    /// Why MoMo's answer is not the movement asked for (another amount, currency or number), or nil.
    func disagreement(_ answer: MoMoTransaction, amount: Amount, party: MSISDN, externalID: String) -> String? {
        // Trailing zeros after the currency's decimals say the same amount (`5000.0` francs).
        var written = answer.amount
        if let point = written.firstIndex(of: "."), written.distance(from: point, to: written.endIndex) - 1 > self.currency.minorUnits {
            let keep = written.index(point, offsetBy: self.currency.minorUnits)
            if written[written.index(after: keep)...].allSatisfy({ $0 == "0" }) { written = String(written[...keep]) }
            if written.hasSuffix(".") { written.removeLast() }
        }
        if let id = answer.externalId, id != externalID { return "MoMo's answer is for \(id.prefix(64)), not \(externalID)" }
        if MoMoAmount.minorUnits(written, decimals: self.currency.minorUnits) != amount.cents {
            return "MoMo's amount \(answer.amount) is not the \(self.currency.format(amount.cents)) asked for"
        }
        if answer.currency != self.client.configuration.currency { return "MoMo's currency \(answer.currency) is not \(self.client.configuration.currency)" }
        if answer.party.partyId != party.value { return "MoMo names another number (\(MSISDN.masked(answer.party.partyId)))" }
        return nil
    }

    /// What is kept of MoMo's answer: its outcome and references, not the customer's number.
    static func record(_ answer: MoMoTransaction) -> String {
        var fields: [String: JSONValue] = ["status": .string(answer.status.rawValue), "amount": .string(answer.amount), "currency": .string(answer.currency)]
        if let id = answer.financialTransactionId { fields["financialTransactionId"] = .string(id) }
        if let id = answer.externalId { fields["externalId"] = .string(id) }
        if let reason = answer.reason { fields["reason"] = .string(reason.code) }
        return JSONValue.object(fields).serialized
    }

    /// MoMo's reason for an unpaid request to pay, as the deposit-failure SMS words it
    /// (``DepositFailure``'s codes).
    static func depositCode(_ reason: String) -> Int {
        switch reason {
        case "APPROVAL_REJECTED", "REJECTED": return 1032
        case "EXPIRED", "TRANSACTION_TIMEOUT", "COULD_NOT_PERFORM_TRANSACTION": return 1037
        case "NOT_ENOUGH_FUNDS": return 1
        case "PAYER_LIMIT_REACHED", "PAYEE_LIMIT_REACHED", "NOT_ALLOWED": return 2
        default: return -3
        }
    }

    /// `wallet_money_total{direction,currency}` in whole units, counted once per movement made final.
    func moneyMoved(_ direction: String, _ amount: Amount) {
        self.metrics.floatingCounter("wallet_money_total", [("direction", direction), ("currency", self.currency.code)])
            .increment(by: Double(amount.cents) / Double(self.currency.perMajor))
    }
}
