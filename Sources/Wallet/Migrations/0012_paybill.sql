-- Paybill deposits (M-Pesa C2B): customers pay the wallet's paybill with their number as the
-- account. One row per M-Pesa TransID: what the validation URL answered (when validation is on),
-- and the confirmation that credited it. The credit itself is a deposit like an STK push's
-- (idempotency key and reference 'c2b:<TransID>', receipt the TransID), completed by
-- wallet_complete_deposit in the same transaction as its insert, so the SMS receipt, the float
-- movement and the exactly-once rules are the same as every other deposit's.
CREATE TABLE paybill_payments (
    trans_id TEXT PRIMARY KEY CHECK (trans_id ~ '^[A-Z0-9]{6,20}$'),
    bill_ref TEXT NOT NULL CHECK (length(bill_ref) <= 40),
    -- The customer the account named, when it named one.
    customer_id BIGINT REFERENCES customers (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    validation TEXT CHECK (validation IN ('accepted', 'rejected')),
    rejection_code TEXT,
    validated_at TIMESTAMPTZ,
    confirmed_amount BIGINT CHECK (confirmed_amount > 0),
    confirmed_at TIMESTAMPTZ,
    deposit_id BIGINT REFERENCES deposits (id),
    -- Set when the reconciler reported an accepted validation whose confirmation never came.
    flagged_at TIMESTAMPTZ,
    CHECK ((validation IS NULL) = (validated_at IS NULL))
);
-- The reconciler's question: accepted, never confirmed, not yet reported.
CREATE INDEX paybill_unconfirmed ON paybill_payments (validated_at)
    WHERE validation = 'accepted' AND confirmed_at IS NULL AND flagged_at IS NULL;

ALTER TABLE mpesa_review DROP CONSTRAINT mpesa_review_kind_check;
ALTER TABLE mpesa_review ADD CONSTRAINT mpesa_review_kind_check
    CHECK (kind IN ('stk', 'b2c_result', 'b2c_timeout', 'stk_query', 'payout', 'c2b'));
