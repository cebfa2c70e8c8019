-- A send's PIN checked in the movement's own statement, so the PIN hop takes one round trip to
-- the database instead of three (reserve an attempt, release it, move).
--
-- The gateway computes the PIN's value under the newest key for the customer id it last saw for
-- the number (PINVault: the value names the id) and passes it with the movement. Before anything
-- else, wallet_move then does what Wallet.verifyPIN does, in one UPDATE of the customer's row:
--   * the same conditions as reserving an attempt (not locked, or a lock that ran out; fewer
--     attempts counted than the limit; no PIN reset pending), and also the number still belongs
--     to that id and no PIN reset's cooling-off window is running (`p_pin_cooling_since`: the
--     window's start by the gateway's clock). Otherwise nothing changes and the outcome is
--     'pin_unavailable': the gateway then takes the usual way, which gives the lock, the pending
--     reset or the cooling-off its own answer;
--   * the value matches: the attempt and the earlier wrong ones are released (as a right PIN
--     does) and the movement goes on, in the same transaction;
--   * it does not match: the attempt stays counted, nothing else happens, and the outcome is
--     'pin_wrong'. The gateway then judges the attempt it holds as verifyPIN does (a value under
--     an older key or an scrypt hash may still be right) and locks after the limit, without
--     counting it again.
-- So a guess is always counted before it is answered, and no number of concurrent guesses gets
-- past the limit, as before. Neither PIN outcome is recorded under the idempotency key.
DROP FUNCTION wallet_move(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT, BIGINT, BIGINT, BIGINT, BIGINT);

CREATE FUNCTION wallet_move(
    p_key TEXT, p_kind TEXT, p_fingerprint TEXT,
    p_debit_msisdn TEXT, p_debit_kind TEXT, p_credit_msisdn TEXT, p_credit_kind TEXT,
    p_amount BIGINT, p_min BIGINT, p_max BIGINT, p_daily BIGINT, p_fee BIGINT,
    p_pin_customer BIGINT DEFAULT NULL, p_pin_value TEXT DEFAULT NULL, p_pin_attempts INT DEFAULT NULL,
    p_pin_cooling_since TIMESTAMPTZ DEFAULT NULL
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
    pin_right BOOLEAN;
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

    -- The PIN, in the same statement (see the header): one attempt reserved, judged and, when
    -- right, released, exactly as Wallet.verifyPIN does in three. After the accounts are locked,
    -- as a batch locks them (migration 0010): accounts first, then the customer's row, on every
    -- path, so a movement alone and a batch never wait on each other in a cycle.
    IF p_pin_customer IS NOT NULL THEN
        UPDATE customers SET
            failed_pin_attempts = CASE WHEN pin_hash = p_pin_value THEN 0
                                       WHEN locked_until <= now() THEN 1 ELSE failed_pin_attempts + 1 END,
            pin_locks = CASE WHEN pin_hash = p_pin_value THEN 0 ELSE pin_locks END,
            locked_until = CASE WHEN locked_until <= now() THEN NULL ELSE locked_until END
        WHERE id = p_pin_customer AND msisdn = p_debit_msisdn AND NOT pin_reset_required
            AND (locked_until <= now() OR (locked_until IS NULL AND failed_pin_attempts < p_pin_attempts))
            AND (pin_reset_completed_at IS NULL OR pin_reset_completed_at <= p_pin_cooling_since)
        RETURNING pin_hash = p_pin_value INTO pin_right;
        IF NOT FOUND THEN
            result.outcome := 'pin_unavailable';
            RETURN result;
        ELSIF pin_right IS NOT TRUE THEN
            result.outcome := 'pin_wrong';
            RETURN result;
        END IF;
    END IF;

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

-- The batch as in migration 0010, passing each movement's PIN fields (pc: customer id, pv: value,
-- pa: attempts before a lock, ps: the cooling-off window's start; absent for movements without a PIN).
CREATE OR REPLACE FUNCTION wallet_move_batch(p_moves JSONB, p_min BIGINT, p_max BIGINT, p_daily BIGINT)
RETURNS SETOF wallet_move_result LANGUAGE plpgsql AS $$
DECLARE
    m JSONB;
    result wallet_move_result;
BEGIN
    -- Index lookups only: the numbers as an array (a join against the JSON would make the
    -- planner hash every customer).
    PERFORM 1 FROM accounts a
    WHERE a.customer_id IN (
        SELECT c.id FROM customers c
        WHERE c.msisdn = ANY (ARRAY(SELECT e->>'dm' FROM jsonb_array_elements(p_moves) e
                                    UNION SELECT e->>'cm' FROM jsonb_array_elements(p_moves) e)))
    ORDER BY a.id
    FOR UPDATE;
    FOR i IN 0 .. jsonb_array_length(p_moves) - 1 LOOP
        m := p_moves->i;
        result := wallet_move(m->>'k', m->>'t', m->>'f', m->>'dm', m->>'dk', m->>'cm', m->>'ck',
                              (m->>'a')::bigint, p_min, p_max, p_daily, (m->>'fee')::bigint,
                              (m->>'pc')::bigint, m->>'pv', (m->>'pa')::int, to_timestamp((m->>'ps')::double precision));
        RETURN NEXT result;
    END LOOP;
END $$;

SELECT ledger_apply_privileges();
