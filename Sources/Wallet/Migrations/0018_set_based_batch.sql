-- A batch of movements that writes each table once (issue 30: the send journey's p99).
--
-- Until now `wallet_move_batch` (migrations 0010, 0017) ran `wallet_move` once per movement: per
-- movement a lock loop, a PIN update, a key lookup, one or two transfer INSERTs (each firing the
-- row trigger `transfers_apply`, one or two UPDATEs), an outbox INSERT and a failed-transfer
-- lookup. Under load a batch of eight sends took about 15 ms of Postgres time, and every PIN hop
-- waited for it. Most of that is per-statement cost (planning, CHECK constraints read again,
-- executor start), paid eight times for work that is the same eight times.
--
-- Two changes, neither weakening a rule:
--
-- 1. `transfers_apply` becomes a statement-level trigger with a transition table: the balances,
--    holds and day counters of every transfer of one INSERT are applied in one UPDATE of the
--    customer accounts and one of the system accounts' shards, whatever inserted them (deposits,
--    payouts, decisions, movements). It keeps every check of the row trigger (migration 0002): a
--    transfer is never created voided, both accounts exist, a system account's posted side goes
--    to its backend's shard, a send or withdrawal counts against its Nairobi day. Sums commute, so
--    one UPDATE is the same as one per row; the day counter does not commute across days, so the
--    rare INSERT that counts against two different days on one account is applied row by row, as
--    before (`ledger_apply_transfer`).
--
-- 2. `wallet_move_batch` decides the whole batch in one pass over data it loads once:
--      * every account of every customer the batch names, locked in id order (as in 0010), then
--        read with the customer's status, language and tier in a second statement (whose
--        snapshot follows any wait for those locks);
--      * every PIN of the batch reserved, compared and, when right, released in one UPDATE, under
--        the same conditions as `wallet_move` (migration 0017);
--      * the batch's keys looked up once in transfers and failed_transfers;
--    then applies `wallet_move`'s rules to each movement in order on balances kept in memory (each
--    movement sees the ones before it, as it did when each one re-read its rows), and writes all
--    transfers in one INSERT, all refusals in one and all receipts in one. Results are the same
--    rows, in the same order, as `wallet_move` gives.
--    A batch the single pass cannot decide exactly runs each movement through `wallet_move`, as
--    before (`ledger_move_each`): a key already used (a replay, a reused key), one key twice in
--    the batch, a key that is another movement's fee id, one customer's PIN twice in the batch
--    (the second must see the first's attempt).
--    A key recorded by someone else meanwhile meets the transfers' primary key, or the guarded
--    and counted inserts, and fails the whole batch, which the gateway then runs movement by
--    movement (GroupCommitter), where the replay is found.

-- The row trigger's work for one transfer (migration 0002): for an INSERT of one transfer, and for
-- the INSERT whose day counters do not add up in one statement.
CREATE FUNCTION ledger_apply_transfer(n transfers) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    counted BOOLEAN := n.kind IN ('p2p', 'withdrawal');
    txn_day DATE := (n.created_at AT TIME ZONE 'Africa/Nairobi')::date;
    customers INT;
    systems INT := 0;
BEGIN
    IF n.status = 'posted' THEN
        UPDATE accounts SET
            balance = balance + CASE WHEN id = n.debit_account THEN -n.amount ELSE n.amount END,
            debits_today = CASE WHEN id <> n.debit_account OR NOT counted OR debits_day > txn_day THEN debits_today
                                WHEN debits_day = txn_day THEN debits_today + n.amount ELSE n.amount END,
            debits_day = CASE WHEN id = n.debit_account AND counted AND (debits_day IS NULL OR debits_day < txn_day)
                              THEN txn_day ELSE debits_day END
        WHERE id IN (n.debit_account, n.credit_account) AND customer_id IS NOT NULL;
        GET DIAGNOSTICS customers = ROW_COUNT;
        IF customers < 2 THEN
            UPDATE account_shards SET balance = balance + CASE WHEN account_id = n.debit_account THEN -n.amount ELSE n.amount END
            WHERE account_id IN (n.debit_account, n.credit_account) AND shard = pg_backend_pid() % 16;
            GET DIAGNOSTICS systems = ROW_COUNT;
        END IF;
        IF customers + systems < 2 THEN
            RAISE EXCEPTION 'account % or % does not exist', n.debit_account, n.credit_account USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSIF n.status = 'pending' THEN
        UPDATE accounts SET held = held + n.amount,
            debits_today = CASE WHEN NOT counted OR debits_day > txn_day THEN debits_today
                                WHEN debits_day = txn_day THEN debits_today + n.amount ELSE n.amount END,
            debits_day = CASE WHEN counted AND (debits_day IS NULL OR debits_day < txn_day) THEN txn_day ELSE debits_day END
        WHERE id = n.debit_account;
        IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM accounts WHERE id = n.credit_account) THEN
            RAISE EXCEPTION 'account % or % does not exist', n.debit_account, n.credit_account USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSE
        RAISE EXCEPTION 'a transfer cannot be created voided' USING ERRCODE = 'check_violation';
    END IF;
END $$;

-- Every transfer of one INSERT applied at once (see the header). Runs at trigger depth 1, which
-- the accounts' and shards' guards (migration 0002) require of a balance change. Index scans only,
-- for the reason given at `wallet_move_batch` below.
CREATE FUNCTION transfers_apply_all() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    ids BIGINT[];
    deltas BIGINT[];
    holds BIGINT[];
    counts BIGINT[];
    days DATE[];
    systems BOOLEAN[];
    posted BOOLEAN[];
    missing BIGINT;
    voided BOOLEAN;
    two_days BOOLEAN;
    shards_expected INT;
    shards_changed INT;
    one transfers;
    first_two transfers[];
BEGIN
    -- One transfer (a deposit, a payout, a movement alone): the row trigger's statements, which
    -- cost less than the sums below.
    SELECT array_agg(n) INTO first_two FROM (SELECT n FROM new_rows n LIMIT 2) x;
    IF first_two IS NULL THEN
        RETURN NULL;
    ELSIF cardinality(first_two) = 1 THEN
        PERFORM ledger_apply_transfer(first_two[1]);
        RETURN NULL;
    END IF;
    -- Per account: the posted change, the new holds, what counts against the day (all of it for
    -- a customer account; only pending withdrawals' for a system account, as the row trigger did).
    SELECT array_agg(s.account ORDER BY s.account), array_agg(s.delta ORDER BY s.account),
           array_agg(s.held ORDER BY s.account),
           array_agg(CASE WHEN a.customer_id IS NOT NULL THEN s.counted ELSE coalesce(s.pending_counted, 0) END ORDER BY s.account),
           array_agg(s.day ORDER BY s.account),
           array_agg(a.customer_id IS NULL ORDER BY s.account), array_agg(s.posted ORDER BY s.account),
           count(*) FILTER (WHERE a.id IS NULL), bool_or(s.voided), bool_or(s.days > 1),
           count(*) FILTER (WHERE a.customer_id IS NULL AND s.posted)
    INTO ids, deltas, holds, counts, days, systems, posted, missing, voided, two_days, shards_expected
    FROM (
        SELECT x.account, sum(x.delta)::bigint AS delta, sum(x.held)::bigint AS held,
               sum(x.counted)::bigint AS counted, sum(x.counted) FILTER (WHERE x.pending)::bigint AS pending_counted,
               max(x.day) FILTER (WHERE x.counted > 0) AS day, count(DISTINCT x.day) FILTER (WHERE x.counted > 0) AS days,
               bool_or(x.voided) AS voided, bool_or(x.posted) AS posted
        FROM (
            SELECT n.debit_account AS account,
                   CASE WHEN n.status = 'posted' THEN -n.amount ELSE 0 END AS delta,
                   CASE WHEN n.status = 'pending' THEN n.amount ELSE 0 END AS held,
                   CASE WHEN n.kind IN ('p2p', 'withdrawal') THEN n.amount ELSE 0 END AS counted,
                   n.status = 'pending' AS pending,
                   (n.created_at AT TIME ZONE 'Africa/Nairobi')::date AS day,
                   n.status NOT IN ('posted', 'pending') AS voided, n.status = 'posted' AS posted
            FROM new_rows n
            UNION ALL
            SELECT n.credit_account, CASE WHEN n.status = 'posted' THEN n.amount ELSE 0 END, 0, 0, false, NULL,
                   false, n.status = 'posted'
            FROM new_rows n
        ) x
        GROUP BY x.account
    ) s LEFT JOIN accounts a ON a.id = s.account;

    IF ids IS NULL THEN
        RETURN NULL;
    ELSIF voided THEN
        RAISE EXCEPTION 'a transfer cannot be created voided' USING ERRCODE = 'check_violation';
    ELSIF missing > 0 THEN
        RAISE EXCEPTION 'an account of this transfer does not exist' USING ERRCODE = 'foreign_key_violation';
    ELSIF two_days THEN
        FOR one IN SELECT * FROM new_rows LOOP
            PERFORM ledger_apply_transfer(one);
        END LOOP;
        RETURN NULL;
    END IF;

    -- `a.id = ANY (ids)` keeps the plan on the primary key whatever the arrays' estimated size.
    WITH customer_side AS (
        UPDATE accounts a SET
            balance = a.balance + CASE WHEN a.customer_id IS NOT NULL THEN v.delta ELSE 0 END,
            held = a.held + v.held,
            debits_today = CASE WHEN v.counted = 0 OR a.debits_day > v.day THEN a.debits_today
                                WHEN a.debits_day = v.day THEN a.debits_today + v.counted ELSE v.counted END,
            debits_day = CASE WHEN v.counted > 0 AND (a.debits_day IS NULL OR a.debits_day < v.day) THEN v.day ELSE a.debits_day END
        FROM unnest(ids, deltas, holds, counts, days) AS v(account, delta, held, counted, day)
        WHERE a.id = ANY (ids) AND a.id = v.account AND (a.customer_id IS NOT NULL OR v.held <> 0)
        RETURNING 1
    ), system_side AS (
        UPDATE account_shards s SET balance = s.balance + v.delta
        FROM unnest(ids, deltas, systems, posted) AS v(account, delta, system, posted)
        WHERE s.account_id = ANY (ids) AND s.account_id = v.account AND v.system AND v.posted
          AND s.shard = pg_backend_pid() % 16
        RETURNING 1
    )
    SELECT count(*) INTO shards_changed FROM system_side;
    IF shards_changed <> shards_expected THEN
        RAISE EXCEPTION 'a system account of this transfer has no shard %', pg_backend_pid() % 16 USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER transfers_apply ON transfers;
DROP FUNCTION transfers_apply();
CREATE TRIGGER transfers_apply AFTER INSERT ON transfers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION transfers_apply_all();

-- The batch as before (migrations 0010, 0017): each movement through `wallet_move`, in order.
-- What the single pass below falls back to. Not a `wallet_` function, so not granted to the
-- gateway's login: on its own it lacks the batch's up-front lock of every account in id order.
CREATE FUNCTION ledger_move_each(p_moves JSONB, p_min BIGINT, p_max BIGINT, p_daily BIGINT)
RETURNS SETOF wallet_move_result LANGUAGE plpgsql AS $$
DECLARE
    m JSONB;
    result wallet_move_result;
BEGIN
    FOR i IN 0 .. jsonb_array_length(p_moves) - 1 LOOP
        m := p_moves->i;
        result := wallet_move(m->>'k', m->>'t', m->>'f', m->>'dm', m->>'dk', m->>'cm', m->>'ck',
                              (m->>'a')::bigint, p_min, p_max, p_daily, (m->>'fee')::bigint,
                              (m->>'pc')::bigint, m->>'pv', (m->>'pa')::int, to_timestamp((m->>'ps')::double precision));
        RETURN NEXT result;
    END LOOP;
END $$;

-- Index scans only (`enable_seqscan = off`): a batch touches a few rows of tables that grow
-- without bound, and its plans are made once per connection and kept until the table is next
-- analysed. Made when the tables were small (a new deployment, a test, a burst after a quiet
-- night), a plan would scan them whole as they grow, until autovacuum's next ANALYZE: measured,
-- a key lookup in a sequential scan of 2,000 transfers took 3.4 ms of an 8 ms batch, and the
-- accounts were read whole to lock a dozen.
CREATE OR REPLACE FUNCTION wallet_move_batch(p_moves JSONB, p_min BIGINT, p_max BIGINT, p_daily BIGINT)
RETURNS SETOF wallet_move_result LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    today DATE := (now() AT TIME ZONE 'Africa/Nairobi')::date;
    -- The movements, one array per field, in the batch's order.
    mk TEXT[]; mt TEXT[]; mf TEXT[]; mdm TEXT[]; mdk TEXT[]; mcm TEXT[]; mck TEXT[];
    ma BIGINT[]; mfee BIGINT[]; mpc BIGINT[]; mpv TEXT[]; mpa INT[]; mps TIMESTAMPTZ[];
    -- The accounts, in id order, locked; `akey` is msisdn/kind.
    aid BIGINT[]; akey TEXT[]; abal BIGINT[]; aheld BIGINT[]; atoday BIGINT[]; aahead BOOLEAN[];
    astatus TEXT[]; alang TEXT[]; aper BIGINT[]; adaily BIGINT[]; amax BIGINT[];
    numbers TEXT[];
    pins_seen BIGINT[]; pins_right BIGINT[];
    fee_account BIGINT;
    written INT;
    moves INT;
    distinct_keys INT;
    pins INT;
    distinct_pins INT;
    negative_fee BOOLEAN;
    incomplete BOOLEAN;
    -- One movement.
    d INT; c INT; o INT;
    amount BIGINT; fee BIGINT;
    refusal TEXT;
    result wallet_move_result;
    nothing wallet_move_result;
    -- What the pass writes.
    t_id TEXT[] := '{}'; t_debit BIGINT[] := '{}'; t_credit BIGINT[] := '{}'; t_amount BIGINT[] := '{}';
    t_kind TEXT[] := '{}'; t_fingerprint TEXT[] := '{}'; t_fee BIGINT[] := '{}'; t_for TEXT[] := '{}';
    f_id TEXT[] := '{}'; f_fingerprint TEXT[] := '{}'; f_error TEXT[] := '{}';
    -- A send's two receipts, one entry per send (the JSON is made by the INSERT).
    r_key TEXT[] := '{}'; r_from TEXT[] := '{}'; r_to TEXT[] := '{}'; r_from_language TEXT[] := '{}'; r_to_language TEXT[] := '{}';
    r_amount BIGINT[] := '{}'; r_fee BIGINT[] := '{}';
BEGIN
    SELECT array_agg(e->>'k' ORDER BY i), array_agg(e->>'t' ORDER BY i), array_agg(e->>'f' ORDER BY i),
           array_agg(e->>'dm' ORDER BY i), array_agg(e->>'dk' ORDER BY i), array_agg(e->>'cm' ORDER BY i),
           array_agg(e->>'ck' ORDER BY i), array_agg((e->>'a')::bigint ORDER BY i), array_agg((e->>'fee')::bigint ORDER BY i),
           array_agg((e->>'pc')::bigint ORDER BY i), array_agg(e->>'pv' ORDER BY i), array_agg((e->>'pa')::int ORDER BY i),
           array_agg(to_timestamp((e->>'ps')::double precision) ORDER BY i),
           count(*), count(DISTINCT e->>'k'), count(e->>'pc'), count(DISTINCT (e->>'pc')::bigint),
           bool_or((e->>'fee')::bigint < 0), bool_or(e->>'fee' IS NULL OR e->>'a' IS NULL OR e->>'k' IS NULL)
    INTO mk, mt, mf, mdm, mdk, mcm, mck, ma, mfee, mpc, mpv, mpa, mps, moves, distinct_keys, pins, distinct_pins, negative_fee, incomplete
    FROM jsonb_array_elements(p_moves) WITH ORDINALITY AS x(e, i);
    IF moves = 0 THEN
        RETURN;
    ELSIF negative_fee THEN
        RAISE EXCEPTION 'a fee is never negative' USING ERRCODE = 'check_violation';
    END IF;

    -- Every account of every customer named, locked in id order (as every batch and movement
    -- locks them); then read, with their customers and tiers, in a second statement, whose
    -- snapshot is taken after any wait for those locks (one statement would read the customers
    -- as they were before it: a suspension committed meanwhile would go unseen). Accounts a
    -- number reached only meanwhile (it changed hands) are locked by the reading statement.
    numbers := ARRAY(SELECT unnest(mdm) UNION SELECT unnest(mcm));
    PERFORM 1 FROM accounts a
    WHERE a.customer_id IN (SELECT cu.id FROM customers cu WHERE cu.msisdn = ANY (numbers))
    ORDER BY a.id
    FOR UPDATE;
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.msisdn || '/' || l.kind ORDER BY l.id),
           array_agg(l.balance ORDER BY l.id), array_agg(l.held ORDER BY l.id),
           array_agg(CASE WHEN l.debits_day = today THEN l.debits_today ELSE 0 END ORDER BY l.id),
           array_agg(coalesce(l.debits_day > today, false) ORDER BY l.id),
           array_agg(l.status ORDER BY l.id), array_agg(l.language ORDER BY l.id),
           array_agg(l.per_transaction ORDER BY l.id), array_agg(l.daily ORDER BY l.id), array_agg(l.max_balance ORDER BY l.id)
    INTO aid, akey, abal, aheld, atoday, aahead, astatus, alang, aper, adaily, amax
    FROM (
        SELECT a.id, cu.msisdn, a.kind, a.balance, a.held, a.debits_day, a.debits_today, cu.status, cu.language,
               t.per_transaction, t.daily, t.max_balance
        FROM accounts a JOIN customers cu ON cu.id = a.customer_id
        LEFT JOIN kyc_tiers t ON t.name = coalesce(cu.tier, (SELECT k.name FROM kyc_tiers k WHERE k.is_default))
        WHERE cu.msisdn = ANY (numbers)
        ORDER BY a.id
        FOR UPDATE OF a
    ) l;

    -- What only movement by movement decides exactly (see the header).
    IF incomplete OR distinct_keys < moves OR distinct_pins < pins
       OR mk && ARRAY(SELECT k || ':fee' FROM unnest(mk) AS k)
       OR EXISTS (SELECT 1 FROM transfers t WHERE t.id = ANY (mk))
       OR EXISTS (SELECT 1 FROM failed_transfers f WHERE f.id = ANY (mk)) THEN
        RETURN QUERY SELECT * FROM ledger_move_each(p_moves, p_min, p_max, p_daily);
        RETURN;
    END IF;

    -- Every PIN of the batch, as `wallet_move` checks one (migration 0017): after the accounts
    -- are locked, each customer's row once (no customer twice, checked above).
    IF pins > 0 THEN
        WITH checked AS (
            UPDATE customers cu SET
                failed_pin_attempts = CASE WHEN cu.pin_hash = m.pv THEN 0
                                           WHEN cu.locked_until <= now() THEN 1 ELSE cu.failed_pin_attempts + 1 END,
                pin_locks = CASE WHEN cu.pin_hash = m.pv THEN 0 ELSE cu.pin_locks END,
                locked_until = CASE WHEN cu.locked_until <= now() THEN NULL ELSE cu.locked_until END
            FROM unnest(mpc, mpv, mdm, mpa, mps) AS m(pc, pv, dm, pa, ps)
            WHERE cu.id = ANY (mpc) AND cu.id = m.pc AND cu.msisdn = m.dm AND NOT cu.pin_reset_required
                AND (cu.locked_until <= now() OR (cu.locked_until IS NULL AND cu.failed_pin_attempts < m.pa))
                AND (cu.pin_reset_completed_at IS NULL OR cu.pin_reset_completed_at <= m.ps)
            RETURNING cu.id, cu.pin_hash = m.pv AS right_value
        )
        SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(id) FILTER (WHERE right_value), '{}')
        INTO pins_seen, pins_right FROM checked;
    END IF;

    FOR i IN 1 .. moves LOOP
        result := nothing;
        IF mpc[i] IS NOT NULL AND NOT mpc[i] = ANY (pins_seen) THEN
            result.outcome := 'pin_unavailable';
            RETURN NEXT result;
            CONTINUE;
        ELSIF mpc[i] IS NOT NULL AND NOT mpc[i] = ANY (pins_right) THEN
            result.outcome := 'pin_wrong';
            RETURN NEXT result;
            CONTINUE;
        END IF;

        d := array_position(akey, mdm[i] || '/' || mdk[i]);
        c := array_position(akey, mcm[i] || '/' || mck[i]);
        amount := ma[i];
        fee := mfee[i];
        refusal := NULL;
        IF d IS NOT NULL AND astatus[d] = 'suspended' THEN
            refusal := 'blocked';
        ELSIF d IS NULL OR astatus[d] <> 'active' THEN
            refusal := 'not_registered';
        ELSIF mdm[i] = mcm[i] AND (mdk[i] = mck[i] OR mt[i] = 'p2p') THEN
            refusal := 'same_account';
        ELSIF c IS NULL OR astatus[c] NOT IN ('active', 'suspended') THEN
            refusal := 'recipient_not_registered';
        ELSIF amount < p_min OR amount > p_max THEN
            refusal := 'limit_exceeded';
        ELSIF mt[i] = 'p2p' AND amount > coalesce(aper[d], p_max) THEN
            refusal := 'limit_exceeded';
        ELSIF mt[i] IN ('p2p', 'withdrawal') AND atoday[d] + amount > least(p_daily, coalesce(adaily[d], p_daily)) THEN
            refusal := 'limit_exceeded';
        ELSIF abal[d] - aheld[d] < amount + fee THEN
            refusal := 'insufficient_funds';
        ELSIF mt[i] = 'p2p' AND amax[c] IS NOT NULL
              AND abal[c] + coalesce(abal[array_position(akey, mcm[i] || '/' || CASE mck[i] WHEN 'main' THEN 'savings' ELSE 'main' END)], 0) + amount > amax[c] THEN
            refusal := 'recipient_limit';
        END IF;

        IF refusal IS NOT NULL THEN
            f_id := f_id || mk[i]; f_fingerprint := f_fingerprint || mf[i]; f_error := f_error || refusal;
            result.outcome := refusal;
            RETURN NEXT result;
            CONTINUE;
        END IF;

        t_id := t_id || mk[i]; t_debit := t_debit || aid[d]; t_credit := t_credit || aid[c];
        t_amount := t_amount || amount; t_kind := t_kind || mt[i];
        t_fingerprint := t_fingerprint || mf[i]; t_fee := t_fee || fee; t_for := t_for || NULL::text;
        IF fee > 0 THEN
            IF fee_account IS NULL THEN
                SELECT a.id INTO fee_account FROM accounts a WHERE a.customer_id IS NULL AND a.kind = 'fee_income';
            END IF;
            t_id := t_id || (mk[i] || ':fee'); t_debit := t_debit || aid[d]; t_credit := t_credit || fee_account;
            t_amount := t_amount || fee; t_kind := t_kind || 'fee'::text;
            t_fingerprint := t_fingerprint || NULL::text; t_fee := t_fee || 0::bigint; t_for := t_for || mk[i];
        END IF;
        IF mt[i] = 'p2p' THEN
            r_key := r_key || mk[i]; r_from := r_from || mdm[i]; r_to := r_to || mcm[i];
            r_from_language := r_from_language || alang[d]; r_to_language := r_to_language || alang[c];
            r_amount := r_amount || amount; r_fee := r_fee || fee;
        END IF;

        -- The balances the next movement sees, as the transfers' trigger will leave them.
        abal[d] := abal[d] - amount - fee;
        abal[c] := abal[c] + amount;
        IF mt[i] IN ('p2p', 'withdrawal') AND NOT aahead[d] THEN
            atoday[d] := atoday[d] + amount;
        END IF;

        result.outcome := 'posted'; result.kind := mt[i]; result.amount := amount; result.fee := fee;
        result.created_at := now();
        o := array_position(akey, mdm[i] || '/' || CASE mdk[i] WHEN 'main' THEN 'savings' ELSE 'main' END);
        IF mdk[i] = 'main' THEN
            result.main := abal[d]; result.held := aheld[d];
            result.savings := CASE WHEN mt[i] = 'p2p' THEN abal[o] ELSE abal[c] END;
        ELSE
            result.savings := abal[d];
            result.main := CASE WHEN mt[i] = 'p2p' THEN abal[o] ELSE abal[c] END;
            result.held := CASE WHEN mt[i] = 'p2p' THEN NULL ELSE aheld[c] END;
        END IF;
        RETURN NEXT result;
    END LOOP;

    -- Each table once. A key recorded by someone else since the check above (a transfer or a
    -- refusal, committed while this batch waited for a PIN's row) fails the batch: on the
    -- transfers' primary key, or by the counts below. The gateway then runs each movement alone,
    -- where the first outcome is replayed.
    IF cardinality(t_id) > 0 THEN
        INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
        SELECT u.id, u.debit, u.credit, u.amount, u.kind, 'posted',
               CASE WHEN u.for_key IS NOT NULL THEN jsonb_build_object('for', u.for_key)
                    WHEN u.fee > 0 THEN jsonb_build_object('fingerprint', u.fingerprint, 'fee', u.fee)
                    ELSE jsonb_build_object('fingerprint', u.fingerprint) END
        FROM unnest(t_id, t_debit, t_credit, t_amount, t_kind, t_fingerprint, t_fee, t_for) AS u(id, debit, credit, amount, kind, fingerprint, fee, for_key)
        WHERE NOT EXISTS (SELECT 1 FROM failed_transfers f WHERE f.id = u.id);
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written < cardinality(t_id) THEN
            RAISE EXCEPTION 'an idempotency key of this batch was recorded meanwhile, retry' USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;
    IF cardinality(f_id) > 0 THEN
        INSERT INTO failed_transfers (id, fingerprint, error)
        SELECT u.* FROM unnest(f_id, f_fingerprint, f_error) AS u(id, fingerprint, error)
        WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = u.id)
        ON CONFLICT (id) DO NOTHING;
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written < cardinality(f_id) THEN
            RAISE EXCEPTION 'an idempotency key of this batch was recorded meanwhile, retry' USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;
    IF cardinality(r_key) > 0 THEN
        INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
        SELECT 'sms',
               CASE WHEN side.sent THEN u.sender ELSE u.recipient END,
               CASE WHEN side.sent THEN u.sender_language ELSE u.recipient_language END,
               CASE WHEN side.sent THEN 'sent' ELSE 'received' END,
               CASE WHEN NOT side.sent THEN jsonb_build_object('amount', u.amount::text, 'key', u.key, 'from', u.sender)
                    WHEN u.fee > 0 THEN jsonb_build_object('amount', u.amount::text, 'key', u.key, 'to', u.recipient, 'fee', u.fee::text, 'reason', 'fee')
                    ELSE jsonb_build_object('amount', u.amount::text, 'key', u.key, 'to', u.recipient) END,
               u.key || CASE WHEN side.sent THEN ':sent' ELSE ':received' END
        FROM unnest(r_key, r_from, r_to, r_from_language, r_to_language, r_amount, r_fee) WITH ORDINALITY
                 AS u(key, sender, recipient, sender_language, recipient_language, amount, fee, n),
             (VALUES (true), (false)) AS side(sent)
        ORDER BY u.n, NOT side.sent
        ON CONFLICT (dedupe_key) DO NOTHING;
    END IF;
END $$;

SELECT ledger_apply_privileges();

REVOKE EXECUTE ON FUNCTION ledger_apply_transfer(transfers) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ledger_move_each(JSONB, BIGINT, BIGINT, BIGINT) FROM PUBLIC;
