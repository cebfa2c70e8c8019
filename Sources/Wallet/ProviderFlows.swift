import Foundation
import Postgres

/// A deposit by M-Pesa STK push, as the wallet records it.
public struct Deposit: Sendable, Hashable {
    public let id: Int64
    public let key: String
    public let msisdn: MSISDN
    public let amount: Amount
    public let status: String
    public let checkoutRequestID: String?
    public let receipt: String?
}

/// A withdrawal to M-Pesa (B2C): its id is our OriginatorConversationID.
public struct Payout: Sendable, Hashable {
    public let id: String
    public let msisdn: MSISDN
    public let amount: Amount
    public let status: String
}

/// One line of a mini statement.
public struct StatementEntry: Sendable, Hashable {
    public enum Direction: String, Sendable { case incoming = "in", outgoing = "out" }
    public let key: String
    public let kind: String
    public let direction: Direction
    public let amount: Amount
    /// The other customer of a send, when there is one.
    public let counterparty: MSISDN?
    public let at: Date
}

/// Why a provider callback could not be applied.
public enum ProviderRecordError: Error, Sendable, Hashable {
    case unknownDeposit
    case unknownPayout
    /// The callback's amount or phone differs from what was asked: nothing credited, flagged.
    case mismatch
    /// The payout was already settled the other way (e.g. success after failure): needs a human.
    case conflict(current: String)
}

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
                counterparty: counterparty.flatMap(MSISDN.init), at: at
            )
        }
    }

    // MARK: Deposits

    /// Records a deposit about to be requested by STK push. The same key returns the same deposit.
    public func beginDeposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> Deposit {
        guard self.limits.perTransaction.contains(amount.cents) else { throw WalletError.limitExceeded }
        let customer = try await self.customer(msisdn)
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

    /// Notes the CheckoutRequestID Daraja gave the STK push, by which its callback is matched.
    public func recordCheckout(depositID: Int64, checkoutRequestID: String) async throws {
        try await self.postgres.query(
            "UPDATE deposits SET checkout_request_id = \(checkoutRequestID), updated_at = now() WHERE id = \(depositID) AND checkout_request_id IS NULL"
        )
    }

    /// Credits a paid deposit exactly once, whatever number of times the callback arrives, and
    /// only when amount and phone match what was asked. Queues the SMS receipt in the same transaction.
    @discardableResult
    public func completeDeposit(checkoutRequestID: String, receipt: String, amount: Amount, phone: MSISDN, raw: String? = nil) async throws -> Deposit {
        // One round trip (`wallet_complete_deposit`, migration 0002). A mismatch is recorded on
        // the deposit and committed, then reported.
        let row = try await self.retryingTransient {
            try await self.postgres.query(
                """
                SELECT outcome, id, idempotency_key, msisdn, amount, status, checkout_request_id, receipt
                FROM wallet_complete_deposit(\(checkoutRequestID), \(receipt), \(amount.cents), \(phone.value), \(raw)::jsonb)
                """
            ).single()!
        }
        switch try row.decode(String.self, column: 0) {
        case "unknown": throw ProviderRecordError.unknownDeposit
        case "mismatch": throw ProviderRecordError.mismatch
        default:
            let (_, id, key, msisdn, cents, status, checkout, receipt) = try row.decode((String, Int64, String, String, Int64, String, String?, String?).self)
            return Deposit(id: id, key: key, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: status, checkoutRequestID: checkout, receipt: receipt)
        }
    }

    /// Marks a deposit the customer did not pay (cancelled, timed out, wrong PIN on the handset).
    public func failDeposit(checkoutRequestID: String, code: Int, text: String) async throws {
        try await self.postgres.query(
            """
            UPDATE deposits SET status = 'failed', result_code = \(code), result_text = \(text), updated_at = now()
            WHERE checkout_request_id = \(checkoutRequestID) AND status = 'pending'
            """
        )
    }

    // MARK: Withdrawals

    /// Holds the amount in a pending transfer (not spendable, not yet gone) and records the payout
    /// to send by B2C. The same key returns the same payout; a refused key keeps being refused.
    public func reserveWithdrawal(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> Payout {
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
                    """
                    SELECT a.id, a.balance - a.held, c.id, c.status FROM accounts a JOIN customers c ON c.id = a.customer_id
                    WHERE c.msisdn = \(msisdn.value) AND a.kind = 'main' FOR UPDATE OF a
                    """
                ).single() else { return .failure(.notRegistered) }
                let (accountID, available, customerID, status) = try account.decode((Int64, Int64, Int64, String).self)
                var refusal: WalletError?
                if status != "active" { refusal = .notRegistered }
                else if !self.limits.perTransaction.contains(amount.cents) { refusal = .limitExceeded }
                else {
                    let today = try await self.debitsToday(tx, account: accountID)
                    if today + amount.cents > self.limits.daily { refusal = .limitExceeded }
                    else if available < amount.cents { refusal = .insufficientFunds }
                }
                if let refusal {
                    try await tx.query(
                        "INSERT INTO failed_transfers (id, fingerprint, error) VALUES (\(transferID), \(fingerprint), \(refusal.code)) ON CONFLICT (id) DO NOTHING"
                    )
                    return .failure(refusal)
                }
                try await tx.query(
                    """
                    INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
                    SELECT \(transferID), \(accountID), p.id, \(amount.cents), 'withdrawal', 'pending', jsonb_build_object('fingerprint', \(fingerprint)::text)
                    FROM accounts p WHERE p.customer_id IS NULL AND p.kind = 'payouts_in_flight'
                    """
                )
                try await tx.query(
                    "INSERT INTO payouts (id, customer_id, msisdn, amount, transfer_id) VALUES (\(key.value), \(customerID), \(msisdn.value), \(amount.cents), \(transferID))"
                )
                return .success(Payout(id: key.value, msisdn: msisdn, amount: amount, status: "reserved"))
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

    /// Notes that the B2C request went out (its ConversationID), keeping the hold.
    public func markWithdrawalSent(_ id: String, conversationID: String) async throws {
        try await self.postgres.query(
            "UPDATE payouts SET status = 'sent', conversation_id = \(conversationID), updated_at = now() WHERE id = \(id) AND status IN ('reserved', 'unknown')"
        )
    }

    /// The B2C result says paid: the held money leaves for good. Idempotent.
    @discardableResult
    public func completeWithdrawal(_ id: String, providerTransactionID: String) async throws -> Payout {
        try await self.settle(id) { tx, payout in
            try await tx.query("UPDATE transfers SET status = 'posted' WHERE id = \(("withdrawal:" + id))")
            try await tx.query(
                "UPDATE payouts SET status = 'paid', provider_transaction_id = \(providerTransactionID), result_code = 0, updated_at = now() WHERE id = \(id)"
            )
            try await self.queueSMS(tx, to: payout.msisdn, template: "withdrawal_paid", params: ["amount": String(payout.amount.cents), "receipt": providerTransactionID], dedupe: "withdrawal:\(id)")
            return "paid"
        }
    }

    /// The B2C result says not paid: the hold is released, the money is spendable again. Idempotent.
    @discardableResult
    public func failWithdrawal(_ id: String, code: Int, text: String) async throws -> Payout {
        try await self.settle(id) { tx, payout in
            try await tx.query("UPDATE transfers SET status = 'voided' WHERE id = \(("withdrawal:" + id))")
            try await tx.query("UPDATE payouts SET status = 'failed', result_code = \(code), result_text = \(text), updated_at = now() WHERE id = \(id)")
            try await self.queueSMS(tx, to: payout.msisdn, template: "withdrawal_failed", params: ["amount": String(payout.amount.cents)], dedupe: "withdrawal:\(id)")
            return "failed"
        }
    }

    /// A timeout: the outcome is unknown, so the hold stays until reconciliation says paid or not.
    public func markWithdrawalUnknown(_ id: String) async throws {
        try await self.postgres.query("UPDATE payouts SET status = 'unknown', updated_at = now() WHERE id = \(id) AND status IN ('reserved', 'sent')")
    }

    public func payout(id: String) async throws -> Payout? {
        try await self.postgres.query("SELECT id, msisdn, amount, status FROM payouts WHERE id = \(id)").single().map { row in
            let (id, msisdn, cents, status) = try row.decode((String, String, Int64, String).self)
            return Payout(id: id, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: status)
        }
    }

    /// Applies a final B2C outcome once: the same outcome again returns the payout; the opposite
    /// outcome after one was applied is a conflict for a human, never a second movement.
    private func settle(_ id: String, _ apply: (PostgresConnection, Payout) async throws -> String) async throws -> Payout {
        try await self.postgres.transaction(maxAttempts: 5) { tx in
            guard let row = try await tx.query("SELECT id, msisdn, amount, status FROM payouts WHERE id = \(id) FOR UPDATE").single() else {
                throw ProviderRecordError.unknownPayout
            }
            let (payoutID, msisdn, cents, status) = try row.decode((String, String, Int64, String).self)
            let payout = Payout(id: payoutID, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: status)
            if status == "paid" || status == "failed" {
                return payout
            }
            let final = try await apply(tx, payout)
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
        let json = String(decoding: try JSONSerialization.data(withJSONObject: params, options: [.sortedKeys]), as: UTF8.self)
        try await tx.query(
            """
            INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
            SELECT 'sms', \(msisdn.value), c.language, \(template), \(json)::jsonb, \(dedupe) FROM customers c WHERE c.msisdn = \(msisdn.value)
            ON CONFLICT (dedupe_key) DO NOTHING
            """
        )
    }

    static func deposit(_ row: PostgresRow) throws -> Deposit {
        let (id, key, msisdn, cents, status, checkout, receipt) = try row.decode((Int64, String, String, Int64, String, String?, String?).self)
        return Deposit(id: id, key: key, msisdn: MSISDN(msisdn)!, amount: Amount(cents: cents), status: status, checkoutRequestID: checkout, receipt: receipt)
    }
}
