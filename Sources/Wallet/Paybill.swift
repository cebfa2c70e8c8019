import Foundation
import Postgres

/// Paybill deposits (M-Pesa C2B, migration 0012): a customer pays the wallet's paybill with their
/// number as the account. Validation (when Safaricom has it on for the shortcode) asks whether to
/// take a payment; confirmation says it was made. Each payment is one M-Pesa TransID.
extension Wallet {
    /// What the validation URL should answer.
    public enum PaybillCheck: Sendable, Equatable {
        case accept(customerID: Int64)
        /// The account names no customer of ours (or a blocked one): `C2B00012`.
        case unknownAccount
        /// Outside the per-payment limits, or past the customer's tier's maximum balance: `C2B00013`.
        case amountRefused
    }

    /// What a confirmation did.
    public enum PaybillCredit: Sendable, Equatable {
        /// Credited now (the receipt SMS is queued with it).
        case credited(depositID: Int64)
        /// This TransID was credited before: nothing moved.
        case alreadyCredited(depositID: Int64)
        /// The account names no customer: nothing credited, the payment waits for a person.
        case unknownAccount
    }

    /// Whether a payment of `amount` to the account `msisdn` (nil: the account is no number) may be
    /// taken, and the answer recorded against its TransID. A repeated validation of the same
    /// TransID gets the same answer.
    public func validatePaybill(transID: String, billRef: String, msisdn: MSISDN?, amount: Amount) async throws -> PaybillCheck {
        let check = try await self.paybillCheck(msisdn, amount: amount)
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

    func paybillCheck(_ msisdn: MSISDN?, amount: Amount) async throws -> PaybillCheck {
        guard let msisdn else { return .unknownAccount }
        let customer: Customer
        do {
            customer = try await self.customer(msisdn)
        } catch WalletError.notRegistered {
            return .unknownAccount
        }
        if customer.isBlocked { return .unknownAccount }
        guard self.limits.perTransaction.contains(amount.cents) else { return .amountRefused }
        return try await self.tierHasRoom(customer.id, for: amount) ? .accept(customerID: customer.id) : .amountRefused
    }

    /// Credits a confirmed paybill payment once per TransID, to the customer the account names,
    /// with the SMS receipt, in one transaction. The money was paid whatever any limit says, so a
    /// known customer is always credited. An account naming no customer credits nothing and the
    /// payment goes to review, kept whole. A confirmation that disagrees with what was validated
    /// or confirmed before (another amount or account) is credited as confirmed and the
    /// disagreement also goes to review: both reports are kept, and a person decides.
    public func confirmPaybill(transID: String, billRef: String, msisdn: MSISDN?, amount: Amount, raw: String) async throws -> PaybillCredit {
        let reference = "c2b:" + transID
        let outcome = try await self.postgres.transaction(maxAttempts: 5) { tx -> (PaybillCredit, String?) in
            let earlier = try await tx.query(
                "SELECT customer_id, amount, validation, confirmed_amount FROM paybill_payments WHERE trans_id = \(transID) FOR UPDATE"
            ).single().map { try $0.decode((Int64?, Int64, String?, Int64?).self) }
            let customer = try await msisdn.asyncFlatMap { msisdn in
                try await tx.query("SELECT id FROM customers WHERE msisdn = \(msisdn.value)").single()?.decode(Int64.self, column: 0)
            }
            var disagreement: String?
            if let earlier {
                if let confirmed = earlier.3, confirmed != amount.cents {
                    disagreement = "confirmed again with KES \(amount.cents / 100) after KES \(confirmed / 100)"
                } else if earlier.2 == "accepted", earlier.1 != amount.cents || earlier.0 != customer {
                    disagreement = "validated for another amount or account than confirmed"
                } else if earlier.2 == "rejected" {
                    disagreement = "confirmed although our validation rejected it"
                }
            }
            try await tx.query(
                """
                INSERT INTO paybill_payments (trans_id, bill_ref, customer_id, amount, confirmed_amount, confirmed_at)
                VALUES (\(transID), \(billRef), \(customer), \(amount.cents), \(amount.cents), now())
                ON CONFLICT (trans_id) DO UPDATE SET confirmed_at = COALESCE(paybill_payments.confirmed_at, now()),
                    confirmed_amount = COALESCE(paybill_payments.confirmed_amount, \(amount.cents))
                """
            )
            guard let customer, let msisdn else { return (.unknownAccount, disagreement) }
            try await tx.query(
                """
                INSERT INTO deposits (idempotency_key, customer_id, msisdn, amount, checkout_request_id)
                VALUES (\(reference), \(customer), \(msisdn.value), \(amount.cents), \(reference))
                ON CONFLICT (idempotency_key) DO NOTHING
                """
            )
            let row = try await tx.query(
                "SELECT outcome, id FROM wallet_complete_deposit(\(reference), \(transID), \(amount.cents), \(msisdn.value), \(raw)::jsonb, true)"
            ).single()!
            let (result, id) = try row.decode((String, Int64?).self)
            guard let id else { throw ProviderRecordError.unknownDeposit }
            try await tx.query("UPDATE paybill_payments SET deposit_id = \(id) WHERE trans_id = \(transID)")
            switch result {
            case "credited": return (.credited(depositID: id), disagreement)
            case "already_completed": return (.alreadyCredited(depositID: id), disagreement)
            default:
                // The deposit under this TransID holds another amount or number (a first
                // confirmation that differed): nothing more moves, and the review says why.
                return (.alreadyCredited(depositID: id), disagreement ?? "the deposit of this TransID disagrees (\(result))")
            }
        }
        switch outcome {
        case (.unknownAccount, let disagreement):
            try await self.keepForReview(
                kind: "c2b", reference: transID,
                reason: "paybill payment to an account that names no customer" + (disagreement.map { "; " + $0 } ?? ""),
                body: raw
            )
        case (.credited(let id), let disagreement?), (.alreadyCredited(let id), let disagreement?):
            try await self.keepForReview(kind: "c2b", reference: transID, reason: disagreement, body: raw, depositID: id)
        default:
            break
        }
        return outcome.0
    }

    /// Accepted validations whose confirmation has not come within `after`: each reported once
    /// (kept for review), returned as TransIDs. Safaricom does not retry confirmations reliably, so
    /// a payment we accepted may have been made and never announced; a person checks it in the
    /// M-Pesa portal and credits it (`mpesa resolve`) or closes it.
    public func flagUnconfirmedPaybills(after: Duration) async throws -> [String] {
        let rows = try await self.postgres.query(
            """
            UPDATE paybill_payments SET flagged_at = now()
            WHERE trans_id IN (
                SELECT trans_id FROM paybill_payments
                WHERE validation = 'accepted' AND confirmed_at IS NULL AND flagged_at IS NULL
                    AND validated_at < now() - make_interval(secs => \(Double(after.components.seconds)))
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
