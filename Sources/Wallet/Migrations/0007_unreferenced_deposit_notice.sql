-- A deposit credited on an STK Query's word alone has no receipt (the query carries none): its
-- notice is the `deposit_received.unreferenced` variant, not "M-Pesa ref ." with an empty reference.
CREATE OR REPLACE FUNCTION wallet_complete_deposit(p_checkout TEXT, p_receipt TEXT, p_amount BIGINT, p_phone TEXT, p_raw JSONB, p_confirmed BOOLEAN)
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
    VALUES ('sms', d.msisdn, lang, 'deposit_received',
        CASE WHEN p_receipt IS NULL THEN jsonb_build_object('amount', p_amount::text, 'reason', 'unreferenced')
             ELSE jsonb_build_object('amount', p_amount::text, 'receipt', p_receipt) END, transfer)
    ON CONFLICT (dedupe_key) DO NOTHING;
    RETURN QUERY SELECT 'credited'::text, d.id, d.idempotency_key, d.msisdn, d.amount, 'completed'::text, d.checkout_request_id, p_receipt;
END $$;
