-- Least privilege, staff identity from the database, and the provenance of every transfer.
--
-- The schema belongs to its owner, the login `ussd-gateway migrate` runs as (break-glass: see
-- SECURITY.md). Everyone else logs in as a member of a group role:
--   ussd_app       what `serve` needs: reads, its own bookkeeping tables, INSERT only on the audit
--                  log; money only through the `wallet_*` functions, which run as the owner
--                  (SECURITY DEFINER, a fixed search_path, EXECUTE revoked from PUBLIC);
--   ussd_report    read-only: reports and the ledger audit;
--   ussd_operator  support staff: reads, desk changes that move no money, and asking for
--                  corrections, reversals and PIN resets;
--   ussd_approver  may decide what an operator asked (and may ask, as an operator).
-- Staff are recorded by the database (`current_user`), never by a name they type: the desk's
-- own login switches to the person's role with SET LOCAL ROLE, the CLI connects as the person.

-- Roles are cluster-wide and several databases may migrate at once (the tests do): each is
-- created when missing, and a concurrent creator's duplicate is not an error.
DO $$
DECLARE
    r TEXT;
BEGIN
    FOREACH r IN ARRAY ARRAY['ussd_app', 'ussd_report', 'ussd_operator', 'ussd_approver'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role('ussd_approver', 'ussd_operator', 'MEMBER') THEN
        BEGIN
            GRANT ussd_operator TO ussd_approver;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END $$;

-- True when the current statement runs inside one of the wallet's functions (a line of the call
-- stack is a `wallet_` PL/pgSQL function): what tells a movement made through the rules from a row
-- written by hand. Nobody but the owner writes transfers at all, and nobody but the owner can
-- create functions here; against the owner (break-glass) this is best effort, no more.
CREATE FUNCTION ledger_called_from_wallet() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    stack TEXT;
BEGIN
    GET DIAGNOSTICS stack = PG_CONTEXT;
    RETURN stack ~ '(^|\n)PL/pgSQL function wallet_[a-z_]+\(';
END $$;

-- True when the current role is the schema's owner (as the wallet's SECURITY DEFINER functions
-- run), or a superuser.
CREATE FUNCTION ledger_is_owner() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT pg_has_role(current_user, (SELECT nspowner FROM pg_namespace WHERE oid = current_schema()::regnamespace), 'USAGE')
$$;

-- The member of staff acting: the session's current role, which must be a person's own (a group
-- role taken with SET ROLE would hide who it was, and let one person ask as the group and approve
-- as themselves).
CREATE FUNCTION ledger_staff_identity() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF current_user IN ('ussd_app', 'ussd_report', 'ussd_operator', 'ussd_approver') THEN
        RAISE EXCEPTION 'act as your own login, not as the group role %', current_user USING ERRCODE = 'UL004';
    END IF;
    RETURN current_user;
END $$;

-- Limits of the staff desk, written by `ussd-gateway migrate` from LEDGER_DUAL_APPROVAL_ABOVE and
-- LEDGER_ADJUST_MAX (in cents): requests above the first need two approvers, and no adjustment
-- may exceed the second. Read by the database's own checks, never by the CLI alone.
CREATE TABLE ledger_settings (
    name TEXT PRIMARY KEY CHECK (name IN ('dual_approval_above', 'adjust_max')),
    value BIGINT NOT NULL CHECK (value > 0)
);
INSERT INTO ledger_settings (name, value) VALUES ('dual_approval_above', 10000000), ('adjust_max', 100000000);

-- ---------------------------------------------------------------------------------------------
-- Provenance: every transfer names what caused it.
--   movement:<key>   a channel movement (send, save, unsave; a fee follows its movement)
--   deposit:<id>     a deposit completed by the provider's word (STK or paybill)
--   payout:<id>      a withdrawal's hold, its fee, and the fee's refund
--   request:<id>     a correction or reversal two people approved
--   c2b:<TransID>    a paybill payment Safaricom confirmed (credited, or parked in suspense)
-- The cause is stamped by the database when the row comes from a wallet function, and wiped
-- when it does not: a transfer written by hand has none, whatever it claims, and `ledger audit`
-- names it.
ALTER TABLE transfers ADD COLUMN cause TEXT;

CREATE FUNCTION transfers_provenance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ledger_called_from_wallet() THEN
        NEW.cause := NULL;
        RETURN NEW;
    END IF;
    IF NEW.cause IS NULL THEN
        NEW.cause := CASE
            WHEN NEW.metadata ? 'cause' THEN NEW.metadata->>'cause'
            WHEN NEW.kind = 'deposit' AND NEW.id LIKE 'deposit:%' THEN NEW.id
            WHEN NEW.kind IN ('p2p', 'save', 'unsave') THEN 'movement:' || NEW.id
            WHEN NEW.kind = 'fee' AND NEW.metadata ? 'for' AND NEW.metadata->>'for' NOT LIKE 'withdrawal:%' THEN 'movement:' || (NEW.metadata->>'for')
        END;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER transfers_provenance BEFORE INSERT ON transfers FOR EACH ROW EXECUTE FUNCTION transfers_provenance();

-- Transfers made before this migration: their causes as their ids and links say, set by joins
-- (a ledger of millions of rows takes seconds, not a scan per row). The indexes serve the ledger
-- audit's provenance check as well.
CREATE INDEX deposits_transfer ON deposits (transfer_id) WHERE transfer_id IS NOT NULL;
CREATE INDEX payouts_transfer ON payouts (transfer_id);
CREATE INDEX ledger_requests_transfer ON ledger_requests (transfer_id) WHERE transfer_id IS NOT NULL;
ALTER TABLE transfers DISABLE TRIGGER transfers_resolve;
UPDATE transfers t SET cause = t.id WHERE t.kind = 'deposit' AND t.id LIKE 'deposit:%';
UPDATE transfers t SET cause = 'movement:' || t.id WHERE t.kind IN ('p2p', 'save', 'unsave');
UPDATE transfers t SET cause = 'request:' || r.id FROM ledger_requests r WHERE r.transfer_id = t.id;
UPDATE transfers t SET cause = 'payout:' || p.id FROM payouts p WHERE t.id = p.transfer_id;
UPDATE transfers t SET cause = 'payout:' || p.id FROM payouts p WHERE t.id = p.transfer_id || ':fee';
UPDATE transfers t SET cause = 'payout:' || p.id FROM payouts p WHERE t.id = p.transfer_id || ':fee-refund';
UPDATE transfers t SET cause = 'movement:' || (t.metadata->>'for') WHERE t.kind = 'fee' AND t.cause IS NULL AND t.metadata ? 'for';
ALTER TABLE transfers ENABLE TRIGGER transfers_resolve;

-- A transfer's cause never changes once written.
CREATE OR REPLACE FUNCTION transfers_resolve() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'transfers are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'pending' OR NEW.status NOT IN ('posted', 'voided')
        OR NEW.id <> OLD.id OR NEW.debit_account <> OLD.debit_account OR NEW.credit_account <> OLD.credit_account
        OR NEW.amount <> OLD.amount OR NEW.kind <> OLD.kind OR NEW.created_at <> OLD.created_at
        OR NEW.resolves IS DISTINCT FROM OLD.resolves OR NEW.cause IS DISTINCT FROM OLD.cause THEN
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

-- ---------------------------------------------------------------------------------------------
-- Withdrawals, through the wallet's functions: the hold (a pending transfer to the payouts in
-- flight) with its payout row, the fee, and the hold's end, posted or voided with the fee refunded.

-- Holds `p_amount` from the customer's main account (locked by the caller) for payout `p_payout`.
CREATE FUNCTION wallet_hold_withdrawal(p_payout TEXT, p_account BIGINT, p_customer BIGINT, p_msisdn TEXT, p_amount BIGINT, p_fingerprint TEXT, p_fee BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    transfer TEXT := 'withdrawal:' || p_payout;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM accounts a JOIN customers c ON c.id = a.customer_id
                   WHERE a.id = p_account AND a.kind = 'main' AND c.id = p_customer AND c.msisdn = p_msisdn) THEN
        RAISE EXCEPTION 'account % is not the main account of customer %', p_account, p_customer USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata, cause)
    SELECT transfer, p_account, p.id, p_amount, 'withdrawal', 'pending', jsonb_build_object('fingerprint', p_fingerprint), 'payout:' || p_payout
    FROM accounts p WHERE p.customer_id IS NULL AND p.kind = 'payouts_in_flight';
    INSERT INTO payouts (id, customer_id, msisdn, amount, transfer_id, fee) VALUES (p_payout, p_customer, p_msisdn, p_amount, transfer, p_fee);
    IF p_fee > 0 THEN
        INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata, cause)
        SELECT transfer || ':fee', p_account, f.id, p_fee, 'fee', 'posted', jsonb_build_object('for', transfer), 'payout:' || p_payout
        FROM accounts f WHERE f.customer_id IS NULL AND f.kind = 'fee_income';
    END IF;
END $$;

-- Locks a customer's main account for a withdrawal's checks: its id, what it can spend, the
-- customer and their status (the gateway may not lock accounts itself: that takes UPDATE).
CREATE FUNCTION wallet_lock_main_account(p_msisdn TEXT)
RETURNS TABLE (account_id BIGINT, spendable BIGINT, customer_id BIGINT, status TEXT) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT a.id, a.balance - a.held, c.id, c.status FROM accounts a JOIN customers c ON c.id = a.customer_id
    WHERE c.msisdn = p_msisdn AND a.kind = 'main' FOR UPDATE OF a;
END $$;

-- The payout was paid: its hold leaves for good.
CREATE FUNCTION wallet_post_withdrawal(p_payout TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE transfers t SET status = 'posted' FROM payouts p
    WHERE p.id = p_payout AND t.id = p.transfer_id AND t.status = 'pending';
END $$;

-- The payout was not paid: the hold is released and the fee comes back (once).
CREATE FUNCTION wallet_void_withdrawal(p_payout TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE transfers t SET status = 'voided' FROM payouts p
    WHERE p.id = p_payout AND t.id = p.transfer_id AND t.status = 'pending';
    INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, resolves, metadata, cause)
    SELECT t.id || '-refund', t.credit_account, t.debit_account, t.amount, 'reversal', 'posted', t.id,
           jsonb_build_object('for', 'failed payout'), 'payout:' || p.id
    FROM payouts p JOIN transfers t ON t.id = p.transfer_id || ':fee'
    WHERE p.id = p_payout AND t.status = 'posted'
        AND EXISTS (SELECT 1 FROM transfers h WHERE h.id = p.transfer_id AND h.status = 'voided')
    ON CONFLICT (id) DO NOTHING;
END $$;

-- ---------------------------------------------------------------------------------------------
-- The KYC tiers as the configuration says (what `serve` wrote itself before), and the
-- configuration recorded in the audit trail when it changed. True when something changed.
CREATE FUNCTION wallet_apply_configuration(p_tiers JSONB, p_default TEXT, p_settings JSONB) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    t JSONB;
    gone RECORD;
    holders BIGINT;
    last_after JSONB;
BEGIN
    PERFORM pg_advisory_xact_lock(160016);
    IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_tiers) e WHERE e->>'name' = p_default) THEN
        RAISE EXCEPTION 'the default tier % is not defined', p_default USING ERRCODE = 'check_violation';
    END IF;
    UPDATE kyc_tiers SET is_default = false WHERE is_default;
    FOR t IN SELECT * FROM jsonb_array_elements(p_tiers) LOOP
        INSERT INTO kyc_tiers (name, per_transaction, daily, max_balance, is_default)
        VALUES (t->>'name', (t->>'per_transaction')::bigint, (t->>'daily')::bigint, (t->>'max_balance')::bigint, t->>'name' = p_default)
        ON CONFLICT (name) DO UPDATE SET per_transaction = excluded.per_transaction, daily = excluded.daily,
            max_balance = excluded.max_balance, is_default = excluded.is_default;
    END LOOP;
    FOR gone IN SELECT k.name FROM kyc_tiers k WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_tiers) e WHERE e->>'name' = k.name) LOOP
        SELECT count(*) INTO holders FROM customers c WHERE c.tier = gone.name;
        IF holders > 0 THEN
            RAISE EXCEPTION 'tier % is held by % customer(s): move them (customer tier) before removing it', gone.name, holders
                USING ERRCODE = 'UL010';
        END IF;
        DELETE FROM kyc_tiers k WHERE k.name = gone.name;
    END LOOP;
    SELECT a.after INTO last_after FROM audit_log a WHERE a.action = 'config.applied' ORDER BY a.id DESC LIMIT 1;
    IF last_after IS NOT DISTINCT FROM p_settings THEN
        RETURN false;
    END IF;
    INSERT INTO audit_log (actor, action, before, after) VALUES ('system', 'config.applied', last_after, p_settings);
    RETURN true;
END $$;

-- ---------------------------------------------------------------------------------------------
-- The audit trail knows who wrote each row: `db_user` is the database identity (the login, and
-- the role it acted as), set by the database; a staff member's row names them as its actor
-- whatever the client sent.
ALTER TABLE audit_log ADD COLUMN db_user TEXT;

CREATE FUNCTION audit_log_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The login, and the role it acted as when that differs (the staff desk's SET LOCAL ROLE, or the
    -- owner inside the wallet's functions): `ops_baraka as ussd_owner`.
    NEW.db_user := CASE WHEN session_user = current_user THEN current_user::text ELSE session_user || ' as ' || current_user END;
    NEW.at := now();
    -- Inside the wallet's functions current_user is the owner, which is in neither group.
    IF pg_has_role(current_user, 'ussd_operator', 'MEMBER') AND NOT pg_has_role(current_user, 'ussd_app', 'MEMBER') THEN
        NEW.actor := ledger_staff_identity();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_identity BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_identity();

-- ---------------------------------------------------------------------------------------------
-- Four eyes, in the database. A request records who asked (`current_user`); decisions are rows
-- of `ledger_decisions`, each recording who decided. The database refuses a decision by the one
-- who asked, by anyone not in ussd_approver, and a second approval by the same person; a request
-- above `dual_approval_above` is carried out at its second approval, by two different approvers.
-- PIN resets wait here too.
ALTER TABLE ledger_requests DROP CONSTRAINT ledger_requests_kind_check;
ALTER TABLE ledger_requests ADD CONSTRAINT ledger_requests_kind_check CHECK (kind IN ('adjustment', 'reversal', 'pin_reset'));
ALTER TABLE ledger_requests ALTER COLUMN amount DROP NOT NULL;
ALTER TABLE ledger_requests ADD CONSTRAINT ledger_requests_amount_by_kind CHECK ((kind = 'pin_reset') = (amount IS NULL));
ALTER TABLE ledger_requests DROP CONSTRAINT ledger_requests_check2;
ALTER TABLE ledger_requests ADD CONSTRAINT ledger_requests_posts_a_transfer
    CHECK (kind = 'pin_reset' OR (status = 'approved') = (transfer_id IS NOT NULL));
CREATE UNIQUE INDEX ledger_requests_one_open_pin_reset ON ledger_requests (msisdn) WHERE kind = 'pin_reset' AND status = 'pending';
ALTER TABLE ledger_requests ADD COLUMN approvals_needed SMALLINT NOT NULL DEFAULT 1 CHECK (approvals_needed IN (1, 2));

CREATE FUNCTION ledger_requests_identity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bound BIGINT;
BEGIN
    IF NOT pg_has_role(current_user, 'ussd_operator', 'MEMBER') THEN
        RAISE EXCEPTION 'only staff (ussd_operator) may ask for a correction, a reversal or a PIN reset' USING ERRCODE = 'UL004';
    END IF;
    NEW.requested_by := ledger_staff_identity();
    NEW.requested_at := now();
    NEW.status := 'pending';
    NEW.decided_by := NULL; NEW.decided_at := NULL; NEW.decision_reason := NULL; NEW.transfer_id := NULL;
    IF NEW.kind = 'reversal' THEN
        -- What a reversal takes back is the send's amount, from its recipient to its sender.
        SELECT t.amount, c.msisdn INTO NEW.amount, NEW.msisdn FROM transfers t
        JOIN accounts a ON a.id = t.debit_account JOIN customers c ON c.id = a.customer_id
        WHERE t.id = NEW.reference AND t.kind = 'p2p' AND t.status = 'posted';
        IF NOT FOUND THEN
            RAISE EXCEPTION '% is not a posted send', NEW.reference USING ERRCODE = 'UL008';
        END IF;
    ELSIF NEW.kind = 'adjustment' THEN
        SELECT value INTO bound FROM ledger_settings WHERE name = 'adjust_max';
        IF NEW.amount > bound THEN
            RAISE EXCEPTION 'an adjustment may not exceed % cents (LEDGER_ADJUST_MAX)', bound USING ERRCODE = 'UL009';
        END IF;
    END IF;
    SELECT value INTO bound FROM ledger_settings WHERE name = 'dual_approval_above';
    NEW.approvals_needed := CASE WHEN NEW.amount > bound THEN 2 ELSE 1 END;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_requests_identity BEFORE INSERT ON ledger_requests FOR EACH ROW EXECUTE FUNCTION ledger_requests_identity();

CREATE TABLE ledger_decisions (
    id BIGSERIAL PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES ledger_requests (id),
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    decided_by TEXT NOT NULL DEFAULT current_user,
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    decided_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (request_id, decided_by)
);

-- Who decides is the database's identity of the session; the checks run as that identity.
CREATE FUNCTION ledger_decisions_identity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    NEW.decided_by := ledger_staff_identity();
    NEW.decided_at := now();
    IF NOT pg_has_role(current_user, 'ussd_approver', 'MEMBER') THEN
        RAISE EXCEPTION 'only an approver (ussd_approver) may decide a request' USING ERRCODE = 'UL004';
    END IF;
    SELECT * INTO r FROM ledger_requests WHERE id = NEW.request_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no ledger request #%', NEW.request_id USING ERRCODE = 'UL001';
    END IF;
    IF r.status <> 'pending' THEN
        RAISE EXCEPTION 'request #% is already %', r.id, r.status USING ERRCODE = 'UL002';
    END IF;
    IF lower(r.requested_by) = lower(current_user) THEN
        RAISE EXCEPTION 'the person who asked for request #% may not decide it: another approver must (four eyes)', r.id USING ERRCODE = 'UL003';
    END IF;
    IF EXISTS (SELECT 1 FROM ledger_decisions d WHERE d.request_id = NEW.request_id AND lower(d.decided_by) = lower(current_user)) THEN
        RAISE EXCEPTION 'you have already decided request #%: a second approval must come from someone else', r.id USING ERRCODE = 'UL005';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_decisions_identity BEFORE INSERT ON ledger_decisions FOR EACH ROW EXECUTE FUNCTION ledger_decisions_identity();

CREATE FUNCTION ledger_decisions_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'decisions are never changed or deleted' USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER ledger_decisions_never_change BEFORE UPDATE OR DELETE ON ledger_decisions FOR EACH ROW EXECUTE FUNCTION ledger_decisions_never_change();

-- Carries a decision out, as the owner (SECURITY DEFINER below): a rejection closes the request;
-- the approval that completes the count posts the transfer (or sets the PIN reset), queues the
-- customer's SMS, closes the request and writes the audit row, all in the decision's transaction.
CREATE FUNCTION wallet_carry_out_decision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r ledger_requests%ROWTYPE;
    approvals INT;
    transfer TEXT;
    main_id BIGINT;
    main_spendable BIGINT;
    suspense_id BIGINT;
    lang TEXT;
    s RECORD;
    recipient_spendable BIGINT;
    cust RECORD;
    acct RECORD;
    moving BIGINT;
    bound BIGINT;
    needed INT;
BEGIN
    SELECT * INTO r FROM ledger_requests WHERE id = NEW.request_id FOR UPDATE;
    IF r.status <> 'pending' THEN
        RAISE EXCEPTION 'request #% is already %', r.id, r.status USING ERRCODE = 'UL002';
    END IF;
    IF NEW.decision = 'reject' THEN
        UPDATE ledger_requests SET status = 'rejected', decided_by = NEW.decided_by, decided_at = now(), decision_reason = NEW.reason WHERE id = r.id;
        INSERT INTO audit_log (actor, action, msisdn, reason, before, after)
        VALUES (NEW.decided_by, 'ledger.' || r.kind || '_rejected', r.msisdn, NEW.reason,
                jsonb_build_object('request', r.id::text, 'status', 'pending'), jsonb_build_object('request', r.id::text, 'status', 'rejected'));
        RETURN NULL;
    END IF;
    -- Counted again here, as the owner, from the real tables: distinct approvers, never the one who
    -- asked; the bounds from the settings, against the amount that will move.
    SELECT count(DISTINCT lower(d.decided_by)) INTO approvals FROM ledger_decisions d
    WHERE d.request_id = r.id AND d.decision = 'approve' AND lower(d.decided_by) <> lower(r.requested_by);
    IF r.kind = 'reversal' THEN
        SELECT t.amount INTO moving FROM transfers t WHERE t.id = r.reference;
    ELSE
        moving := r.amount;
    END IF;
    SELECT value INTO bound FROM ledger_settings WHERE name = 'dual_approval_above';
    needed := greatest(r.approvals_needed, CASE WHEN moving > bound THEN 2 ELSE 1 END);
    IF r.kind = 'adjustment' AND moving > (SELECT value FROM ledger_settings WHERE name = 'adjust_max') THEN
        RAISE EXCEPTION 'an adjustment may not exceed LEDGER_ADJUST_MAX' USING ERRCODE = 'UL009';
    END IF;
    IF approvals < needed THEN
        INSERT INTO audit_log (actor, action, msisdn, reason, before, after)
        VALUES (NEW.decided_by, 'ledger.' || r.kind || '_approval', r.msisdn, NEW.reason,
                jsonb_build_object('request', r.id::text, 'status', 'pending', 'requested_by', r.requested_by),
                jsonb_build_object('request', r.id::text, 'status', 'pending', 'approvals', approvals || ' of ' || needed));
        RETURN NULL;
    END IF;

    IF r.kind = 'adjustment' THEN
        transfer := 'adjustment:' || r.id;
        -- Main account and suspense, locked in id order like every movement.
        FOR s IN
            SELECT a.id, a.kind, a.balance - a.held AS spendable FROM accounts a LEFT JOIN customers c ON c.id = a.customer_id
            WHERE (c.msisdn = r.msisdn AND a.kind = 'main') OR (a.customer_id IS NULL AND a.kind = 'suspense')
            ORDER BY a.id FOR UPDATE OF a
        LOOP
            IF s.kind = 'main' THEN main_id := s.id; main_spendable := s.spendable; ELSE suspense_id := s.id; END IF;
        END LOOP;
        IF main_id IS NULL OR suspense_id IS NULL THEN
            RAISE EXCEPTION 'no wallet for %', r.msisdn USING ERRCODE = 'UL011';
        END IF;
        IF r.direction = 'to_suspense' AND main_spendable < r.amount THEN
            RAISE EXCEPTION 'the customer''s available balance is less than the correction' USING ERRCODE = 'UL007';
        END IF;
        INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, metadata, cause)
        VALUES (transfer, CASE WHEN r.direction = 'from_suspense' THEN suspense_id ELSE main_id END,
                CASE WHEN r.direction = 'from_suspense' THEN main_id ELSE suspense_id END,
                r.amount, 'adjustment', 'posted', jsonb_build_object('request', r.id, 'direction', r.direction), 'request:' || r.id);
        INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
        SELECT 'sms', c.msisdn, c.language, 'adjustment',
               jsonb_build_object('amount', r.amount::text, 'reference', 'ADJ' || r.id,
                                  'reason', CASE WHEN r.direction = 'from_suspense' THEN 'credit' ELSE 'debit' END), transfer
        FROM customers c WHERE c.msisdn = r.msisdn
        ON CONFLICT (dedupe_key) DO NOTHING;
    ELSIF r.kind = 'reversal' THEN
        transfer := 'reversal:' || r.reference;
        SELECT t.debit_account AS sender_account, t.credit_account AS recipient_account, t.amount, sc.msisdn AS sender, rc.msisdn AS recipient
        INTO s FROM transfers t
        JOIN accounts sa ON sa.id = t.debit_account JOIN customers sc ON sc.id = sa.customer_id
        JOIN accounts ra ON ra.id = t.credit_account JOIN customers rc ON rc.id = ra.customer_id
        WHERE t.id = r.reference AND t.kind = 'p2p' AND t.status = 'posted';
        IF NOT FOUND THEN
            RAISE EXCEPTION '% is not a posted send', r.reference USING ERRCODE = 'UL008';
        END IF;
        FOR acct IN SELECT id, balance - held AS spendable FROM accounts WHERE id IN (s.sender_account, s.recipient_account) ORDER BY id FOR UPDATE LOOP
            IF acct.id = s.recipient_account THEN recipient_spendable := acct.spendable; END IF;
        END LOOP;
        IF recipient_spendable < s.amount THEN
            RAISE EXCEPTION '% no longer holds the money', s.recipient USING ERRCODE = 'UL006';
        END IF;
        IF EXISTS (SELECT 1 FROM transfers WHERE id = transfer) THEN
            RAISE EXCEPTION '% is already reversed', r.reference USING ERRCODE = 'UL012';
        END IF;
        INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status, resolves, metadata, cause)
        VALUES (transfer, s.recipient_account, s.sender_account, s.amount, 'reversal', 'posted', r.reference,
                jsonb_build_object('request', r.id), 'request:' || r.id);
        INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
        SELECT 'sms', c.msisdn, c.language, 'reversal',
               jsonb_build_object('amount', s.amount::text, 'to', s.recipient, 'reference', 'REV' || r.id, 'reason', 'returned'), transfer || ':returned'
        FROM customers c WHERE c.msisdn = s.sender
        ON CONFLICT (dedupe_key) DO NOTHING;
        INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
        SELECT 'sms', c.msisdn, c.language, 'reversal',
               jsonb_build_object('amount', s.amount::text, 'from', s.sender, 'reference', 'REV' || r.id, 'reason', 'taken'), transfer || ':taken'
        FROM customers c WHERE c.msisdn = s.recipient
        ON CONFLICT (dedupe_key) DO NOTHING;
    ELSE
        -- A PIN reset: the next dial must set a new PIN before anything else; locks lifted.
        SELECT failed_pin_attempts, pin_locks, locked_until, pin_reset_required INTO cust FROM customers WHERE msisdn = r.msisdn FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no wallet for %', r.msisdn USING ERRCODE = 'UL011';
        END IF;
        UPDATE customers SET pin_reset_required = true, failed_pin_attempts = 0, pin_locks = 0, locked_until = NULL,
            pin_change_grant = NULL, pin_change_grant_until = NULL, updated_at = now()
        WHERE msisdn = r.msisdn;
        INSERT INTO audit_log (actor, action, msisdn, reason, before, after)
        VALUES (NEW.decided_by, 'pin.reset', r.msisdn, NEW.reason,
                jsonb_build_object('pin_reset_required', cust.pin_reset_required::text, 'failed_pin_attempts', cust.failed_pin_attempts::text,
                                   'locks_in_a_row', cust.pin_locks::text, 'locked_until', coalesce(cust.locked_until::text, 'none'),
                                   'requested_by', r.requested_by, 'request', r.id::text),
                jsonb_build_object('pin_reset_required', 'true', 'failed_pin_attempts', '0', 'locks_in_a_row', '0', 'locked_until', 'none'));
        INSERT INTO outbox (kind, recipient, language, template, params, dedupe_key)
        SELECT 'sms', c.msisdn, c.language, 'pin_reset', '{}'::jsonb, 'request:' || r.id FROM customers c WHERE c.msisdn = r.msisdn
        ON CONFLICT (dedupe_key) DO NOTHING;
    END IF;
    UPDATE ledger_requests SET status = 'approved', decided_by = NEW.decided_by, decided_at = now(), decision_reason = NEW.reason,
        transfer_id = transfer
    WHERE id = r.id;
    INSERT INTO audit_log (actor, action, msisdn, reason, before, after)
    VALUES (NEW.decided_by, 'ledger.' || r.kind || '_approved', r.msisdn, NEW.reason,
            jsonb_build_object('request', r.id::text, 'status', 'pending', 'requested_by', r.requested_by),
            jsonb_strip_nulls(jsonb_build_object('request', r.id::text, 'status', 'approved', 'transfer', transfer,
                                                 'amount_cents', r.amount::text, 'approvals', approvals::text)));
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_decisions_carry_out AFTER INSERT ON ledger_decisions FOR EACH ROW EXECUTE FUNCTION wallet_carry_out_decision();


-- ---------------------------------------------------------------------------------------------
-- PIN reset cooling-off: when the customer sets the PIN an approved reset asked for, the
-- database notes when, whatever the client says; large sends and withdrawals wait out the window.
ALTER TABLE customers ADD COLUMN pin_reset_completed_at TIMESTAMPTZ;

CREATE FUNCTION customers_pin_reset_completed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.pin_reset_required AND NOT NEW.pin_reset_required THEN
        NEW.pin_reset_completed_at := now();
    ELSIF NEW.pin_reset_completed_at IS DISTINCT FROM OLD.pin_reset_completed_at AND NOT ledger_is_owner() THEN
        NEW.pin_reset_completed_at := OLD.pin_reset_completed_at;
    END IF;
    -- Only an approved request (carried out as the owner) makes the next dial set a new PIN.
    IF NEW.pin_reset_required AND NOT OLD.pin_reset_required AND NOT ledger_is_owner() THEN
        RAISE EXCEPTION 'a PIN reset takes two people: ask for one (customer reset-pin)' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER customers_pin_reset_completed BEFORE UPDATE ON customers FOR EACH ROW
    WHEN (OLD.pin_reset_required IS DISTINCT FROM NEW.pin_reset_required OR NEW.pin_reset_completed_at IS DISTINCT FROM OLD.pin_reset_completed_at)
    EXECUTE FUNCTION customers_pin_reset_completed();

-- ---------------------------------------------------------------------------------------------
-- What a payout pays and a deposit credits is fixed when it is made: the reconciler re-sends a
-- payout from its row, so a row rewritten afterwards (another phone, a larger amount) would pay
-- out money no hold stands behind. Payouts are created only by wallet_hold_withdrawal.
CREATE FUNCTION ledger_keep_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.customer_id <> OLD.customer_id OR NEW.msisdn <> OLD.msisdn OR NEW.amount <> OLD.amount
        OR (TG_TABLE_NAME = 'payouts' AND (to_jsonb(NEW)->>'transfer_id' IS DISTINCT FROM to_jsonb(OLD)->>'transfer_id'
                                            OR to_jsonb(NEW)->>'fee' IS DISTINCT FROM to_jsonb(OLD)->>'fee')) THEN
        RAISE EXCEPTION 'a %''s customer, phone and amount never change', rtrim(TG_TABLE_NAME, 's') USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payouts_keep_terms BEFORE UPDATE OR DELETE ON payouts FOR EACH ROW EXECUTE FUNCTION ledger_keep_terms();
CREATE TRIGGER deposits_keep_terms BEFORE UPDATE OR DELETE ON deposits FOR EACH ROW EXECUTE FUNCTION ledger_keep_terms();

-- ---------------------------------------------------------------------------------------------
-- Privileges. Every later migration that adds a table or a wallet function calls
-- ledger_apply_privileges() at its end.
CREATE FUNCTION ledger_apply_privileges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    f RECORD;
    -- Tables the gateway may not write: money, the staff's requests and decisions, settings.
    not_app TEXT[] := ARRAY['transfers', 'accounts', 'account_shards', 'audit_log', 'kyc_tiers', 'ledger_requests', 'ledger_decisions',
                            'ledger_settings', 'customers', 'schema_migrations'];
    t RECORD;
BEGIN
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO ussd_app, ussd_report, ussd_operator', current_schema());
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC, ussd_app, ussd_report, ussd_operator, ussd_approver', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO ussd_app, ussd_report, ussd_operator', current_schema());
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO ussd_app, ussd_operator', current_schema());
    -- The gateway's own bookkeeping: every other table (provider records, the outbox, inbound SMS).
    FOR t IN SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
                 AND NOT c.relname = ANY (not_app) LOOP
        EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %I TO ussd_app', t.relname);
    END LOOP;
    -- Staff and reports read customers, never their PIN hashes or PIN-change grants.
    REVOKE SELECT ON customers FROM ussd_report, ussd_operator;
    FOR t IN SELECT a.attname AS relname FROM pg_attribute a
             WHERE a.attrelid = 'customers'::regclass AND a.attnum > 0 AND NOT a.attisdropped
                 AND a.attname NOT IN ('pin_hash', 'pin_change_grant') LOOP
        EXECUTE format('GRANT SELECT (%I) ON customers TO ussd_report, ussd_operator', t.relname);
    END LOOP;
    -- A payout row exists only with its hold (wallet_hold_withdrawal).
    REVOKE INSERT, DELETE ON payouts FROM ussd_app;
    GRANT INSERT (msisdn, name, language, pin_hash, status) ON customers TO ussd_app;
    GRANT UPDATE (name, language, pin_hash, failed_pin_attempts, locked_until, updated_at, pin_locks, pin_change_grant,
                  pin_change_grant_until, pin_reset_required) ON customers TO ussd_app;
    -- A new wallet's two accounts start at zero (their balance is not the client's to choose).
    GRANT INSERT (customer_id, kind) ON accounts TO ussd_app;
    GRANT INSERT ON audit_log TO ussd_app, ussd_operator;
    -- Staff: desk changes that move no money; requests; decisions (approvers).
    GRANT UPDATE (status, tier, locked_until, failed_pin_attempts, pin_locks, updated_at) ON customers TO ussd_operator;
    GRANT INSERT ON outbox TO ussd_operator;
    GRANT INSERT (kind, msisdn, amount, direction, reference, reason) ON ledger_requests TO ussd_operator;
    GRANT UPDATE (resolution, resolved_by, resolved_at, resolution_note) ON mpesa_review TO ussd_operator;
    GRANT INSERT (request_id, decision, reason) ON ledger_decisions TO ussd_approver;
    -- Money only through the wallet's functions, as the owner, with a search_path of their own.
    FOR f IN
        SELECT p.oid::regprocedure AS signature, p.prorettype = 'trigger'::regtype AS is_trigger FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'wallet\_%'
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f.signature, current_schema());
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.signature);
        IF NOT f.is_trigger THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO ussd_app', f.signature);
        END IF;
    END LOOP;
    -- The staff's checks run as the person (that is how they know who it is): their names resolve
    -- in this schema only, and nobody but the owner may create temporary tables to shadow them.
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    FOR f IN
        SELECT p.oid::regprocedure AS signature FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
            AND p.proname IN ('ledger_requests_identity', 'ledger_decisions_identity', 'ledger_staff_identity', 'ledger_is_owner',
                              'audit_log_identity', 'customers_pin_reset_completed', 'ledger_called_from_wallet')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f.signature, current_schema());
    END LOOP;
    -- What only the owner runs.
    REVOKE EXECUTE ON FUNCTION ledger_apply_privileges() FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION ledger_add(BIGINT, BIGINT) FROM PUBLIC;
END $$;

SELECT ledger_apply_privileges();
