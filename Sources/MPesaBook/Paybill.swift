import Wallet
import Basics
import Foundation
import Postgres

/// Paybill deposits (M-Pesa C2B, migrations 0012 and 0013): a customer pays the wallet's paybill
/// with their number as the account. Validation (when Safaricom has it on for the shortcode) asks
/// whether to take a payment; confirmation says it was made, but only Safaricom's Transaction
/// Status answer makes it so: a confirmation is recorded, and money moves once that answer
/// confirms it. Each payment is one M-Pesa TransID.
extension MPesaBook {
    /// What the validation URL should answer.
    public enum PaybillCheck: Sendable, Equatable {
        case accept(customerID: Int64)
        /// The account names no customer of ours (or a blocked one): `C2B00012`.
        case unknownAccount
        /// Outside the per-payment limits, or past the customer's tier's maximum balance: `C2B00013`.
        case amountRefused
    }

    /// What a confirmation did.
    public enum PaybillConfirmation: Sendable, Equatable {
        /// Recorded now: nothing moves until Safaricom's Transaction Status answer confirms it.
        case recorded
        /// This TransID was confirmed before (a repeat): its verification is under way or done, in
        /// this state (`verifying`, `credited`, `suspense`, `refused`, `unverified`).
        case repeated(state: String)
    }

    /// Whether a payment of `amount` to the account `msisdn` (nil: the account is no number) may be
    /// taken, and the answer recorded against its TransID. A repeated validation of the same
    /// TransID gets the same answer.
    /// `maximum` is the paybill's own limit (`MPESA_C2B_MAX_AMOUNT`).
    public func validatePaybill(transID: String, billRef: String, msisdn: MSISDN?, amount: Amount, maximum: Amount? = nil) async throws -> PaybillCheck {
        let check = try await self.paybillCheck(msisdn, amount: amount, maximum: maximum)
        let (validation, code, customer): (String, String?, Int64?)
        switch check {
        case .accept(let id): (validation, code, customer) = ("accepted", nil, id)
        case .unknownAccount: (validation, code, customer) = ("rejected", "C2B00012", nil)
        case .amountRefused: (validation, code, customer) = ("rejected", "C2B00013", nil)
        }
        let row = try await self.postgres.query(
            """
            INSERT INTO paybill_payments (trans_id, bill_ref, customer_id, amount, validation, rejection_code, validated_at)
            VALUES (\(transID), \(billRef), \(customer), \(amount.cents), \(validation), \(code), now())
            ON CONFLICT (trans_id) DO UPDATE SET trans_id = paybill_payments.trans_id
            RETURNING validation, rejection_code, customer_id
            """
        ).single()!
        // The first answer stands: Safaricom acts on it, whatever a repeat would say now.
        switch try row.decode((String?, String?, Int64?).self) {
        case ("accepted", _, let id?): return .accept(customerID: id)
        case (_, "C2B00013", _): return .amountRefused
        case ("rejected", _, _): return .unknownAccount
        default: return check
        }
    }

    func paybillCheck(_ msisdn: MSISDN?, amount: Amount, maximum: Amount?) async throws -> PaybillCheck {
        guard let msisdn else { return .unknownAccount }
        let customer: Wallet.Customer
        do {
            customer = try await self.wallet.customer(msisdn)
        } catch WalletError.notRegistered {
            return .unknownAccount
        }
        if customer.isBlocked { return .unknownAccount }
        guard self.wallet.limits.perTransaction.contains(amount.cents), amount.cents <= maximum?.cents ?? .max else { return .amountRefused }
        return try await self.tierHasRoom(customer.id, for: amount) ? .accept(customerID: customer.id) : .amountRefused
    }

    /// Records a paybill confirmation, once per TransID, and credits nothing: the confirmation is a
    /// claim until Safaricom's Transaction Status answer confirms it (``creditVerifiedPaybill``).
    /// The first confirmation names the account (`msisdn`, nil when it is no number), the amount and
    /// the paybill; a repeat changes none of them. A repeat that names another amount is kept for
    /// review (once), since one of the two reports is not Safaricom's.
    public func recordPaybillConfirmation(
        transID: String, billRef: String, shortcode: String, msisdn: MSISDN?, amount: Amount, raw: String
    ) async throws -> PaybillConfirmation {
        // The payer's names sealed for the account's customer (the month's key for nobody known).
        let raw = try await self.sealingNames(raw, reference: transID, owner: .number(msisdn))
        let outcome = try await self.postgres.transaction(maxAttempts: 5) { tx -> (PaybillConfirmation, (Int64, String)?) in
            func earlier() async throws -> (state: String?, confirmed: Int64?)? {
                try await tx.query("SELECT state, confirmed_amount FROM paybill_payments WHERE trans_id = \(transID) FOR UPDATE").single()
                    .map { try $0.decode((String?, Int64?).self) }
            }
            func repeated(_ state: String, _ confirmed: Int64?) -> (PaybillConfirmation, (Int64, String)?) {
                (.repeated(state: state), confirmed.flatMap { $0 == amount.cents ? nil : ($0, state) })
            }
            var row = try await earlier()
            if let row, let state = row.state { return repeated(state, row.confirmed) }
            let customer = try await msisdn.asyncFlatMap { msisdn in
                try await tx.query("SELECT id FROM customers WHERE msisdn = \(msisdn.value)").single()?.decode(Int64.self, column: 0)
            }
            if row == nil {
                let inserted = try await tx.query(
                    """
                    INSERT INTO paybill_payments (trans_id, bill_ref, customer_id, amount, confirmed_amount, confirmed_at, state, shortcode, confirmation, next_check_at)
                    VALUES (\(transID), \(billRef), \(customer), \(amount.cents), \(amount.cents), now(), 'verifying', \(shortcode), \(raw)::jsonb,
                            now() + interval '60 seconds')
                    ON CONFLICT (trans_id) DO NOTHING RETURNING trans_id
                    """
                )
                if !inserted.isEmpty { return (.recorded, nil) }
                // A copy of this callback (or its validation) inserted it meanwhile, and committed.
                row = try await earlier()
                if let row, let state = row.state { return repeated(state, row.confirmed) }
            }
            // Validated before, confirmed now: the confirmation names the account and the amount.
            try await tx.query(
                """
                UPDATE paybill_payments SET bill_ref = \(billRef), customer_id = \(customer), confirmed_amount = \(amount.cents), confirmed_at = now(),
                    state = 'verifying', shortcode = \(shortcode), confirmation = \(raw)::jsonb, next_check_at = now() + interval '60 seconds'
                WHERE trans_id = \(transID)
                """
            )
            return (.recorded, nil)
        }
        if let (confirmed, state) = outcome.1 {
            try await self.keepForReviewOnce(
                kind: "c2b", reference: transID, reason: ReviewItem.conflict, body: raw,
                earlierResult: "paybill confirmation: KES \(Amount(cents: confirmed)) (\(state))",
                newResult: "paybill confirmation again: KES \(amount)"
            )
        }
        return outcome.0
    }

    /// A paybill payment as its confirmation recorded it.
    public struct PaybillPayment: Sendable, Hashable {
        public let transID: String
        /// What the confirmation said was paid.
        public let amount: Amount
        /// The paybill the confirmation named.
        public let shortcode: String?
        /// `verifying`, `credited`, `suspense`, `refused`, `unverified` or `stk`.
        public let state: String

        public init(transID: String, amount: Amount, shortcode: String?, state: String) {
            (self.transID, self.amount, self.shortcode, self.state) = (transID, amount, shortcode, state)
        }
    }

    /// The confirmed paybill payment of `transID`, if a confirmation came.
    public func paybillPayment(transID: String) async throws -> PaybillPayment? {
        try await self.postgres.query(
            "SELECT trans_id, confirmed_amount, shortcode, state FROM paybill_payments WHERE trans_id = \(transID) AND state IS NOT NULL"
        ).single().map { row in
            let (id, cents, shortcode, state) = try row.decode((String, Int64, String?, String).self)
            return PaybillPayment(transID: id, amount: Amount(cents: cents), shortcode: shortcode, state: state)
        }
    }

    /// The AccountReference of our STK pushes. Safaricom announces an STK payment to the paybill
    /// as a paybill confirmation too; naming this account, it is left to the STK deposit
    /// (`wallet_credit_paybill`, migration 0013, knows the same word).
    public static let stkAccountReference = "Wallet"

    /// Where a verified paybill payment went.
    public enum PaybillSettlement: Sendable, Equatable {
        /// To the customer the account named, with the SMS receipt.
        case credited(depositID: Int64)
        /// To the suspense account, for a person (kept for review in the same transaction).
        case suspense(reason: String)
        /// Paid through our own STK push (the account is its AccountReference): the STK deposit is
        /// credited by its own callback or query, never here; nothing moved.
        case stkPayment
        /// Settled before (a repeated answer): nothing moved.
        case alreadySettled(state: String)
        /// No confirmation of this TransID was recorded.
        case unknown
    }

    /// Credits a paybill payment Safaricom's Transaction Status answer confirmed (the caller
    /// checked it: Completed, same receipt, amount and paybill), once per TransID, through
    /// `wallet_credit_paybill` (migration 0013): to the customer, or to the suspense account and
    /// review when the account names nobody or the amount is over `maximum` or the customer's tier.
    public func creditVerifiedPaybill(transID: String, maximum: Amount, answer: String) async throws -> PaybillSettlement {
        let cap = min(maximum.cents, self.wallet.limits.perTransaction.upperBound)
        let row = try await self.postgres.transaction(maxAttempts: 5) { tx -> (String, Int64?, String?, String?) in
            let row = try await tx.query(
                "SELECT outcome, deposit_id, transfer_id, reason FROM wallet_credit_paybill(\(transID), \(cap), \(answer)::jsonb)"
            ).single()!
            let result = try row.decode((String, Int64?, String?, String?).self)
            if result.0 == "suspense" {
                // Kept with the move, in its transaction: the money in suspense always has its review row.
                try await tx.query(
                    """
                    INSERT INTO mpesa_review (kind, reference, reason, body)
                    SELECT 'c2b', trans_id, \("paybill payment in suspense: " + (result.3 ?? "")), COALESCE(confirmation, '{}'::jsonb)
                    FROM paybill_payments WHERE trans_id = \(transID)
                    """
                )
            }
            return result
        }
        switch row {
        case ("credited", let id?, _, _): return .credited(depositID: id)
        case ("suspense", _, _, let reason): return .suspense(reason: reason ?? "")
        case ("stk", _, _, _): return .stkPayment
        case ("unknown", _, _, _): return .unknown
        case (let outcome, _, _, _): return .alreadySettled(state: String(outcome.dropFirst("already_".count)))
        }
    }

    /// Safaricom does not know a paybill payment, or its answer disagrees with the confirmation:
    /// nothing is credited, and the payment is kept for review as a conflict with both reports,
    /// once (in the same transaction as the refusal). False when it was settled before.
    @discardableResult
    public func refusePaybill(transID: String, confirmation: String, says: String) async throws -> Bool {
        try await self.postgres.transaction(maxAttempts: 5) { tx in
            guard let row = try await tx.query(
                """
                UPDATE paybill_payments SET state = 'refused', settled_at = now(), next_check_at = NULL
                WHERE trans_id = \(transID) AND state IN ('verifying', 'unverified') RETURNING COALESCE(confirmation, '{}'::jsonb)::text
                """
            ).single() else { return false }
            let body = try row.decode(String.self, column: 0)
            try await tx.query(
                """
                INSERT INTO mpesa_review (kind, reference, reason, body, earlier_result, new_result)
                VALUES ('c2b', \(transID), \(ReviewItem.conflict), \(body)::jsonb, \(confirmation), \(says))
                """
            )
            return true
        }
    }

    /// A paybill confirmation nobody can verify (M-Pesa is not configured, so Transaction Status
    /// cannot be asked): nothing is credited and it is kept for review at once, once.
    @discardableResult
    public func holdUnverifiablePaybill(transID: String) async throws -> Bool {
        try await self.postgres.transaction(maxAttempts: 5) { tx in
            guard let row = try await tx.query(
                """
                UPDATE paybill_payments SET state = 'unverified', next_check_at = NULL
                WHERE trans_id = \(transID) AND state = 'verifying' RETURNING COALESCE(confirmation, '{}'::jsonb)::text
                """
            ).single() else { return false }
            try await tx.query(
                """
                INSERT INTO mpesa_review (kind, reference, reason, body)
                VALUES ('c2b', \(transID), 'paybill payment recorded while M-Pesa is not configured: Transaction Status cannot confirm it; nothing credited; check it in the M-Pesa portal',
                        \(try row.decode(String.self, column: 0))::jsonb)
                """
            )
            return true
        }
    }

    /// Claims up to `limit` paybill payments still waiting for Safaricom's answer whose next check
    /// is due at `now`, as the reconciler claims deposits: `FOR UPDATE SKIP LOCKED`, the next check
    /// pushed back (60 s, doubling to 30 minutes, never sooner than `lease`) in the same statement.
    /// Returns each TransID with when its confirmation came.
    public func claimPaybillsToVerify(now: Date, limit: Int = 50, lease: Duration = .seconds(120)) async throws -> [(transID: String, confirmedAt: Date)] {
        try await self.postgres.query(
            """
            UPDATE paybill_payments p SET checks = p.checks + 1,
                next_check_at = \(now)::timestamptz + greatest(make_interval(secs => \(Double(lease.components.seconds))),
                    least(interval '30 minutes', interval '60 seconds' * power(2, least(p.checks, 10))))
            WHERE p.trans_id IN (
                SELECT trans_id FROM paybill_payments WHERE state = 'verifying' AND next_check_at <= \(now)::timestamptz
                ORDER BY next_check_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING p.trans_id, p.confirmed_at
            """
        ).map { try $0.decode((String, Date).self) }
    }

    /// Paybill payments Safaricom has not confirmed by `cutoff` (their confirmation came before
    /// it): each stops being asked about and is kept for review, once; nothing was credited. A late
    /// answer that confirms one still settles it. Returns their TransIDs.
    public func flagUnverifiedPaybills(confirmedBefore cutoff: Date, after: Duration) async throws -> [String] {
        try await self.postgres.transaction(maxAttempts: 5) { tx in
            let rows = try await tx.query(
                """
                UPDATE paybill_payments p SET state = 'unverified', next_check_at = NULL
                FROM (
                    SELECT trans_id, state FROM paybill_payments q
                    WHERE (q.state = 'verifying'
                           OR (q.state = 'stk' AND NOT EXISTS (SELECT 1 FROM deposits d WHERE d.receipt = q.trans_id)))
                        AND q.confirmed_at < \(cutoff)::timestamptz
                    ORDER BY q.confirmed_at LIMIT 100 FOR UPDATE SKIP LOCKED) old
                WHERE p.trans_id = old.trans_id
                RETURNING p.trans_id, COALESCE(p.confirmation, '{}'::jsonb)::text, old.state
                """
            )
            var flagged: [String] = []
            for row in rows {
                let (transID, body, state) = try row.decode((String, String, String).self)
                let minutes = after.components.seconds / 60
                let reason =
                    state == "stk"
                    ? "paybill payment to the STK account reference that no STK deposit credited by its receipt within \(minutes) minutes: nothing credited here; an STK push credited on our STK Query has no receipt, so look for a deposit of this phone and amount before crediting it"
                    : "paybill payment not confirmed by Safaricom's Transaction Status within \(minutes) minutes: nothing credited; check it in the M-Pesa portal"
                try await tx.query(
                    """
                    INSERT INTO mpesa_review (kind, reference, reason, body)
                    VALUES ('c2b', \(transID), \(reason), \(body)::jsonb)
                    """
                )
                flagged.append(transID)
            }
            return flagged
        }
    }

    /// Accepted validations whose confirmation had not come by `cutoff` (the caller's clock less
    /// `MPESA_C2B_UNCONFIRMED_MINUTES`): each reported once
    /// (kept for review), returned as TransIDs. Safaricom does not retry confirmations reliably, so
    /// a payment we accepted may have been made and never announced; a person checks it in the
    /// M-Pesa portal and credits it (`mpesa resolve`) or closes it.
    public func flagUnconfirmedPaybills(validatedBefore cutoff: Date) async throws -> [String] {
        let rows = try await self.postgres.query(
            """
            UPDATE paybill_payments SET flagged_at = now()
            WHERE trans_id IN (
                SELECT trans_id FROM paybill_payments
                WHERE validation = 'accepted' AND confirmed_at IS NULL AND flagged_at IS NULL
                    AND validated_at < \(cutoff)::timestamptz
                ORDER BY validated_at LIMIT 100 FOR UPDATE SKIP LOCKED
            )
            RETURNING trans_id, amount, bill_ref
            """
        )
        var flagged: [String] = []
        for row in rows {
            let (transID, cents, billRef) = try row.decode((String, Int64, String).self)
            let body = JSONValue.object(["TransID": .string(transID), "TransAmount": .string(String(cents / 100)), "BillRefNumber": .string(billRef)])
            try await self.keepForReview(
                kind: "c2b", reference: transID, reason: "validation accepted, confirmation never came: check the payment in the M-Pesa portal",
                body: body.serialized
            )
            flagged.append(transID)
        }
        return flagged
    }
}

extension Optional {
    fileprivate func asyncFlatMap<T>(_ transform: (Wrapped) async throws -> T?) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
