-- M-Pesa reports are claims until Safaricom confirms them (issue 26, items 1 and 2).
--
-- 1. Transaction Status queries. Every query the gateway sends is kept here: the id we chose at
--    random as its OriginatorConversationID, what it asks about (a paybill receipt or a payout),
--    and the ConversationID Daraja returned when it accepted the query (with the
--    OriginatorConversationID it named, when Safaricom gave the query its own). An answer counts
--    only when it names the ConversationID and one of those originators; the callback token lets an answer in, it never makes one count. Rows are
--    never deleted, a ConversationID is written once, and the first answer kept is never replaced.
-- 2. Paybill confirmations. A confirmation is recorded (`state` 'verifying'), and nothing moves
--    until a Transaction Status answer says Completed with the same receipt, amount and paybill.
--    `wallet_credit_paybill` then credits the customer (a deposit 'c2b:<TransID>', as before) or,
--    when the account names nobody or the payment is over the customer's tier or the paybill's
--    maximum, moves it from the M-Pesa float to the suspense account ('c2b:<TransID>') for a person.
-- 3. Payouts. The B2C acknowledgement's ConversationID and OriginatorConversationID are kept; a
--    result must name the same pair.

CREATE TABLE mpesa_status_queries (
    -- Our OriginatorConversationID: random, never derived from anything.
    id TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{16,64}$'),
    subject TEXT NOT NULL CHECK (subject IN ('c2b', 'payout')),
    -- The paybill payment's TransID, or the payout's id.
    reference TEXT NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
    asked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Daraja's, from its acknowledgement of the query.
    conversation_id TEXT UNIQUE CHECK (length(conversation_id) BETWEEN 1 AND 128),
    -- The OriginatorConversationID the acknowledgement named: ours when Daraja echoes it, else the
    -- one Safaricom gave the query (an answer may name either, with the ConversationID).
    acknowledged_originator TEXT CHECK (length(acknowledged_originator) BETWEEN 1 AND 128),
    acknowledged_at TIMESTAMPTZ,
    -- The first answer that named both ids, as the gateway keeps bodies (parsed, written again).
    answer JSONB,
    answered_at TIMESTAMPTZ,
    CHECK ((conversation_id IS NULL) = (acknowledged_at IS NULL)),
    CHECK ((answer IS NULL) = (answered_at IS NULL)),
    CHECK (answer IS NULL OR conversation_id IS NOT NULL)
);
CREATE INDEX mpesa_status_queries_subject ON mpesa_status_queries (subject, reference, asked_at);

CREATE FUNCTION mpesa_status_queries_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'status queries are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.subject <> OLD.subject OR NEW.reference <> OLD.reference OR NEW.asked_at <> OLD.asked_at
        OR (OLD.conversation_id IS NOT NULL AND (NEW.conversation_id IS DISTINCT FROM OLD.conversation_id
                                                 OR NEW.acknowledged_originator IS DISTINCT FROM OLD.acknowledged_originator
                                                 OR NEW.acknowledged_at IS DISTINCT FROM OLD.acknowledged_at))
        OR (OLD.answer IS NOT NULL AND (NEW.answer IS DISTINCT FROM OLD.answer OR NEW.answered_at IS DISTINCT FROM OLD.answered_at)) THEN
        RAISE EXCEPTION 'a status query keeps its ids, its acknowledgement and its first answer' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER mpesa_status_queries_keep BEFORE UPDATE OR DELETE ON mpesa_status_queries
    FOR EACH ROW EXECUTE FUNCTION mpesa_status_queries_keep();

-- Paybill payments: where each confirmation stands.
--   verifying   recorded, waiting for Safaricom's Transaction Status answer (asked again with
--               back-off by the reconciler: `next_check_at`, `checks`)
--   credited    Safaricom confirmed it; the customer was credited (`deposit_id`)
--   suspense    Safaricom confirmed it; the money is in the suspense account (`transfer_id`) and
--               a person decides (over the limits, or an account that names nobody)
--   refused     Safaricom does not know it or disagrees with it: nothing moved, kept for review
--   unverified  no answer came within MPESA_C2B_REVIEW_AFTER_MINUTES: nothing moved, kept for review
-- A later authentic answer still settles a payment that went to review unverified.
ALTER TABLE paybill_payments
    ADD COLUMN state TEXT CHECK (state IN ('verifying', 'credited', 'suspense', 'refused', 'unverified', 'stk')),
    -- BusinessShortCode as the confirmation named it.
    ADD COLUMN shortcode TEXT CHECK (shortcode ~ '^[0-9]{5,7}$'),
    -- The confirmation as kept (parsed and written again, never the bytes as sent).
    ADD COLUMN confirmation JSONB,
    ADD COLUMN next_check_at TIMESTAMPTZ,
    ADD COLUMN checks INT NOT NULL DEFAULT 0,
    ADD COLUMN settled_at TIMESTAMPTZ,
    -- The float-to-suspense transfer of a payment that went to suspense.
    ADD COLUMN transfer_id TEXT REFERENCES transfers (id);
-- Confirmations before this migration were credited on their word (or kept for review).
UPDATE paybill_payments SET state = CASE WHEN deposit_id IS NOT NULL THEN 'credited' ELSE 'unverified' END, settled_at = confirmed_at
WHERE confirmed_at IS NOT NULL;
ALTER TABLE paybill_payments ADD CONSTRAINT paybill_payments_state_once_confirmed CHECK ((state IS NULL) = (confirmed_at IS NULL));
CREATE INDEX paybill_payments_verifying ON paybill_payments (next_check_at) WHERE state = 'verifying';

-- Payouts: the pair Daraja's B2C acknowledgement named. A ConversationID, once known, stays.
ALTER TABLE payouts
    ADD COLUMN originator_conversation_id TEXT CHECK (length(originator_conversation_id) BETWEEN 1 AND 128),
    ADD COLUMN acknowledged_at TIMESTAMPTZ;
UPDATE payouts SET acknowledged_at = updated_at WHERE conversation_id IS NOT NULL;
CREATE FUNCTION payouts_keep_acknowledgement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a payout keeps the ConversationID its acknowledgement named' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER payouts_keep_acknowledgement BEFORE UPDATE ON payouts FOR EACH ROW
    WHEN (OLD.conversation_id IS NOT NULL AND (NEW.conversation_id IS DISTINCT FROM OLD.conversation_id
          OR NEW.originator_conversation_id IS DISTINCT FROM OLD.originator_conversation_id))
    EXECUTE FUNCTION payouts_keep_acknowledgement();

-- Settles a paybill payment that Safaricom's Transaction Status answer confirmed (the caller has
-- checked the answer: Completed, same receipt, amount and paybill). Once per TransID: a payment no
-- longer 'verifying' or 'unverified' is left as it is ('already_<state>'). The money goes to:
--   * the customer the account named, when still a customer (a blocked one too: a block stops money
--     going out, not coming in), the amount at most `p_max` (cents: MPESA_C2B_MAX_AMOUNT and the
--     wallet's per-transaction limit) and within the customer's KYC tier (per transaction, and the
--     maximum balance counting what the customer holds): a deposit 'c2b:<TransID>' completed at
--     once (transfer 'deposit:<id>'), with the SMS receipt, as every deposit;
--   * otherwise the suspense account, from the float: transfer 'c2b:<TransID>'; a person decides
--     (a ledger adjustment credits the customer from suspense).
-- Both transfers carry their cause: metadata {"cause": "c2b:<TransID>", "receipt": TransID}.
-- Returns the outcome ('credited', 'suspense', 'already_<state>', 'unknown'), the deposit, the
-- transfer and, for suspense, why.
CREATE FUNCTION wallet_credit_paybill(p_trans_id TEXT, p_max BIGINT, p_answer JSONB)
RETURNS TABLE (outcome TEXT, deposit_id BIGINT, transfer_id TEXT, reason TEXT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    p paybill_payments%ROWTYPE;
    c RECORD;
    cause TEXT := 'c2b:' || p_trans_id;
    amount BIGINT;
    holding BIGINT;
    why TEXT;
    dep BIGINT;
    transfer TEXT;
    float_id BIGINT;
    suspense_id BIGINT;
BEGIN
    SELECT * INTO p FROM paybill_payments WHERE paybill_payments.trans_id = p_trans_id FOR UPDATE;
    IF NOT FOUND OR p.state IS NULL THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::bigint, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF p.state NOT IN ('verifying', 'unverified') THEN
        RETURN QUERY SELECT 'already_' || p.state, p.deposit_id, p.transfer_id, NULL::text;
        RETURN;
    END IF;
    amount := p.confirmed_amount;
    SELECT a.id INTO float_id FROM accounts a WHERE a.customer_id IS NULL AND a.kind = 'mpesa_float';
    -- A receipt an STK push already credited is not credited again.
    SELECT d.id INTO dep FROM deposits d WHERE d.receipt = p_trans_id;
    IF FOUND THEN
        UPDATE paybill_payments SET state = 'credited', deposit_id = dep, settled_at = now(), next_check_at = NULL
        WHERE paybill_payments.trans_id = p_trans_id;
        RETURN QUERY SELECT 'already_credited'::text, dep, NULL::text, NULL::text;
        RETURN;
    END IF;
    -- A payment made through our own STK push names the push's AccountReference ('Wallet', as
    -- MPesaService sends it) as its account: Safaricom announces it here too. Its STK deposit is
    -- credited by the STK callback or our STK Query; crediting or parking it here as well would
    -- count the money twice. It waits ('stk'); one that no STK deposit takes goes to review.
    IF p.bill_ref = 'Wallet' THEN
        UPDATE paybill_payments SET state = 'stk', settled_at = now(), next_check_at = NULL WHERE paybill_payments.trans_id = p_trans_id;
        RETURN QUERY SELECT 'stk'::text, NULL::bigint, NULL::text, NULL::text;
        RETURN;
    END IF;

    SELECT cu.id, cu.msisdn, cu.status, cu.language, a.id AS main_id, t.per_transaction, t.max_balance INTO c
    FROM customers cu JOIN accounts a ON a.customer_id = cu.id AND a.kind = 'main'
    LEFT JOIN kyc_tiers t ON t.name = coalesce(cu.tier, (SELECT d.name FROM kyc_tiers d WHERE d.is_default))
    WHERE cu.id = p.customer_id
    FOR UPDATE OF a;
    IF NOT FOUND OR c.status NOT IN ('active', 'suspended') THEN
        why := 'the account names no customer';
    ELSIF amount > p_max THEN
        why := format('KES %s is over the paybill maximum of KES %s', amount / 100, p_max / 100);
    ELSIF c.per_transaction IS NOT NULL AND amount > c.per_transaction THEN
        why := format('KES %s is over the customer''s tier limit of KES %s per payment', amount / 100, c.per_transaction / 100);
    ELSIF c.max_balance IS NOT NULL THEN
        SELECT coalesce(sum(x.balance), 0)::bigint INTO holding FROM accounts x WHERE x.customer_id = c.id;
        IF holding + amount > c.max_balance THEN
            why := format('KES %s would take the customer over the tier''s maximum balance of KES %s', amount / 100, c.max_balance / 100);
        END IF;
    END IF;

    IF why IS NULL THEN
        INSERT INTO deposits (idempotency_key, customer_id, msisdn, amount, checkout_request_id)
        VALUES (cause, c.id, c.msisdn, amount, cause)
        RETURNING deposits.id INTO dep;
        transfer := 'deposit:' || dep;
        INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
        VALUES (transfer, float_id, c.main_id, amount, 'deposit', 'posted', jsonb_build_object('cause', cause, 'receipt', p_trans_id));
        UPDATE deposits SET status = 'completed', receipt = p_trans_id, result_code = 0, transfer_id = transfer,
            raw_callback = p.confirmation, updated_at = now()
        WHERE deposits.id = dep;
        INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
        VALUES ('sms', c.msisdn, c.language, 'deposit_received', jsonb_build_object('amount', amount::text, 'receipt', p_trans_id), transfer)
        ON CONFLICT (dedupe_key) DO NOTHING;
        UPDATE paybill_payments SET state = 'credited', deposit_id = dep, settled_at = now(), next_check_at = NULL
        WHERE paybill_payments.trans_id = p_trans_id;
        RETURN QUERY SELECT 'credited'::text, dep, transfer, NULL::text;
        RETURN;
    END IF;

    SELECT a.id INTO suspense_id FROM accounts a WHERE a.customer_id IS NULL AND a.kind = 'suspense';
    transfer := cause;
    INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
    VALUES (transfer, float_id, suspense_id, amount, 'deposit', 'posted',
            jsonb_build_object('cause', cause, 'receipt', p_trans_id, 'suspense', why));
    UPDATE paybill_payments SET state = 'suspense', transfer_id = transfer, settled_at = now(), next_check_at = NULL
    WHERE paybill_payments.trans_id = p_trans_id;
    RETURN QUERY SELECT 'suspense'::text, NULL::bigint, transfer, why;
END $$;
