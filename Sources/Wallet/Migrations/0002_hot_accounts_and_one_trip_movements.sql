-- Three changes for throughput, none weakening an invariant:
--
-- 1. Hot system accounts. Every deposit credits a customer from the one M-Pesa float account;
--    every withdrawal lands in the one payouts-in-flight account. Updating that single row in
--    each transaction serialises them all behind its row lock (one commit at a time). A system
--    account's posted balance is therefore kept in 16 shard rows; a transaction adds to the
--    shard its backend picks, so concurrent transactions rarely meet. A system account's
--    balance is its row's balance plus its shards': see the `account_balances` view, which is
--    what every audit sums. Customer accounts are not sharded: their CHECK needs one row.
--
-- 2. Movements in one round trip. `wallet_move` and `wallet_complete_deposit` lock, check for a
--    replay, apply the rules, insert the transfer and queue the receipts inside one function
--    call (one statement, its own transaction), instead of eight or nine statements each
--    waiting for the network.
--
-- 3. The daily limit from a counter. What a customer account sent and withdrew in the current
--    Nairobi day is kept on its row (`debits_day`, `debits_today`) by the transfer triggers, so
--    the check reads the row it has locked anyway instead of summing the day's transfers.

CREATE TABLE account_shards (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    shard SMALLINT NOT NULL CHECK (shard BETWEEN 0 AND 15),
    balance BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, shard)
);

-- Shards change only through transfers, like balances; a new one starts at zero. The guards
-- are triggers with WHEN conditions, so the common case (an update made by the transfer
-- triggers, at trigger depth 1) costs a C expression, not a PL/pgSQL call.
CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER account_shards_start_at_zero BEFORE INSERT ON account_shards FOR EACH ROW
    WHEN (NEW.balance <> 0) EXECUTE FUNCTION ledger_refuse('a shard starts at zero');
CREATE TRIGGER account_shards_change_through_transfers BEFORE UPDATE ON account_shards FOR EACH ROW
    WHEN (pg_trigger_depth() = 0 OR NEW.account_id <> OLD.account_id OR NEW.shard <> OLD.shard)
    EXECUTE FUNCTION ledger_refuse('balances change only through transfers');
CREATE TRIGGER account_shards_never_deleted BEFORE DELETE ON account_shards FOR EACH ROW
    EXECUTE FUNCTION ledger_refuse('account shards are never deleted');

INSERT INTO account_shards (account_id, shard)
SELECT a.id, s FROM accounts a, generate_series(0, 15) s WHERE a.customer_id IS NULL;

-- A system account created later gets its shards at once.
CREATE FUNCTION accounts_shard_system() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_id IS NULL THEN
        INSERT INTO account_shards (account_id, shard) SELECT NEW.id, s FROM generate_series(0, 15) s;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER accounts_shard_system AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_shard_system();

-- The day's sends and withdrawals (not voided) per debit account, kept by the transfer
-- triggers; a row whose `debits_day` is not today has sent nothing today.
ALTER TABLE accounts
    ADD COLUMN debits_day DATE,
    ADD COLUMN debits_today BIGINT NOT NULL DEFAULT 0;
UPDATE accounts a SET debits_day = d.day, debits_today = d.total
FROM (
    SELECT t.debit_account, (now() AT TIME ZONE 'Africa/Nairobi')::date AS day, sum(t.amount)::bigint AS total
    FROM transfers t
    WHERE t.kind IN ('p2p', 'withdrawal') AND t.status <> 'voided'
      AND (t.created_at AT TIME ZONE 'Africa/Nairobi')::date = (now() AT TIME ZONE 'Africa/Nairobi')::date
    GROUP BY t.debit_account
) d
WHERE a.id = d.debit_account;

-- The accounts guard of migration 0001, as WHEN-clause triggers (a PL/pgSQL call on every
-- balance update was a measurable part of a send), now also keeping an account's id and owner.
DROP TRIGGER accounts_guard ON accounts;
DROP FUNCTION accounts_guard();
CREATE FUNCTION accounts_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
        RAISE EXCEPTION 'an account keeps its id and owner' USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'balances change only through transfers' USING ERRCODE = 'restrict_violation';
END $$;
-- One trigger, one WHEN condition: it is read and compiled for every UPDATE statement.
CREATE TRIGGER accounts_change_only_through_transfers BEFORE UPDATE ON accounts FOR EACH ROW
    WHEN ((pg_trigger_depth() = 0 AND (NEW.balance <> OLD.balance OR NEW.held <> OLD.held
                                       OR NEW.debits_today <> OLD.debits_today OR NEW.debits_day IS DISTINCT FROM OLD.debits_day))
          OR NEW.id <> OLD.id OR NEW.customer_id IS DISTINCT FROM OLD.customer_id)
    EXECUTE FUNCTION accounts_refuse_change();
CREATE TRIGGER accounts_never_deleted BEFORE DELETE ON accounts FOR EACH ROW
    EXECUTE FUNCTION ledger_refuse('accounts are never deleted');

-- Adds `delta` to an account's posted balance: a customer account's row, or one shard of a
-- system account (chosen by backend, so concurrent sessions mostly use different rows).
-- An account that does not exist raises foreign_key_violation.
CREATE FUNCTION ledger_add(account BIGINT, delta BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET balance = balance + delta WHERE id = account AND customer_id IS NOT NULL;
    IF NOT FOUND THEN
        UPDATE account_shards SET balance = balance + delta WHERE account_id = account AND shard = pg_backend_pid() % 16;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'account % does not exist', account USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
END $$;

-- Applies a new transfer: as ledger_add on both sides, but in as few statements as possible
-- (this runs in every movement), the debit side also counting the day's sends and withdrawals.
CREATE OR REPLACE FUNCTION transfers_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- Sends and withdrawals count against the day they were made, from the moment they are
    -- made (a pending withdrawal included).
    counted BOOLEAN := NEW.kind IN ('p2p', 'withdrawal');
    txn_day DATE := (NEW.created_at AT TIME ZONE 'Africa/Nairobi')::date;
    customers INT;
    systems INT := 0;
BEGIN
    IF NEW.status = 'posted' THEN
        -- Both customer sides in one statement (rows in id order), then any system side's shard.
        UPDATE accounts SET
            balance = balance + CASE WHEN id = NEW.debit_account THEN -NEW.amount ELSE NEW.amount END,
            debits_today = CASE WHEN id <> NEW.debit_account OR NOT counted OR debits_day > txn_day THEN debits_today
                                WHEN debits_day = txn_day THEN debits_today + NEW.amount ELSE NEW.amount END,
            debits_day = CASE WHEN id = NEW.debit_account AND counted AND (debits_day IS NULL OR debits_day < txn_day)
                              THEN txn_day ELSE debits_day END
        WHERE id IN (NEW.debit_account, NEW.credit_account) AND customer_id IS NOT NULL;
        GET DIAGNOSTICS customers = ROW_COUNT;
        IF customers < 2 THEN
            UPDATE account_shards SET balance = balance + CASE WHEN account_id = NEW.debit_account THEN -NEW.amount ELSE NEW.amount END
            WHERE account_id IN (NEW.debit_account, NEW.credit_account) AND shard = pg_backend_pid() % 16;
            GET DIAGNOSTICS systems = ROW_COUNT;
        END IF;
        -- Debit and credit differ (CHECK), so two rows changed exactly when both accounts exist.
        IF customers + systems < 2 THEN
            RAISE EXCEPTION 'account % or % does not exist', NEW.debit_account, NEW.credit_account USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSIF NEW.status = 'pending' THEN
        UPDATE accounts SET held = held + NEW.amount,
            debits_today = CASE WHEN NOT counted OR debits_day > txn_day THEN debits_today
                                WHEN debits_day = txn_day THEN debits_today + NEW.amount ELSE NEW.amount END,
            debits_day = CASE WHEN counted AND (debits_day IS NULL OR debits_day < txn_day) THEN txn_day ELSE debits_day END
        WHERE id = NEW.debit_account;
        IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM accounts WHERE id = NEW.credit_account) THEN
            RAISE EXCEPTION 'account % or % does not exist', NEW.debit_account, NEW.credit_account USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSE
        RAISE EXCEPTION 'a transfer cannot be created voided' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION transfers_resolve() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'transfers are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'pending' OR NEW.status NOT IN ('posted', 'voided')
        OR NEW.id <> OLD.id OR NEW.debit_account <> OLD.debit_account OR NEW.credit_account <> OLD.credit_account
        OR NEW.amount <> OLD.amount OR NEW.kind <> OLD.kind OR NEW.created_at <> OLD.created_at
        OR NEW.resolves IS DISTINCT FROM OLD.resolves THEN
        RAISE EXCEPTION 'only a pending transfer may change, and only to posted or voided' USING ERRCODE = 'restrict_violation';
    END IF;
    -- A voided send or withdrawal no longer counts against its day (if that day is still running).
    UPDATE accounts SET held = held - OLD.amount,
        debits_today = CASE WHEN NEW.status = 'voided' AND OLD.kind IN ('p2p', 'withdrawal')
                             AND debits_day = (OLD.created_at AT TIME ZONE 'Africa/Nairobi')::date
                            THEN greatest(debits_today - OLD.amount, 0) ELSE debits_today END
    WHERE id = OLD.debit_account;
    IF NEW.status = 'posted' THEN
        PERFORM ledger_add(OLD.debit_account, -OLD.amount);
        PERFORM ledger_add(OLD.credit_account, OLD.amount);
    END IF;
    NEW.resolved_at := now();
    RETURN NEW;
END $$;

-- Every account's balance, shards included: what audits sum (to zero).
CREATE VIEW account_balances AS
SELECT a.id, a.customer_id, a.kind,
       a.balance + coalesce((SELECT sum(s.balance) FROM account_shards s WHERE s.account_id = a.id), 0)::bigint AS balance,
       a.held
FROM accounts a;

-- The transfer's foreign keys would take a KEY SHARE lock on the float row in every deposit,
-- turning it into a multixact hot spot. Existence is checked by `transfers_apply` (an unknown
-- account raises foreign_key_violation); accounts are never deleted and
-- never change id, so existence at insert is existence forever.
ALTER TABLE transfers DROP CONSTRAINT transfers_debit_account_fkey;
ALTER TABLE transfers DROP CONSTRAINT transfers_credit_account_fkey;

-- Outcome of a movement: 'posted' (new), 'replayed' (the key's earlier success), or the code
-- of a refusal (new or replayed), and the initiator's balances after it.
CREATE TYPE wallet_move_result AS (
    outcome TEXT,
    kind TEXT,
    amount BIGINT,
    created_at TIMESTAMPTZ,
    main BIGINT,
    savings BIGINT,
    held BIGINT
);

-- One movement between two customer accounts (send, save, unsave), once per key. Locks both
-- accounts in id order (no deadlocks between movements; a racing copy of the key has committed
-- by the time the locks are ours), applies the rules, and inserts the transfer unless the key
-- is taken. A taken key replays its first outcome, success or refusal, when the parameters
-- (the fingerprint) are the same. A refusal is recorded under the key, so a retry is refused
-- the same way even after the customer could afford it.
CREATE FUNCTION wallet_move(
    p_key TEXT, p_kind TEXT, p_fingerprint TEXT,
    p_debit_msisdn TEXT, p_debit_kind TEXT, p_credit_msisdn TEXT, p_credit_kind TEXT,
    p_amount BIGINT, p_min BIGINT, p_max BIGINT, p_daily BIGINT
) RETURNS wallet_move_result LANGUAGE plpgsql
-- Every statement here is a point lookup by key, for which the generic plan is the right one;
-- without this, PL/pgSQL keeps planning some of them afresh on every call.
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
    result wallet_move_result;
BEGIN
    FOR r IN
        SELECT a.id, c.id AS customer, c.msisdn, a.kind, a.balance - a.held AS spendable, c.status, c.language,
               CASE WHEN a.debits_day = (now() AT TIME ZONE 'Africa/Nairobi')::date THEN a.debits_today ELSE 0 END AS today,
               a.balance, a.held,
               -- The customer's other account, read (not locked) for the initiator's receipt.
               (SELECT o.balance FROM accounts o WHERE o.customer_id = c.id AND o.kind <> a.kind) AS other
        FROM accounts a JOIN customers c ON c.id = a.customer_id
        WHERE (c.msisdn = p_debit_msisdn AND a.kind = p_debit_kind) OR (c.msisdn = p_credit_msisdn AND a.kind = p_credit_kind)
        ORDER BY a.id
        FOR UPDATE OF a
    LOOP
        IF r.msisdn = p_debit_msisdn AND r.kind = p_debit_kind THEN
            debit_id := r.id; debit_customer := r.customer; debit_status := r.status; debit_language := r.language;
            available := r.spendable; today := r.today; debit_row := r;
        END IF;
        IF r.msisdn = p_credit_msisdn AND r.kind = p_credit_kind THEN
            credit_id := r.id; credit_status := r.status; credit_language := r.language; credit_row := r;
        END IF;
    END LOOP;

    IF debit_id IS NULL OR debit_status <> 'active' THEN
        refusal := 'not_registered';
    ELSIF p_debit_msisdn = p_credit_msisdn AND (p_debit_kind = p_credit_kind OR p_kind = 'p2p') THEN
        refusal := 'same_account';
    ELSIF credit_id IS NULL OR credit_status <> 'active' THEN
        refusal := 'recipient_not_registered';
    ELSIF p_amount < p_min OR p_amount > p_max THEN
        refusal := 'limit_exceeded';
    END IF;
    IF refusal IS NULL AND p_kind IN ('p2p', 'withdrawal') AND today + p_amount > p_daily THEN
        refusal := 'limit_exceeded';
    END IF;
    IF refusal IS NULL AND available < p_amount THEN
        refusal := 'insufficient_funds';
    END IF;

    IF refusal IS NULL THEN
        INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata)
        SELECT p_key, debit_id, credit_id, p_amount, p_kind, 'posted', jsonb_build_object('fingerprint', p_fingerprint)
        WHERE NOT EXISTS (SELECT 1 FROM failed_transfers f WHERE f.id = p_key)
        ON CONFLICT (id) DO NOTHING
        RETURNING transfers.created_at INTO result.created_at;
        IF FOUND THEN
            IF p_kind = 'p2p' THEN
                INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key) VALUES
                    ('sms', p_debit_msisdn, debit_language, 'sent',
                     jsonb_build_object('amount', p_amount::text, 'key', p_key, 'to', p_credit_msisdn), p_key || ':sent'),
                    ('sms', p_credit_msisdn, credit_language, 'received',
                     jsonb_build_object('amount', p_amount::text, 'key', p_key, 'from', p_debit_msisdn), p_key || ':received')
                ON CONFLICT (dedupe_key) DO NOTHING;
            END IF;
            result.outcome := 'posted'; result.kind := p_kind; result.amount := p_amount;
            -- The initiator's balances after it, from the rows read above (locked, or, for the
            -- other account of a send, untouched by this movement).
            IF p_debit_kind = 'main' THEN
                result.main := debit_row.balance - p_amount; result.held := debit_row.held;
                result.savings := CASE WHEN p_kind = 'p2p' THEN debit_row.other ELSE credit_row.balance + p_amount END;
            ELSE
                result.savings := debit_row.balance - p_amount;
                result.main := CASE WHEN p_kind = 'p2p' THEN debit_row.other ELSE credit_row.balance + p_amount END;
                result.held := CASE WHEN p_kind = 'p2p' THEN NULL ELSE credit_row.held END;
            END IF;
            RETURN result;
        END IF;
    END IF;

    IF result.outcome IS NULL THEN
        -- Refused, or the key is taken: a replay of the key's first outcome, if it had one.
        SELECT t.kind, t.amount, t.created_at, t.metadata->>'fingerprint' AS fingerprint INTO r FROM transfers t WHERE t.id = p_key;
        IF FOUND THEN
            IF r.fingerprint IS DISTINCT FROM p_fingerprint THEN
                result.outcome := 'idempotency_key_reused';
                RETURN result;
            END IF;
            result.outcome := 'replayed'; result.kind := r.kind; result.amount := r.amount; result.created_at := r.created_at;
        ELSE
            SELECT f.fingerprint, f.error INTO r FROM failed_transfers f WHERE f.id = p_key;
            IF FOUND THEN
                result.outcome := CASE WHEN r.fingerprint = p_fingerprint THEN r.error ELSE 'idempotency_key_reused' END;
                RETURN result;
            END IF;
            IF refusal IS NULL THEN
                -- The key's other holder rolled back between our insert and this look: go again.
                RAISE EXCEPTION 'idempotency key % changed hands, retry', p_key USING ERRCODE = 'serialization_failure';
            END IF;
            INSERT INTO failed_transfers (id, fingerprint, error) VALUES (p_key, p_fingerprint, refusal) ON CONFLICT (id) DO NOTHING;
            result.outcome := refusal;
            RETURN result;
        END IF;
    END IF;

    -- A replay: the initiator's balances now.
    FOR r IN SELECT a.kind, a.balance, a.held FROM accounts a WHERE a.customer_id = debit_customer LOOP
        IF r.kind = 'main' THEN
            result.main := r.balance; result.held := r.held;
        ELSE
            result.savings := r.balance;
        END IF;
    END LOOP;
    RETURN result;
END $$;

-- Credits a paid deposit exactly once, whatever number of times the callback arrives, when
-- amount and phone match what was asked; queues the SMS receipt. Outcomes: 'credited',
-- 'already_completed', 'mismatch' (recorded on the deposit, nothing credited), 'unknown'.
CREATE FUNCTION wallet_complete_deposit(p_checkout TEXT, p_receipt TEXT, p_amount BIGINT, p_phone TEXT, p_raw JSONB)
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
        RETURN QUERY SELECT 'already_completed'::text, d.id, d.idempotency_key, d.msisdn, d.amount, d.status, d.checkout_request_id, d.receipt;
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
