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

/// The reconciler: what no callback settled, asked of Daraja.
extension MPesaService {
    /// One pass: every pending deposit and open payout that is due is checked with Daraja, the
    /// rows claimed with `FOR UPDATE SKIP LOCKED` so replicas share the work. Returns one line per
    /// change (what `ussd-gateway mpesa reconcile` prints).
    public func reconcile(limit: Int = 50) async throws -> [String] {
        var changes: [String] = []
        for deposit in try await self.book.claimDepositsToCheck(limit: limit, lease: self.claimLease) {
            do {
                if let line = try await self.check(deposit) { changes.append(line) }
            } catch {
                self.logger.warning("deposit check failed", metadata: ["deposit": .stringConvertible(deposit.id), "error": .string(safeDescription(of: error))])
            }
        }
        for payout in try await self.book.escalateUnsettledPayouts(maxChecks: self.payoutReview.checks, maxAge: self.payoutReview.age) {
            self.metrics.count("mpesa_payouts_needs_review_total")
            self.logger.error("payout still unsettled after its last check; held for review", metadata: ["payout": .string(payout.id)])
            try await self.book.keepForReview(
                kind: "payout", reference: payout.id, reason: "unsettled after \(self.payoutReview.checks) checks or \(self.payoutReview.age)", body: "{}",
                payoutID: payout.id
            )
            changes.append("payout \(payout.id): needs review, its hold kept")
        }
        for (payout, checks) in try await self.book.claimPayoutsToCheck(limit: limit, lease: self.claimLease) {
            do {
                if let line = try await self.check(payout, checks: checks) { changes.append(line) }
            } catch {
                self.logger.warning("payout check failed", metadata: ["payout": .string(payout.id), "error": .string(safeDescription(of: error))])
            }
        }
        try await self.verifyPaybills(limit: limit, into: &changes)
        let unconfirmedCutoff = self.now().addingTimeInterval(-Double(self.paybillUnconfirmedAfter.components.seconds))
        for transID in try await self.book.flagUnconfirmedPaybills(validatedBefore: unconfirmedCutoff) {
            self.metrics.count("mpesa_paybill_unconfirmed_total")
            self.logger.error("paybill validation accepted but never confirmed; kept for review", metadata: ["trans_id": .string(transID)])
            changes.append("paybill \(transID): accepted, never confirmed: needs review")
        }
        for line in changes { self.logger.info("reconciled", metadata: ["change": .string(line)]) }
        return changes
    }

    private func check(_ deposit: Deposit) async throws -> String? {
        guard let checkout = deposit.checkoutRequestID else {
            // The push never got a CheckoutRequestID (unanswered, or lost in a crash). A payment for
            // it may still be matched within the window; after that it is failed.
            guard !self.inFlight.contains("deposit:\(deposit.id)"), try await self.book.isPastUnconfirmedWindow(deposit) else { return nil }
            guard try await self.book.failDeposit(.id(deposit.id), code: DepositFailure.unconfirmedCode, text: "STK push not confirmed") else { return nil }
            return "deposit \(deposit.id): failed, the STK push was never confirmed"
        }
        switch try await self.daraja.stkQuery(checkoutRequestID: checkout) {
        case .pending:
            return nil
        case .paid:
            // A query carries no receipt; a paid callback that matched this deposit left its own.
            guard let phone = deposit.msisdn else { throw WalletError.notRegistered }
            let completed = try await self.book.completeDeposit(
                checkoutRequestID: checkout, receipt: deposit.receipt, amount: deposit.amount, phone: phone, confirmedByQuery: true)
            if completed.creditedNow { self.moneyMoved(.in, deposit.amount) }
            return "deposit \(deposit.id): credited \(deposit.amount) (STK query says paid)"
        case .failed(let code, let text):
            guard try await self.book.failDeposit(.checkout(checkout), code: code, text: text) else { return nil }
            return "deposit \(deposit.id): failed (STK query: \(code) \(text))"
        }
    }

    private func check(_ payout: Payout, checks _: Int) async throws -> String? {
        if payout.status == .reserved {
            // Never confirmed as sent: send again under the same id (a duplicate is refused).
            guard self.inFlight.claim("payout:" + payout.id) else { return nil }
            defer { self.inFlight.release("payout:" + payout.id) }
            await self.pay(payout)
            return "payout \(payout.id): B2C sent again under the same OriginatorConversationID"
        }
        // A fresh random id for each query (never derived from the payout's): see StatusQueries.
        guard await self.askPayoutStatus(payout.id) else { return nil }
        return "payout \(payout.id): transaction status asked (\(payout.status))"
    }

    /// Paybill confirmations Safaricom has not confirmed yet: those past `MPESA_C2B_REVIEW_AFTER_MINUTES`
    /// (by the service's clock) go to review, once; the others that are due are asked about again.
    private func verifyPaybills(limit: Int, into changes: inout [String]) async throws {
        let now = self.now()
        let cutoff = now.addingTimeInterval(-Double(self.paybill.reviewAfter.components.seconds))
        for transID in try await self.book.flagUnverifiedPaybills(confirmedBefore: cutoff, after: self.paybill.reviewAfter) {
            self.metrics.count("mpesa_paybill_unverified_total")
            self.logger.error("paybill confirmation not confirmed by Safaricom in time; nothing credited, kept for review", metadata: ["trans_id": .string(transID)])
            changes.append("paybill \(transID): not confirmed by Safaricom, nothing credited: needs review")
        }
        for (transID, _) in try await self.book.claimPaybillsToVerify(now: now, limit: limit, lease: self.claimLease) {
            guard self.inFlight.claim("status:c2b:" + transID) else { continue }
            defer { self.inFlight.release("status:c2b:" + transID) }
            if await self.verifyPaybill(transID) { changes.append("paybill \(transID): transaction status asked") }
        }
    }
}
