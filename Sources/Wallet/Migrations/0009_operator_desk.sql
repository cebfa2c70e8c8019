-- The operator desk (issue 16): blocked customers, PIN resets, KYC tiers, tariffs, corrections
-- with maker-checker approval, and M-Pesa review items closed out by a person.

-- Customers. `suspended` is what the desk calls blocked: such a customer may only check the
-- balance. A PIN reset makes the next dial set a new PIN. `tier` names a KYC tier (NULL: the
-- default tier).
ALTER TABLE customers
    ADD COLUMN pin_reset_required BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN tier TEXT;

-- KYC tiers and their limits, in cents, written from the configuration at start-up (menus.json's
-- `tiers`); exactly one is the default. A tier still held by a customer cannot be removed. A tier
-- without a maximum balance caps none.
CREATE TABLE kyc_tiers (
    name TEXT PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,29}$'),
    per_transaction BIGINT NOT NULL CHECK (per_transaction > 0),
    daily BIGINT NOT NULL CHECK (daily >= per_transaction),
    max_balance BIGINT CHECK (max_balance > 0),
    is_default BOOLEAN NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX kyc_tiers_one_default ON kyc_tiers (is_default) WHERE is_default;
-- M-Pesa's per-transaction and daily limits until a configuration says otherwise.
INSERT INTO kyc_tiers (name, per_transaction, daily, max_balance, is_default) VALUES ('standard', 25000000, 50000000, NULL, true);
ALTER TABLE customers ADD CONSTRAINT customers_tier_fkey FOREIGN KEY (tier) REFERENCES kyc_tiers (name);

-- Two more system accounts: fees earned, and the suspense account corrections move against.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check
    CHECK (kind IN ('main', 'savings', 'mpesa_float', 'payouts_in_flight', 'fee_income', 'suspense'));
INSERT INTO accounts (customer_id, kind) VALUES (NULL, 'fee_income'), (NULL, 'suspense');

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check
    CHECK (kind IN ('deposit', 'withdrawal', 'p2p', 'save', 'unsave', 'reversal', 'fee', 'adjustment'));
-- The daily report reads a day of transfers by time: a BRIN index, tiny and nearly free to keep
-- on an append-only table whose rows arrive in time order.
CREATE INDEX transfers_created ON transfers USING brin (created_at);

-- A withdrawal's fee, posted to fee income when the amount is held and given back if the payout
-- fails (`withdrawal:<id>:fee`, refunded by `withdrawal:<id>:fee-refund`).
ALTER TABLE payouts ADD COLUMN fee BIGINT NOT NULL DEFAULT 0 CHECK (fee >= 0);
CREATE INDEX transfers_resolves ON transfers (resolves) WHERE resolves IS NOT NULL;

-- Corrections and reversals wait here for a second operator (maker-checker). The database
-- refuses an approval by the one who asked, and a decision that changes once made.
CREATE TABLE ledger_requests (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('adjustment', 'reversal')),
    msisdn TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    -- Adjustments: money into the customer's main account from suspense, or out of it into suspense.
    direction TEXT CHECK (direction IN ('from_suspense', 'to_suspense')),
    -- Reversals: the send reversed.
    reference TEXT REFERENCES transfers (id),
    requested_by TEXT NOT NULL CHECK (length(requested_by) BETWEEN 1 AND 100),
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by TEXT,
    decided_at TIMESTAMPTZ,
    decision_reason TEXT,
    transfer_id TEXT REFERENCES transfers (id),
    CHECK ((kind = 'adjustment') = (direction IS NOT NULL) AND (kind = 'reversal') = (reference IS NOT NULL)),
    CONSTRAINT ledger_requests_four_eyes CHECK (decided_by IS NULL OR lower(decided_by) <> lower(requested_by)),
    CHECK ((status = 'pending') = (decided_by IS NULL)),
    CHECK ((status = 'approved') = (transfer_id IS NOT NULL))
);
CREATE UNIQUE INDEX ledger_requests_one_open_reversal ON ledger_requests (reference) WHERE kind = 'reversal' AND status <> 'rejected';

CREATE FUNCTION ledger_requests_decide_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'ledger requests are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'pending' OR NEW.id <> OLD.id OR NEW.kind <> OLD.kind OR NEW.msisdn <> OLD.msisdn OR NEW.amount <> OLD.amount
        OR NEW.direction IS DISTINCT FROM OLD.direction OR NEW.reference IS DISTINCT FROM OLD.reference
        OR NEW.requested_by <> OLD.requested_by OR NEW.reason <> OLD.reason OR NEW.requested_at <> OLD.requested_at THEN
        RAISE EXCEPTION 'a ledger request is decided once, and only its decision changes' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_requests_decide_once BEFORE UPDATE OR DELETE ON ledger_requests
    FOR EACH ROW EXECUTE FUNCTION ledger_requests_decide_once();

-- M-Pesa review items are closed by a person, once: after a credit, a refund, or nothing.
ALTER TABLE mpesa_review
    ADD COLUMN resolution TEXT CHECK (resolution IN ('credited', 'refunded', 'nothing')),
    ADD COLUMN resolved_by TEXT,
    ADD COLUMN resolved_at TIMESTAMPTZ,
    ADD COLUMN resolution_note TEXT,
    ADD CONSTRAINT mpesa_review_resolved_whole
        CHECK ((resolution IS NULL) = (resolved_by IS NULL) AND (resolution IS NULL) = (resolved_at IS NULL)
               AND (resolution IS NULL) = (resolution_note IS NULL));
CREATE INDEX mpesa_review_open ON mpesa_review (id) WHERE resolution IS NULL;

CREATE FUNCTION mpesa_review_resolve_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'review items are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.resolution IS NOT NULL OR NEW.id <> OLD.id OR NEW.kind <> OLD.kind OR NEW.reference <> OLD.reference
        OR NEW.reason <> OLD.reason OR NEW.body <> OLD.body OR NEW.received_at <> OLD.received_at THEN
        RAISE EXCEPTION 'a review item is resolved once, and only its resolution changes' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER mpesa_review_resolve_once BEFORE UPDATE OR DELETE ON mpesa_review
    FOR EACH ROW EXECUTE FUNCTION mpesa_review_resolve_once();

-- wallet_move, as in migration 0002, and also:
--   * a blocked (suspended) initiator is refused as 'blocked' (a block stops money going out,
--     not coming in: a blocked customer still receives);
--   * the initiator's KYC tier caps a send per transaction and per day, under the global limits;
--   * a send that would take the recipient over their tier's maximum balance is 'recipient_limit';
--   * a fee (`p_fee`, from the tariff) is posted to the fee-income account in the same
--     transaction, under the key `<key>:fee`; the customer must afford amount and fee; the
--     sender's receipt names it.
ALTER TYPE wallet_move_result ADD ATTRIBUTE fee BIGINT;
DROP FUNCTION wallet_move(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT, BIGINT, BIGINT, BIGINT);
CREATE FUNCTION wallet_move(
    p_key TEXT, p_kind TEXT, p_fingerprint TEXT,
    p_debit_msisdn TEXT, p_debit_kind TEXT, p_credit_msisdn TEXT, p_credit_kind TEXT,
    p_amount BIGINT, p_min BIGINT, p_max BIGINT, p_daily BIGINT, p_fee BIGINT
) RETURNS wallet_move_result LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    r RECORD;
    debit_id BIGINT;
    debit_customer BIGINT;
    debit_status TEXT;
    debit_language TEXT;
    credit_id BIGINT;
    credit_status TEXT;
    credit_language TEXT;
    debit_row RECORD;
    credit_row RECORD;
    available BIGINT := 0;
    refusal TEXT;
    today BIGINT;
    fee_account BIGINT;
    -- The tiers' limits as scalars: a record's fields cannot be read before it is assigned, and a
    -- refused movement may never assign one.
    debit_limit BIGINT;
    debit_daily_limit BIGINT;
    credit_cap BIGINT;
    credit_holding BIGINT;
    result wallet_move_result;
BEGIN
    IF p_fee < 0 THEN
        RAISE EXCEPTION 'a fee is never negative' USING ERRCODE = 'check_violation';
    END IF;
    FOR r IN
        SELECT a.id, c.id AS customer, c.msisdn, a.kind, a.balance - a.held AS spendable, c.status, c.language,
               CASE WHEN a.debits_day = (now() AT TIME ZONE 'Africa/Nairobi')::date THEN a.debits_today ELSE 0 END AS today,
               a.balance, a.held,
               (SELECT o.balance FROM accounts o WHERE o.customer_id = c.id AND o.kind <> a.kind) AS other,
               t.per_transaction, t.daily, t.max_balance
        FROM accounts a JOIN customers c ON c.id = a.customer_id
        LEFT JOIN kyc_tiers t ON t.name = coalesce(c.tier, (SELECT d.name FROM kyc_tiers d WHERE d.is_default))
        WHERE (c.msisdn = p_debit_msisdn AND a.kind = p_debit_kind) OR (c.msisdn = p_credit_msisdn AND a.kind = p_credit_kind)
        ORDER BY a.id
        FOR UPDATE OF a
    LOOP
        IF r.msisdn = p_debit_msisdn AND r.kind = p_debit_kind THEN
            debit_id := r.id; debit_customer := r.customer; debit_status := r.status; debit_language := r.language;
            available := r.spendable; today := r.today; debit_row := r;
            debit_limit := r.per_transaction; debit_daily_limit := r.daily;
        END IF;
        IF r.msisdn = p_credit_msisdn AND r.kind = p_credit_kind THEN
            credit_id := r.id; credit_status := r.status; credit_language := r.language; credit_row := r;
            credit_cap := r.max_balance; credit_holding := r.balance + coalesce(r.other, 0);
        END IF;
    END LOOP;

    IF debit_id IS NOT NULL AND debit_status = 'suspended' THEN
        refusal := 'blocked';
    ELSIF debit_id IS NULL OR debit_status <> 'active' THEN
        refusal := 'not_registered';
    ELSIF p_debit_msisdn = p_credit_msisdn AND (p_debit_kind = p_credit_kind OR p_kind = 'p2p') THEN
        refusal := 'same_account';
    ELSIF credit_id IS NULL OR credit_status NOT IN ('active', 'suspended') THEN
        refusal := 'recipient_not_registered';
    ELSIF p_amount < p_min OR p_amount > p_max THEN
        refusal := 'limit_exceeded';
    ELSIF p_kind = 'p2p' AND p_amount > coalesce(debit_limit, p_max) THEN
        refusal := 'limit_exceeded';
    END IF;
    IF refusal IS NULL AND p_kind IN ('p2p', 'withdrawal') AND today + p_amount > least(p_daily, coalesce(debit_daily_limit, p_daily)) THEN
        refusal := 'limit_exceeded';
    END IF;
    IF refusal IS NULL AND available < p_amount + p_fee THEN
        refusal := 'insufficient_funds';
    END IF;
    IF refusal IS NULL AND p_kind = 'p2p' AND credit_cap IS NOT NULL AND credit_holding + p_amount > credit_cap THEN
        refusal := 'recipient_limit';
    END IF;

    IF refusal IS NULL THEN
        INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
        SELECT p_key, debit_id, credit_id, p_amount, p_kind, 'posted',
               CASE WHEN p_fee > 0 THEN jsonb_build_object('fingerprint', p_fingerprint, 'fee', p_fee)
                    ELSE jsonb_build_object('fingerprint', p_fingerprint) END
        WHERE NOT EXISTS (SELECT 1 FROM failed_transfers f WHERE f.id = p_key)
        ON CONFLICT (id) DO NOTHING
        RETURNING transfers.created_at INTO result.created_at;
        IF FOUND THEN
            IF p_fee > 0 THEN
                SELECT a.id INTO fee_account FROM accounts a WHERE a.customer_id IS NULL AND a.kind = 'fee_income';
                INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
                VALUES (p_key || ':fee', debit_id, fee_account, p_fee, 'fee', 'posted', jsonb_build_object('for', p_key));
            END IF;
            IF p_kind = 'p2p' THEN
                INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key) VALUES
                    ('sms', p_debit_msisdn, debit_language, 'sent',
                     CASE WHEN p_fee > 0
                          THEN jsonb_build_object('amount', p_amount::text, 'key', p_key, 'to', p_credit_msisdn, 'fee', p_fee::text, 'reason', 'fee')
                          ELSE jsonb_build_object('amount', p_amount::text, 'key', p_key, 'to', p_credit_msisdn) END,
                     p_key || ':sent'),
                    ('sms', p_credit_msisdn, credit_language, 'received',
                     jsonb_build_object('amount', p_amount::text, 'key', p_key, 'from', p_debit_msisdn), p_key || ':received')
                ON CONFLICT (dedupe_key) DO NOTHING;
            END IF;
            result.outcome := 'posted'; result.kind := p_kind; result.amount := p_amount; result.fee := p_fee;
            IF p_debit_kind = 'main' THEN
                result.main := debit_row.balance - p_amount - p_fee; result.held := debit_row.held;
                result.savings := CASE WHEN p_kind = 'p2p' THEN debit_row.other ELSE credit_row.balance + p_amount END;
            ELSE
                result.savings := debit_row.balance - p_amount - p_fee;
                result.main := CASE WHEN p_kind = 'p2p' THEN debit_row.other ELSE credit_row.balance + p_amount END;
                result.held := CASE WHEN p_kind = 'p2p' THEN NULL ELSE credit_row.held END;
            END IF;
            RETURN result;
        END IF;
    END IF;

    IF result.outcome IS NULL THEN
        SELECT t.kind, t.amount, t.created_at, t.metadata->>'fingerprint' AS fingerprint, coalesce((t.metadata->>'fee')::bigint, 0) AS fee
        INTO r FROM transfers t WHERE t.id = p_key;
        IF FOUND THEN
            IF r.fingerprint IS DISTINCT FROM p_fingerprint THEN
                result.outcome := 'idempotency_key_reused';
                RETURN result;
            END IF;
            result.outcome := 'replayed'; result.kind := r.kind; result.amount := r.amount; result.created_at := r.created_at; result.fee := r.fee;
        ELSE
            SELECT f.fingerprint, f.error INTO r FROM failed_transfers f WHERE f.id = p_key;
            IF FOUND THEN
                result.outcome := CASE WHEN r.fingerprint = p_fingerprint THEN r.error ELSE 'idempotency_key_reused' END;
                RETURN result;
            END IF;
            IF refusal IS NULL THEN
                RAISE EXCEPTION 'idempotency key % changed hands, retry', p_key USING ERRCODE = 'serialization_failure';
            END IF;
            INSERT INTO failed_transfers (id, fingerprint, error) VALUES (p_key, p_fingerprint, refusal) ON CONFLICT (id) DO NOTHING;
            result.outcome := refusal;
            RETURN result;
        END IF;
    END IF;

    FOR r IN SELECT a.kind, a.balance, a.held FROM accounts a WHERE a.customer_id = debit_customer LOOP
        IF r.kind = 'main' THEN
            result.main := r.balance; result.held := r.held;
        ELSE
            result.savings := r.balance;
        END IF;
    END LOOP;
    RETURN result;
END $$;
