-- Money that holds against forged, contradictory and hostile input (issue 12).

-- Payouts. Once any attempt's outcome was unknown (no answer, a 5xx, a timeout callback), the
-- payout may have been paid: only a result callback or a Transaction Status answer settles it,
-- never the refusal of a later re-send. One still unsettled after the reconciler's last check
-- waits for a person in `needs_review`, its hold kept.
ALTER TABLE payouts ADD COLUMN outcome_unknown BOOLEAN NOT NULL DEFAULT false;
UPDATE payouts SET outcome_unknown = true WHERE status = 'unknown';
ALTER TABLE payouts DROP CONSTRAINT payouts_status_check;
ALTER TABLE payouts ADD CONSTRAINT payouts_status_check
    CHECK (status IN ('reserved', 'sent', 'paid', 'failed', 'unknown', 'needs_review'));

-- Deposits. A payment naming a CheckoutRequestID we never learnt (the push's answer was lost) is
-- matched to its deposit but credited only once an STK Query confirms it; the receipt it named
-- waits here until then.
ALTER TABLE deposits ADD COLUMN callback_receipt TEXT;

-- Review. A conflict (a final result contradicting an earlier final one) names the deposit or
-- payout it concerns and both results; `kind` also takes the reconciler's own reports.
ALTER TABLE mpesa_review DROP CONSTRAINT mpesa_review_kind_check;
ALTER TABLE mpesa_review ADD CONSTRAINT mpesa_review_kind_check
    CHECK (kind IN ('stk', 'b2c_result', 'b2c_timeout', 'stk_query', 'payout'));
ALTER TABLE mpesa_review
    ADD COLUMN deposit_id BIGINT REFERENCES deposits (id),
    ADD COLUMN payout_id TEXT REFERENCES payouts (id),
    ADD COLUMN earlier_result TEXT,
    ADD COLUMN new_result TEXT;
CREATE INDEX mpesa_review_deposit ON mpesa_review (deposit_id) WHERE deposit_id IS NOT NULL;
CREATE INDEX mpesa_review_payout ON mpesa_review (payout_id) WHERE payout_id IS NOT NULL;

-- PINs. Locks escalate: the first lasts PIN_LOCK_MINUTES, the second a day, the third until an
-- operator unlocks (`pin_locks` counts them; a right PIN starts the count again). A PIN change is
-- granted to one USSD session for five minutes after the current PIN was checked, in the
-- database: nothing derived from a secret travels through Redis.
ALTER TABLE customers
    ADD COLUMN pin_locks INT NOT NULL DEFAULT 0 CHECK (pin_locks >= 0),
    ADD COLUMN pin_change_grant TEXT,
    ADD COLUMN pin_change_grant_until TIMESTAMPTZ;

-- A deposit credit that contradicts what is known is a conflict for a person, never a credit:
-- a payment for a deposit already failed by Safaricom's answer, or one credited under another
-- receipt. A deposit failed only because its push was never confirmed by us is not final in
-- that sense: its payment is credited. A deposit matched to a payment by phone and amount (its
-- `callback_receipt` set) is credited only by a caller that has an STK Query's word for it
-- (`p_confirmed`); a callback alone gets 'awaiting_query'.
DROP FUNCTION wallet_complete_deposit(TEXT, TEXT, BIGINT, TEXT, JSONB);
CREATE FUNCTION wallet_complete_deposit(p_checkout TEXT, p_receipt TEXT, p_amount BIGINT, p_phone TEXT, p_raw JSONB, p_confirmed BOOLEAN)
RETURNS TABLE (outcome TEXT, id BIGINT, idempotency_key TEXT, msisdn TEXT, amount BIGINT, status TEXT, checkout_request_id TEXT, receipt TEXT)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    d deposits%ROWTYPE;
    transfer TEXT;
    float_id BIGINT;
    main_id BIGINT;
    lang TEXT;
BEGIN
    SELECT * INTO d FROM deposits WHERE deposits.checkout_request_id = p_checkout FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::bigint, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF d.status = 'completed' THEN
        IF p_receipt IS NOT NULL AND d.receipt IS NOT NULL AND d.receipt <> p_receipt THEN
            RETURN QUERY SELECT 'conflict'::text, d.id, d.idempotency_key, d.msisdn, d.amount, d.status, d.checkout_request_id, d.receipt;
        ELSE
            RETURN QUERY SELECT 'already_completed'::text, d.id, d.idempotency_key, d.msisdn, d.amount, d.status, d.checkout_request_id, d.receipt;
        END IF;
        RETURN;
    END IF;
    IF d.status = 'failed' AND d.result_code <> -2 THEN
        RETURN QUERY SELECT 'conflict'::text, d.id, d.idempotency_key, d.msisdn, d.amount, d.status, d.checkout_request_id,
            (d.result_code::text || ' ' || coalesce(d.result_text, ''));
        RETURN;
    END IF;
    IF d.callback_receipt IS NOT NULL AND NOT p_confirmed THEN
        RETURN QUERY SELECT 'awaiting_query'::text, d.id, d.idempotency_key, d.msisdn, d.amount, d.status, d.checkout_request_id, d.receipt;
        RETURN;
    END IF;
    IF d.amount <> p_amount OR d.msisdn <> p_phone THEN
        UPDATE deposits SET result_text = 'amount or phone mismatch', raw_callback = p_raw, updated_at = now() WHERE deposits.id = d.id;
        RETURN QUERY SELECT 'mismatch'::text, d.id, d.idempotency_key, d.msisdn, d.amount, d.status, d.checkout_request_id, d.receipt;
        RETURN;
    END IF;
    transfer := 'deposit:' || d.id;
    SELECT a.id INTO float_id FROM accounts a WHERE a.customer_id IS NULL AND a.kind = 'mpesa_float';
    SELECT a.id INTO main_id FROM accounts a WHERE a.customer_id = d.customer_id AND a.kind = 'main';
    SELECT c.language INTO lang FROM customers c WHERE c.id = d.customer_id;
    INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
    VALUES (transfer, float_id, main_id, p_amount, 'deposit', 'posted', jsonb_build_object('receipt', p_receipt));
    UPDATE deposits SET status = 'completed', receipt = p_receipt, result_code = 0, transfer_id = transfer,
        raw_callback = p_raw, updated_at = now()
    WHERE deposits.id = d.id;
    INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
    VALUES ('sms', d.msisdn, lang, 'deposit_received', jsonb_build_object('amount', p_amount::text, 'receipt', p_receipt), transfer)
    ON CONFLICT (dedupe_key) DO NOTHING;
    RETURN QUERY SELECT 'credited'::text, d.id, d.idempotency_key, d.msisdn, d.amount, 'completed'::text, d.checkout_request_id, p_receipt;
END $$;
