import Wallet
import Basics
import Foundation
import Postgres

/// Withdrawals: payouts to a customer's mobile-money account, held, paid once, or voided.
extension MPesaBook {
    /// Holds the amount in a pending transfer (not spendable, not yet gone) and records the payout
    /// to send by B2C. `fee` (the tariff's) is posted to fee income in the same transaction and
    /// given back if the payout fails; the customer must afford both. The same key returns the same
    /// payout; a refused key keeps being refused.
    public func reserveWithdrawal(_ msisdn: MSISDN, amount: Amount, fee: Amount = .zero, key: IdempotencyKey) async throws -> Payout {
        guard fee.cents >= 0 else { throw WalletError.invalidArgument("a fee is never negative") }
        if let existing = try await self.payout(id: key.value) {
            guard existing.msisdn == msisdn, existing.amount == amount else { throw WalletError.idempotencyKeyReused }
            return existing
        }
        let fingerprint = try await self.wallet.fingerprint("withdrawal|\(msisdn)|\(amount.cents)")
        let transferID = "withdrawal:\(key.value)"
        do {
            let outcome: Result<Payout, WalletError> = try await self.postgres.transaction(maxAttempts: 5) { tx in
                if let failed = try await tx.query("SELECT fingerprint, error FROM failed_transfers WHERE id = \(transferID)").single() {
                    let (stored, code) = try failed.decode((String, String).self)
                    return .failure(stored == fingerprint ? WalletError(code: code) : .idempotencyKeyReused)
                }
                guard let account = try await tx.query(
                    "SELECT account_id, spendable, customer_id, status FROM wallet_lock_main_account(\(msisdn.value))"
                ).single() else { return .failure(.notRegistered) }
                let (accountID, available, customerID, status) = try account.decode((Int64, Int64, Int64, String).self)
                if let refusal = try await self.withdrawalRefusal(
                    tx, account: accountID, customer: customerID, available: available, status: status, amount: amount, fee: fee
                ) {
                    try await tx.query(
                        "INSERT INTO failed_transfers (id, fingerprint, error) VALUES (\(transferID), \(fingerprint), \(refusal.code)) ON CONFLICT (id) DO NOTHING"
                    )
                    return .failure(refusal)
                }
                // The hold, its payout row and the fee, through the wallet's function (the gateway
                // writes no transfer itself).
                try await tx.query(
                    """
                    SELECT wallet_hold_withdrawal(\(key.value), \(accountID), \(customerID), \(msisdn.value), \(amount.cents), \(fingerprint), \(fee.cents))
                    """
                )
                return .success(Payout(id: key.value, msisdn: msisdn, amount: amount, status: .reserved))
            }
            return try outcome.get()
        } catch let error as PostgresError where error.isUniqueViolation {
            // The same key reserved concurrently: return that one.
            guard let existing = try await self.payout(id: key.value), existing.msisdn == msisdn, existing.amount == amount else {
                throw WalletError.idempotencyKeyReused
            }
            return existing
        }
    }

    /// Why a withdrawal may not be held from an account: the customer's status, the limits or the
    /// balance; nil when it may.
    private func withdrawalRefusal(
        _ tx: PostgresConnection, account: Int64, customer: Int64, available: Int64, status: String, amount: Amount, fee: Amount
    ) async throws -> WalletError? {
        if status == Wallet.Customer.Status.suspended.rawValue { return .blocked }
        if status != Wallet.Customer.Status.active.rawValue { return .notRegistered }
        if !self.wallet.limits.perTransaction.contains(amount.cents) { return .limitExceeded }
        let tier = try await self.wallet.tierLimits(tx, customer: customer)
        if let tier, amount.cents > tier.perTransaction { return .limitExceeded }
        let (total, overflow) = try await self.wallet.debitsToday(tx, account: account).addingReportingOverflow(amount.cents)
        if overflow || total > min(self.wallet.limits.daily, tier?.daily ?? .max) { return .limitExceeded }
        let (needed, overflowing) = amount.cents.addingReportingOverflow(fee.cents)
        return overflowing || available < needed ? .insufficientFunds : nil
    }

    /// Notes that the B2C request went out, keeping the hold: `reserved` becomes `sent`; an
    /// `unknown` (its timeout callback came first) stays unknown. The acknowledgement's
    /// ConversationID and OriginatorConversationID, when there was one, are kept once: a result
    /// must name the same pair.
    public func markWithdrawalSent(_ id: String, conversationID: String?, originatorConversationID: String? = nil) async throws {
        try await self.postgres.query(
            """
            UPDATE payouts SET updated_at = now(),
                conversation_id = COALESCE(conversation_id, \(conversationID)),
                originator_conversation_id = CASE WHEN conversation_id IS NULL AND \(conversationID)::text IS NOT NULL
                    THEN NULLIF(\(originatorConversationID)::text, '') ELSE originator_conversation_id END,
                acknowledged_at = CASE WHEN conversation_id IS NULL AND \(conversationID)::text IS NOT NULL THEN now() ELSE acknowledged_at END,
                -- A timeout callback that overtook Daraja's answer has already said more: it stays unknown.
                next_check_at = CASE WHEN status = 'reserved' THEN now() + interval '120 seconds' ELSE next_check_at END,
                status = CASE WHEN status = 'reserved' THEN 'sent' ELSE status END
            WHERE id = \(id) AND status IN ('reserved', 'unknown')
            """
        )
    }

    /// Notes that a B2C attempt got no answer (a timeout, a 5xx, spike arrest): it may have been
    /// taken, so from now on only a result callback or a status answer can settle the payout.
    public func markPayoutOutcomeUnknown(_ id: String) async throws {
        try await self.postgres.query("UPDATE payouts SET outcome_unknown = true, updated_at = now() WHERE id = \(id) AND NOT outcome_unknown")
    }

    /// What became of a B2C request Daraja refused outright.
    public enum Refusal: Sendable, Hashable {
        /// No attempt's outcome was ever unknown: nothing was paid, the hold is released.
        case refunded
        /// An earlier attempt may have been paid: the hold stays until a result or a status answer.
        case keptForStatus
        /// Already settled (a result came meanwhile).
        case alreadyFinal
    }

    /// Daraja refused a B2C request outright. The hold is released only when no attempt of this
    /// payout ever had an unknown outcome; otherwise the refusal of a re-send proves nothing (the
    /// first attempt may have paid), the payout becomes `unknown` and the reconciler asks for its
    /// transaction status.
    public func refuseWithdrawal(_ id: String, code: Int, text: String) async throws -> Refusal {
        let kept = try await self.postgres.query(
            """
            UPDATE payouts SET status = 'unknown', result_text = \(text), next_check_at = now(), updated_at = now()
            WHERE id = \(id) AND outcome_unknown AND status IN ('reserved', 'sent', 'unknown') RETURNING id
            """
        )
        if !kept.isEmpty { return .keptForStatus }
        do {
            let payout = try await self.settle(id, outcome: .failed, raw: nil) { tx, payout in
                try await self.void(tx, payout, code: code, text: text, onlyIfOutcomeKnown: true)
            }
            switch payout.status {
            case .failed: return .refunded
            case .paid: return .alreadyFinal
            default: return .keptForStatus
            }
        } catch ProviderRecordError.conflict {
            return .alreadyFinal
        }
    }

    /// The B2C result says paid: the held money leaves for good. Idempotent; after a refund it is a
    /// ``ProviderRecordError/conflict(current:)`` and nothing moves.
    @discardableResult
    public func completeWithdrawal(_ id: String, providerTransactionID: String, raw: String? = nil) async throws -> Payout {
        try await self.settle(id, outcome: .paid, raw: raw) { tx, payout in
            try await tx.query("SELECT wallet_post_withdrawal(\(id))")
            try await tx.query(
                "UPDATE payouts SET status = 'paid', provider_transaction_id = \(providerTransactionID), result_code = 0, updated_at = now() WHERE id = \(id)"
            )
            var params = ["amount": String(payout.amount.cents), "receipt": providerTransactionID]
            let fee = try await tx.query("SELECT fee FROM payouts WHERE id = \(id)").single()?.decode(Int64.self, column: 0) ?? 0
            if fee > 0 { (params["fee"], params["reason"]) = (String(fee), "fee") }
            try await self.wallet.queueSMS(tx, to: payout.msisdn, template: "withdrawal_paid", params: params, dedupe: "withdrawal:\(id)")
            return .paid
        }
    }

    /// A result callback or a status answer says not paid: the hold is released, the money is
    /// spendable again. Idempotent; after a payment it is a ``ProviderRecordError/conflict(current:)``
    /// and nothing moves.
    @discardableResult
    public func failWithdrawal(_ id: String, code: Int, text: String, raw: String? = nil) async throws -> Payout {
        try await self.settle(id, outcome: .failed, raw: raw) { tx, payout in
            try await self.void(tx, payout, code: code, text: text, onlyIfOutcomeKnown: false)
        }
    }

    private func void(_ tx: PostgresConnection, _ payout: Payout, code: Int, text: String, onlyIfOutcomeKnown: Bool) async throws -> Payout.Status {
        if onlyIfOutcomeKnown, try await tx.query("SELECT 1 FROM payouts WHERE id = \(payout.id) AND outcome_unknown").first != nil {
            // An unknown outcome was noted since the caller looked: keep the hold.
            return payout.status
        }
        // The hold is released and the fee goes back with it (once: the refund's key is fixed).
        try await tx.query("SELECT wallet_void_withdrawal(\(payout.id))")
        try await tx.query("UPDATE payouts SET status = 'failed', result_code = \(code), result_text = \(text), updated_at = now() WHERE id = \(payout.id)")
        try await self.wallet.queueSMS(tx, to: payout.msisdn, template: "withdrawal_failed", params: ["amount": String(payout.amount.cents)], dedupe: "withdrawal:\(payout.id)")
        return .failed
    }

    /// A timeout: the outcome is unknown, so the hold stays until reconciliation says paid or not.
    @discardableResult
    public func markWithdrawalUnknown(_ id: String, raw: String? = nil) async throws -> Bool {
        var raw = raw
        if let body = raw { raw = try await self.sealingNames(body, reference: id, owner: .payout(id)) }
        return try await !self.postgres.query(
            """
            UPDATE payouts SET status = 'unknown', outcome_unknown = true, raw_result = COALESCE(\(raw)::jsonb, raw_result),
                next_check_at = now() + interval '60 seconds', updated_at = now()
            WHERE id = \(id) AND status IN ('reserved', 'sent', 'unknown') RETURNING id
            """
        ).isEmpty
    }

    /// Claims up to `limit` open payouts due for a check, as ``claimDepositsToCheck(limit:)`` does.
    /// `checks` is how many times each was claimed before, this time included. The claim (the next
    /// check's time) lasts at least `lease`: longer than the calls one check makes, so that no two
    /// replicas ever work one payout at once.
    public func claimPayoutsToCheck(limit: Int = 50, lease: Duration = .seconds(120)) async throws -> [(payout: Payout, checks: Int)] {
        try await self.postgres.query(
            """
            UPDATE payouts p SET checks = p.checks + 1,
                next_check_at = now() + greatest(make_interval(secs => \(Double(lease.components.seconds))),
                    least(interval '30 minutes', interval '60 seconds' * power(2, least(p.checks, 10))))
            WHERE p.id IN (
                SELECT id FROM payouts WHERE status IN ('reserved', 'sent', 'unknown')
                    AND COALESCE(next_check_at, created_at + interval '60 seconds') <= now()
                ORDER BY created_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING p.id, p.msisdn, p.amount, p.status, p.checks
            """
        ).map { row in
            let (id, msisdn, cents, status, checks) = try row.decode((String, String?, Int64, String, Int32).self)
            return (Payout(id: id, msisdn: msisdn.flatMap { MSISDN($0) }, amount: Amount(cents: cents), status: try Self.status(status)), Int(checks))
        }
    }

    /// Payouts still unsettled after `maxChecks` checks or older than `maxAge` stop being checked
    /// and wait for a person in `needs_review`, their hold kept (a late result still settles them).
    /// Returns them, each once.
    public func escalateUnsettledPayouts(maxChecks: Int, maxAge: Duration) async throws -> [Payout] {
        try await self.postgres.query(
            """
            UPDATE payouts SET status = 'needs_review', updated_at = now()
            WHERE status IN ('reserved', 'sent', 'unknown')
                AND (checks >= \(maxChecks) OR created_at < now() - make_interval(secs => \(Double(maxAge.components.seconds))))
            RETURNING id, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = payouts.customer_id)), amount, status
            """
        ).map(Self.payout)
    }

    /// The payout a transaction-status query sent before migration 0013 was for, by that query's
    /// id (derived from the payout's): its answer is not trusted, the payout is asked about again.
    public func payout(statusQueryID: String) async throws -> Payout? {
        try await self.postgres.query("SELECT id, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = payouts.customer_id)), amount, status FROM payouts WHERE status_query_id = \(statusQueryID)").single().map(Self.payout)
    }

    /// Notes the provider's reference of a payout known before it is sent (MoMo's `X-Reference-Id`,
    /// derived from the payout's id), so a callback that overtakes the request's own answer finds it.
    public func recordPayoutReference(_ id: String, reference: String) async throws {
        try await self.postgres.query("UPDATE payouts SET conversation_id = \(reference), updated_at = now() WHERE id = \(id) AND conversation_id IS NULL")
    }

    /// A payout by the provider's reference for it (`conversation_id`: Daraja's ConversationID,
    /// MoMo's `X-Reference-Id`), once it is known to have been sent.
    public func payout(conversationID: String) async throws -> Payout? {
        try await self.postgres.query("SELECT id, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = payouts.customer_id)), amount, status FROM payouts WHERE conversation_id = \(conversationID)").single().map(Self.payout)
    }

    public func payout(id: String) async throws -> Payout? {
        try await self.postgres.query("SELECT id, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = payouts.customer_id)), amount, status FROM payouts WHERE id = \(id)").single().map(Self.payout)
    }

    static func payout(_ row: PostgresRow) throws -> Payout {
        let (id, msisdn, cents, status) = try row.decode((String, String?, Int64, String).self)
        return Payout(id: id, msisdn: msisdn.flatMap { MSISDN($0) }, amount: Amount(cents: cents), status: try Self.status(status))
    }

    /// Applies a final B2C outcome (`paid` or `failed`) once: the same outcome again returns the
    /// payout; the opposite outcome after one was applied is a conflict for a human, never a second
    /// movement.
    private func settle(_ id: String, outcome: Payout.Status, raw: String?, _ apply: (PostgresConnection, Payout) async throws -> Payout.Status) async throws -> Payout {
        var raw = raw
        if let body = raw { raw = try await self.sealingNames(body, reference: id, owner: .payout(id)) }
        return try await self.postgres.transaction(maxAttempts: 5) { tx in
            guard let row = try await tx.query("SELECT id, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = payouts.customer_id)), amount, status FROM payouts WHERE id = \(id) FOR UPDATE").single() else {
                throw ProviderRecordError.unknownPayout
            }
            let payout = try Self.payout(row)
            let (payoutID, status) = (payout.id, payout.status)
            if status == .paid || status == .failed {
                guard status == outcome else { throw ProviderRecordError.conflict(current: status.rawValue) }
                return payout
            }
            let final = try await apply(tx, payout)
            if let raw { try await tx.query("UPDATE payouts SET raw_result = \(raw)::jsonb WHERE id = \(id)") }
            var settled = Payout(id: payoutID, msisdn: payout.msisdn, amount: payout.amount, status: final)
            settled.settledNow = final == outcome
            return settled
        }
    }
}
