import Wallet
import Basics
import Foundation
import Postgres

/// Deposits: money a customer pays in through the mobile-money provider, credited once.
extension MPesaBook {
    /// Records a deposit about to be requested by STK push. The same key returns the same deposit.
    public func beginDeposit(_ msisdn: MSISDN, amount: Amount, key: IdempotencyKey) async throws -> Deposit {
        guard self.wallet.limits.perTransaction.contains(amount.cents) else { throw WalletError.limitExceeded }
        let customer = try await self.wallet.customer(msisdn)
        if customer.isBlocked { throw WalletError.blocked }
        // The tier's per-transaction limit, and its maximum balance counting what is already in the
        // wallet (a deposit already paid is always credited: the check is made before the push).
        guard try await self.tierHasRoom(customer.id, for: amount) else { throw WalletError.limitExceeded }
        let row = try await self.postgres.query(
            """
            INSERT INTO deposits (idempotency_key, customer_id, msisdn, amount) VALUES (\(key.value), \(customer.id), \(msisdn.value), \(amount.cents))
            ON CONFLICT (idempotency_key) DO UPDATE SET updated_at = deposits.updated_at
            RETURNING id, idempotency_key, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = deposits.customer_id)), amount, status, checkout_request_id, receipt
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
            guard let tier = try await self.wallet.tierLimits(connection, customer: customer) else { return true }
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
        // Sealed for the number's customer: the deposit this adopts is theirs (it is not yet known by
        // its CheckoutRequestID).
        let raw = try await self.sealingNames(raw, reference: checkoutRequestID, owner: .customerNumbered(phone))
        return try await self.postgres.query(
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
            RETURNING id, idempotency_key, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = deposits.customer_id)), amount, status, checkout_request_id, receipt
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
        // committed, then reported. The body's phone number is sealed for the deposit's customer.
        var raw = raw
        if let body = raw { raw = try await self.sealingNames(body, reference: checkoutRequestID, owner: .deposit(checkoutRequestID)) }
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
            let (outcome, id, key, msisdn, cents, status, checkout, receipt) = try row.decode((String, Int64, String, String?, Int64, String, String?, String?).self)
            var deposit = Deposit(
                id: id, key: key, msisdn: msisdn.flatMap { MSISDN($0) }, amount: Amount(cents: cents), status: try Self.status(status), checkoutRequestID: checkout,
                receipt: receipt)
            deposit.creditedNow = outcome == "credited"
            return deposit
        }
    }

    /// One completion in its own transaction, retried on transient failures.
    static func completeDepositOne(_ call: DepositCompletion, postgres: PostgresClient) async throws -> PostgresRow {
        try await Wallet.retryingTransient {
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
        var raw = raw
        if let body = raw, case .checkout(let checkout) = reference { raw = try await self.sealingNames(body, reference: checkout, owner: .deposit(checkout)) }
        return try await self.postgres.transaction(maxAttempts: 5) { tx in
            let rows: PostgresRows
            switch reference {
            case .id(let id):
                rows = try await tx.query(
                    """
                    UPDATE deposits SET status = 'failed', result_code = \(code), result_text = \(text), updated_at = now()
                    WHERE id = \(id) AND status = 'pending' RETURNING id, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = deposits.customer_id)), amount
                    """
                )
            case .checkout(let checkout):
                rows = try await tx.query(
                    """
                    UPDATE deposits SET status = 'failed', result_code = \(code), result_text = \(text), raw_callback = COALESCE(\(raw)::jsonb, raw_callback), updated_at = now()
                    WHERE checkout_request_id = \(checkout) AND status = 'pending' RETURNING id, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = deposits.customer_id)), amount
                    """
                )
            }
            guard let row = rows.first else { return false }
            let (id, msisdn, cents) = try row.decode((Int64, String?, Int64).self)
            try await self.wallet.queueSMS(
                tx, to: msisdn.flatMap { MSISDN($0) }, template: "deposit_failed", params: ["amount": String(cents), "reason": DepositFailure(code: code).rawValue],
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
            "SELECT id, idempotency_key, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = deposits.customer_id)), amount, status, checkout_request_id, receipt FROM deposits WHERE checkout_request_id = \(checkoutRequestID)"
        ).single().map(Self.deposit)
    }

    /// A deposit as the wallet has it, by id.
    public func deposit(id: Int64) async throws -> Deposit? {
        try await self.postgres.query(
            "SELECT id, idempotency_key, COALESCE(msisdn, (SELECT c.msisdn FROM customers c WHERE c.id = deposits.customer_id)), amount, status, checkout_request_id, receipt FROM deposits WHERE id = \(id)"
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
}
