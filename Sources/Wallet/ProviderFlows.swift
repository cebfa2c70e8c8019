import Basics
import Foundation
import Postgres

extension Wallet {
    // MARK: Statement

    /// The last `limit` posted or pending movements of a customer's main and savings accounts.
    public func statement(_ msisdn: MSISDN, limit: Int = 5) async throws -> [StatementEntry] {
        let customer = try await self.customer(msisdn)
        let rows = try await self.postgres.query(
            """
            SELECT t.id, t.kind, t.amount, t.created_at, da.customer_id = \(customer.id) AND da.kind = 'main' AS outgoing,
                   CASE WHEN t.kind = 'p2p' THEN (SELECT c.msisdn FROM customers c WHERE c.id =
                       CASE WHEN da.customer_id = \(customer.id) THEN ca.customer_id ELSE da.customer_id END) END
            FROM transfers t
            JOIN accounts da ON da.id = t.debit_account
            JOIN accounts ca ON ca.id = t.credit_account
            WHERE (da.customer_id = \(customer.id) OR ca.customer_id = \(customer.id)) AND t.status <> 'voided'
            ORDER BY t.created_at DESC, t.id DESC
            LIMIT \(limit)
            """
        )
        return try rows.map { row in
            let (key, kind, cents, at, outgoing, counterparty) = try row.decode((String, String, Int64, Date, Bool, String?).self)
            return StatementEntry(
                key: key, kind: kind, direction: outgoing ? .outgoing : .incoming, amount: Amount(cents: cents),
                counterparty: counterparty.flatMap { MSISDN($0) }, at: at
            )
        }
    }

    // MARK: Deposits

    /// Records a deposit about to be requested by STK push. The same key returns the same deposit.
    public func beginDeposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> Deposit {
        guard self.limits.perTransaction.contains(amount.cents) else { throw WalletError.limitExceeded }
        let customer = try await self.customer(msisdn)
        if customer.isBlocked { throw WalletError.blocked }
        // The tier's per-transaction limit, and its maximum balance counting what is already in the
        // wallet (a deposit already paid is always credited: the check is made before the push).
        guard try await self.tierHasRoom(customer.id, for: amount) else { throw WalletError.limitExceeded }
        let row = try await self.postgres.query(
            """
            INSERT INTO deposits (idempotency_key, customer_id, msisdn, amount) VALUES (\(key.value), \(customer.id), \(msisdn.value), \(amount.cents))
            ON CONFLICT (idempotency_key) DO UPDATE SET updated_at = deposits.updated_at
            RETURNING id, idempotency_key, msisdn, amount, status, checkout_request_id, receipt
            """
        ).single()!
        let deposit = try Self.deposit(row)
        guard deposit.msisdn == msisdn, deposit.amount == amount else { throw WalletError.idempotencyKeyReused }
        return deposit
    }

    /// Whether the customer's KYC tier takes a deposit of `amount`: its per-transaction limit, and
    /// its maximum balance counting what is already in the wallet.
    func tierHasRoom(_ customer: Int64, for amount: Amount) async throws -> Bool {
        try await self.postgres.withConnection { connection -> Bool in
            guard let tier = try await self.tierLimits(connection, customer: customer) else { return true }
            let held = try await connection.query("SELECT coalesce(sum(balance), 0)::bigint FROM accounts WHERE customer_id = \(customer)").single()!
                .decode(Int64.self, column: 0)
            let (total, overflow) = held.addingReportingOverflow(amount.cents)
            return amount.cents <= tier.perTransaction && !overflow && total <= (tier.maxBalance ?? .max)
        }
    }

    /// Notes the CheckoutRequestID Daraja gave the STK push, by which its callback is matched.
    public func recordCheckout(depositID: Int64, checkoutRequestID: String) async throws {
        try await self.postgres.query(
            """
            UPDATE deposits SET checkout_request_id = \(checkoutRequestID), next_check_at = now() + interval '60 seconds', updated_at = now()
            WHERE id = \(depositID) AND checkout_request_id IS NULL
            """
        )
    }

    /// How long after its push a deposit whose push was never answered can still be matched to a
    /// payment naming an unknown CheckoutRequestID; the reconciler fails it only after this.
    public static let unconfirmedPushWindow = Duration.seconds(600)

    /// Matches a paid STK callback whose CheckoutRequestID we never learnt (Daraja's answer to the
    /// push was lost to a timeout or a crash, or is still on its way) to its deposit: the one
    /// pending deposit of that phone and amount from the last ``unconfirmedPushWindow`` still
    /// without a CheckoutRequestID. A push Daraja refused is failed at once and never matches.
    /// Two or more such deposits are ambiguous and nothing is matched; the callback then goes to
    /// review. The match is not a credit: the receipt waits on the deposit, which is due for an
    /// STK Query at once, and only a query that says paid credits it. Returns the deposit.
    public func adoptUnconfirmedDeposit(checkoutRequestID: String, phone: MSISDN, amount: Amount, receipt: String, raw: String) async throws -> Deposit? {
        try await self.postgres.query(
            """
            WITH candidates AS (
                SELECT id FROM deposits
                WHERE msisdn = \(phone.value) AND amount = \(amount.cents) AND checkout_request_id IS NULL AND status = 'pending'
                    AND created_at > now() - make_interval(secs => \(Double(Self.unconfirmedPushWindow.components.seconds)))
                FOR UPDATE
            )
            UPDATE deposits SET checkout_request_id = \(checkoutRequestID), callback_receipt = \(receipt), raw_callback = \(raw)::jsonb,
                next_check_at = now(), updated_at = now()
            WHERE id = (SELECT min(id) FROM candidates) AND (SELECT count(*) FROM candidates) = 1
                AND NOT EXISTS (SELECT 1 FROM deposits WHERE checkout_request_id = \(checkoutRequestID))
            RETURNING id, idempotency_key, msisdn, amount, status, checkout_request_id, receipt
            """
        ).single().map(Self.deposit)
    }

    /// The receipt a paid callback named for a deposit still awaiting an STK Query's confirmation.
    public func callbackReceipt(depositID: Int64) async throws -> String? {
        try await self.postgres.query("SELECT callback_receipt FROM deposits WHERE id = \(depositID)").single()?.decode(String?.self, column: 0)
    }

    /// Credits a paid deposit exactly once, whatever number of times the callback arrives, and
    /// only when amount and phone match what was asked. Queues the SMS receipt in the same transaction.
    @discardableResult
    /// A deposit matched to a payment by phone and amount (``adoptUnconfirmedDeposit``) is credited
    /// only when `confirmedByQuery`; a callback alone gets ``ProviderRecordError/awaitingQuery``.
    public func completeDeposit(
        checkoutRequestID: String, receipt: String?, amount: Amount, phone: MSISDN, raw: String? = nil, confirmedByQuery: Bool = false
    ) async throws -> Deposit {
        // One round trip (`wallet_complete_deposit`, migration 0002), shared with concurrent
        // completions (group commit, migration 0010). A mismatch is recorded on the deposit and
        // committed, then reported.
        let row = try await self.completions.submit(
            DepositCompletion(c: checkoutRequestID, r: receipt, a: amount.cents, p: phone.value, raw: raw, q: confirmedByQuery)
        )
        switch try row.decode(String.self, column: 0) {
        case "unknown": throw ProviderRecordError.unknownDeposit
        case "mismatch": throw ProviderRecordError.mismatch
        case "awaiting_query": throw ProviderRecordError.awaitingQuery
        case "conflict":
            let (status, known) = (try row.decode(String.self, column: 5), try row.decode(String?.self, column: 7))
            throw ProviderRecordError.conflict(current: status == "completed" ? "credited under receipt \(known ?? "-")" : "failed (\(known ?? "-"))")
        default:
            let (_, id, key, msisdn, cents, status, checkout, receipt) = try row.decode((String, Int64, String, String, Int64, String, String?, String?).self)
            return Deposit(id: id, key: key, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: try Self.status(status), checkoutRequestID: checkout, receipt: receipt)
        }
    }

    /// One completion in its own transaction, retried on transient failures.
    static func completeDepositOne(_ call: DepositCompletion, postgres: PostgresClient) async throws -> PostgresRow {
        try await Self.retryingTransient {
            try await postgres.query(
                """
                SELECT outcome, id, idempotency_key, msisdn, amount, status, checkout_request_id, receipt
                FROM wallet_complete_deposit(\(call.c), \(call.r), \(call.a), \(call.p), \(call.raw)::jsonb, \(call.q))
                """
            ).single()!
        }
    }

    /// Several completions in one statement and one commit, their rows in the same order.
    static func completeDepositBatch(_ calls: [DepositCompletion], postgres: PostgresClient) async throws -> [PostgresRow] {
        let batch = String(decoding: try JSONEncoder().encode(calls), as: UTF8.self)
        return Array(
            try await postgres.query(
                """
                SELECT outcome, id, idempotency_key, msisdn, amount, status, checkout_request_id, receipt
                FROM wallet_complete_deposit_batch(\(batch)::jsonb)
                """
            )
        )
    }

    /// Marks a deposit the customer did not pay (cancelled, timed out, wrong PIN on the handset)
    /// and queues the SMS that says so, once. A deposit already completed or failed is left as it
    /// is (a final state never changes); false then, or when no deposit has that id.
    /// A deposit whose push never got a CheckoutRequestID is named by its id (refused, or never
    /// answered).
    @discardableResult
    public func failDeposit(_ reference: DepositReference, code: Int, text: String, raw: String? = nil) async throws -> Bool {
        try await self.postgres.transaction(maxAttempts: 5) { tx in
            let rows: PostgresRows
            switch reference {
            case .id(let id):
                rows = try await tx.query(
                    """
                    UPDATE deposits SET status = 'failed', result_code = \(code), result_text = \(text), updated_at = now()
                    WHERE id = \(id) AND status = 'pending' RETURNING id, msisdn, amount
                    """
                )
            case .checkout(let checkout):
                rows = try await tx.query(
                    """
                    UPDATE deposits SET status = 'failed', result_code = \(code), result_text = \(text), raw_callback = COALESCE(\(raw)::jsonb, raw_callback), updated_at = now()
                    WHERE checkout_request_id = \(checkout) AND status = 'pending' RETURNING id, msisdn, amount
                    """
                )
            }
            guard let row = rows.first else { return false }
            let (id, msisdn, cents) = try row.decode((Int64, String, Int64).self)
            try await self.queueSMS(
                tx, to: MSISDN(msisdn)!, template: "deposit_failed", params: ["amount": String(cents), "reason": DepositFailure(code: code).rawValue],
                // Not the credit's key ('deposit:<id>'): a payment that still arrives after this
                // notice credits the deposit, and its receipt must not be swallowed.
                dedupe: "deposit-failed:\(id)"
            )
            return true
        }
    }

    /// A deposit as the wallet has it, by its CheckoutRequestID.
    public func deposit(checkoutRequestID: String) async throws -> Deposit? {
        try await self.postgres.query(
            "SELECT id, idempotency_key, msisdn, amount, status, checkout_request_id, receipt FROM deposits WHERE checkout_request_id = \(checkoutRequestID)"
        ).single().map(Self.deposit)
    }

    /// A deposit as the wallet has it, by id.
    public func deposit(id: Int64) async throws -> Deposit? {
        try await self.postgres.query(
            "SELECT id, idempotency_key, msisdn, amount, status, checkout_request_id, receipt FROM deposits WHERE id = \(id)"
        ).single().map(Self.deposit)
    }

    /// Claims up to `limit` pending deposits due for a check (first 60 s after the push, then
    /// backing off to 30 minutes), so that replicas never check the same one at once: the rows are
    /// taken with `FOR UPDATE SKIP LOCKED` and their next check is pushed back in the same statement.
    /// The claim lasts at least `lease` (longer than the query a check makes).
    public func claimDepositsToCheck(limit: Int = 50, lease: Duration = .seconds(120)) async throws -> [Deposit] {
        try await self.postgres.query(
            """
            UPDATE deposits d SET checks = d.checks + 1,
                next_check_at = now() + greatest(make_interval(secs => \(Double(lease.components.seconds))),
                    least(interval '30 minutes', interval '60 seconds' * power(2, least(d.checks, 10))))
            WHERE d.id IN (
                SELECT id FROM deposits WHERE status = 'pending' AND COALESCE(next_check_at, created_at + interval '60 seconds') <= now()
                ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING d.id, d.idempotency_key, d.msisdn, d.amount, d.status, d.checkout_request_id, COALESCE(d.receipt, d.callback_receipt)
            """
        ).map(Self.deposit)
    }

    /// Whether a pending deposit without a CheckoutRequestID is past the window in which a payment
    /// for it may still be matched (``unconfirmedPushWindow``): only then may it be failed.
    public func isPastUnconfirmedWindow(_ deposit: Deposit) async throws -> Bool {
        try await self.postgres.query(
            "SELECT created_at < now() - make_interval(secs => \(Double(Self.unconfirmedPushWindow.components.seconds))) FROM deposits WHERE id = \(deposit.id)"
        ).single()?.decode(Bool.self, column: 0) ?? false
    }

    // MARK: Withdrawals

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
        let fingerprint = "withdrawal|\(msisdn)|\(amount.cents)"
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
        if status == Customer.Status.suspended.rawValue { return .blocked }
        if status != Customer.Status.active.rawValue { return .notRegistered }
        if !self.limits.perTransaction.contains(amount.cents) { return .limitExceeded }
        let tier = try await self.tierLimits(tx, customer: customer)
        if let tier, amount.cents > tier.perTransaction { return .limitExceeded }
        let (total, overflow) = try await self.debitsToday(tx, account: account).addingReportingOverflow(amount.cents)
        if overflow || total > min(self.limits.daily, tier?.daily ?? .max) { return .limitExceeded }
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
            try await self.queueSMS(tx, to: payout.msisdn, template: "withdrawal_paid", params: params, dedupe: "withdrawal:\(id)")
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
        try await self.queueSMS(tx, to: payout.msisdn, template: "withdrawal_failed", params: ["amount": String(payout.amount.cents)], dedupe: "withdrawal:\(payout.id)")
        return .failed
    }

    /// A timeout: the outcome is unknown, so the hold stays until reconciliation says paid or not.
    @discardableResult
    public func markWithdrawalUnknown(_ id: String, raw: String? = nil) async throws -> Bool {
        try await !self.postgres.query(
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
            let (id, msisdn, cents, status, checks) = try row.decode((String, String, Int64, String, Int32).self)
            return (Payout(id: id, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: try Self.status(status)), Int(checks))
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
            RETURNING id, msisdn, amount, status
            """
        ).map(Self.payout)
    }

    /// The payout a transaction-status query sent before migration 0013 was for, by that query's
    /// id (derived from the payout's): its answer is not trusted, the payout is asked about again.
    public func payout(statusQueryID: String) async throws -> Payout? {
        try await self.postgres.query("SELECT id, msisdn, amount, status FROM payouts WHERE status_query_id = \(statusQueryID)").single().map(Self.payout)
    }

    public func payout(id: String) async throws -> Payout? {
        try await self.postgres.query("SELECT id, msisdn, amount, status FROM payouts WHERE id = \(id)").single().map(Self.payout)
    }

    static func payout(_ row: PostgresRow) throws -> Payout {
        let (id, msisdn, cents, status) = try row.decode((String, String, Int64, String).self)
        return Payout(id: id, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: try Self.status(status))
    }

    /// Applies a final B2C outcome (`paid` or `failed`) once: the same outcome again returns the
    /// payout; the opposite outcome after one was applied is a conflict for a human, never a second
    /// movement.
    private func settle(_ id: String, outcome: Payout.Status, raw: String?, _ apply: (PostgresConnection, Payout) async throws -> Payout.Status) async throws -> Payout {
        try await self.postgres.transaction(maxAttempts: 5) { tx in
            guard let row = try await tx.query("SELECT id, msisdn, amount, status FROM payouts WHERE id = \(id) FOR UPDATE").single() else {
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
            return Payout(id: payoutID, msisdn: payout.msisdn, amount: payout.amount, status: final)
        }
    }

    // MARK: Outbox

    /// Queues an SMS to a customer, in their language, once per `dedupe` key (e.g. the result of a
    /// USSD action that finished after its session had to end).
    public func queueNotice(_ msisdn: MSISDN, template: String, params: [String: String], dedupe: String) async throws {
        try await self.postgres.withConnection { connection in
            try await self.queueSMS(connection, to: msisdn, template: template, params: params, dedupe: dedupe)
        }
    }

    /// Queues an SMS in the caller's transaction, once per `dedupe` key.
    func queueSMS(_ tx: PostgresConnection, to msisdn: MSISDN, template: String, params: [String: String], dedupe: String) async throws {
        try await Outbox.queue(tx, notice: template, to: msisdn, params: params, dedupe: dedupe)
    }

    /// A status column read back into its enum; a value the schema's CHECK does not allow is a
    /// corrupt row, never a guess.
    static func status<Status: RawRepresentable>(_ text: String) throws -> Status where Status.RawValue == String {
        guard let status = Status(rawValue: text) else { throw ProviderRecordError.corrupt("status \(text)") }
        return status
    }

    static func deposit(_ row: PostgresRow) throws -> Deposit {
        let (id, key, msisdn, cents, status, checkout, receipt) = try row.decode((Int64, String, String, Int64, String, String?, String?).self)
        return Deposit(id: id, key: key, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: try Self.status(status), checkoutRequestID: checkout, receipt: receipt)
    }
}

extension Wallet {
    /// Keeps a provider report for a human to review; the provider is still answered 200. A
    /// conflict names the deposit or payout it concerns and both results.
    public func keepForReview(
        kind: String, reference: String, reason: String, body: String, depositID: Int64? = nil, payoutID: String? = nil,
        earlierResult: String? = nil, newResult: String? = nil
    ) async throws {
        try await self.postgres.query(
            """
            INSERT INTO mpesa_review (kind, reference, reason, body, deposit_id, payout_id, earlier_result, new_result)
            VALUES (\(kind), \(reference), \(reason), \(body)::jsonb, \(depositID), \(payoutID), \(earlierResult), \(newResult))
            """
        )
    }

    /// Reports kept for review, newest first: the open ones, or all with how each was resolved.
    public func reviewItems(limit: Int = 50, openOnly: Bool = true) async throws -> [ReviewItem] {
        try await self.postgres.query(
            """
            SELECT id, kind, reference, reason, deposit_id, payout_id, earlier_result, new_result, received_at, resolution, resolved_by, resolution_note
            FROM mpesa_review WHERE \(unescaped: openOnly ? "resolution IS NULL" : "true") ORDER BY id DESC LIMIT \(max(1, min(limit, 10_000)))
            """
        ).map { row in
            let (id, kind, reference, reason, deposit, payout, earlier, new, at, resolution, resolvedBy, note) = try row.decode(
                (Int64, String, String, String, Int64?, String?, String?, String?, Date, String?, String?, String?).self
            )
            return ReviewItem(
                id: id, kind: kind, reference: reference, reason: reason, depositID: deposit, payoutID: payout, earlierResult: earlier,
                newResult: new, receivedAt: at, resolution: resolution, resolvedBy: resolvedBy, resolutionNote: note
            )
        }
    }
}
