-- Numbers by reference (issue 31): a phone number is held in clear where it routes something
-- (a customer's row, a request or payment still in flight, a message still to send) and nowhere
-- that is kept for the legal period. The audit trail, decided staff requests and settled deposits
-- and payouts refer to a customer by `subject`, their pseudonymous id, and find the number, when
-- a reader needs it, through `customers`, which an erasure vacates: the number can then register
-- again, and nothing append-only or kept for the legal period is rewritten for it.

-- An erased customer's number is gone; every other customer has one.
ALTER TABLE customers ALTER COLUMN msisdn DROP NOT NULL;

-- The audit trail: a number that names a customer is written as their subject, from the start.
ALTER TABLE audit_log ADD COLUMN subject UUID;
CREATE INDEX audit_log_by_subject ON audit_log (subject, id) WHERE subject IS NOT NULL;
CREATE FUNCTION wallet_audit_number_by_reference() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    found_subject UUID;
BEGIN
    IF NEW.msisdn IS NOT NULL THEN
        SELECT c.subject INTO found_subject FROM customers c WHERE c.msisdn = NEW.msisdn;
        IF FOUND THEN
            NEW.subject := found_subject;
            NEW.msisdn := NULL;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_number_by_reference BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION wallet_audit_number_by_reference();

-- Staff requests: the customer's subject from the start, the number only while pending.
ALTER TABLE ledger_requests ADD COLUMN subject UUID;
ALTER TABLE ledger_requests ALTER COLUMN msisdn DROP NOT NULL;
ALTER TABLE ledger_requests ADD CONSTRAINT ledger_requests_number_while_pending CHECK (msisdn IS NOT NULL OR (status <> 'pending' AND subject IS NOT NULL));
CREATE INDEX ledger_requests_by_subject ON ledger_requests (subject) WHERE subject IS NOT NULL;
CREATE FUNCTION wallet_request_number_by_reference() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.subject := (SELECT c.subject FROM customers c WHERE c.msisdn = NEW.msisdn);
    ELSIF OLD.status = 'pending' AND NEW.status <> 'pending' AND NEW.subject IS NOT NULL THEN
        NEW.msisdn := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_requests_number_by_reference BEFORE INSERT OR UPDATE ON ledger_requests
    FOR EACH ROW EXECUTE FUNCTION wallet_request_number_by_reference();

-- Deposits and payouts: the number routes the payment while it is in flight (the STK push's
-- phone, checked against the callback's; the B2C's receiver); once settled, the row keeps its
-- customer_id only. A deposit failed with -2 (cancelled while a payment may still come) is not
-- settled yet.
ALTER TABLE deposits ALTER COLUMN msisdn DROP NOT NULL;
-- A failed deposit says how (the gateway always writes the code): a failure without one would be
-- neither settled nor cancelled-awaiting-payment (-2) to the rules here and in
-- wallet_complete_deposit. Checked for rows written from now on.
ALTER TABLE deposits ADD CONSTRAINT deposits_failed_with_a_code CHECK (status <> 'failed' OR result_code IS NOT NULL) NOT VALID;
ALTER TABLE payouts ALTER COLUMN msisdn DROP NOT NULL;
CREATE FUNCTION wallet_settled_number_by_reference() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_TABLE_NAME = 'deposits' AND (NEW.status = 'completed' OR (NEW.status = 'failed' AND NEW.result_code <> -2)))
        OR (TG_TABLE_NAME = 'payouts' AND NEW.status IN ('paid', 'failed')) THEN
        NEW.msisdn := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER deposits_settled_number_by_reference BEFORE INSERT OR UPDATE ON deposits
    FOR EACH ROW EXECUTE FUNCTION wallet_settled_number_by_reference();
CREATE TRIGGER payouts_settled_number_by_reference BEFORE INSERT OR UPDATE ON payouts
    FOR EACH ROW EXECUTE FUNCTION wallet_settled_number_by_reference();

-- A deposit's or payout's number never changes, except that it goes: when the payment settles (the
-- trigger below) or with an erasure (the owner). The gateway's login may not blank a number in
-- flight, which would skip the callback's check of the phone.
CREATE OR REPLACE FUNCTION ledger_keep_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.customer_id <> OLD.customer_id OR NEW.amount <> OLD.amount
        -- The number goes only with a settled status, and a row without it never leaves one (the
        -- gateway's login may not settle a row to blank its number and then reopen it).
        OR ((NEW.msisdn IS NULL) AND NOT ledger_is_owner()
            AND NOT ((TG_TABLE_NAME = 'deposits' AND (NEW.status = 'completed' OR (NEW.status = 'failed' AND (to_jsonb(NEW)->>'result_code')::int <> -2)))
                     OR (TG_TABLE_NAME = 'payouts' AND NEW.status IN ('paid', 'failed'))))
        OR (NEW.msisdn IS NOT NULL AND NEW.msisdn IS DISTINCT FROM OLD.msisdn)
        OR (TG_TABLE_NAME = 'payouts' AND (to_jsonb(NEW)->>'transfer_id' IS DISTINCT FROM to_jsonb(OLD)->>'transfer_id'
                                            OR to_jsonb(NEW)->>'fee' IS DISTINCT FROM to_jsonb(OLD)->>'fee')) THEN
        RAISE EXCEPTION 'a %''s customer, phone and amount never change', rtrim(TG_TABLE_NAME, 's') USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

-- Rows from before: converted once, as the owner (the trail's append-only rule and a decided
-- request's are set aside for this statement only).
-- (The owner's UPDATE on the trail was revoked by migration 0008: granted for this statement.)
DO $$ BEGIN
    EXECUTE format('GRANT UPDATE ON audit_log TO %I', current_user);
END $$;
ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE audit_log a SET subject = c.subject, msisdn = NULL FROM customers c WHERE a.msisdn = c.msisdn;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
DO $$ BEGIN
    EXECUTE format('REVOKE UPDATE ON audit_log FROM %I', current_user);
END $$;
ALTER TABLE ledger_requests DISABLE TRIGGER ledger_requests_decide_once;
UPDATE ledger_requests q SET subject = c.subject FROM customers c WHERE q.msisdn = c.msisdn;
UPDATE ledger_requests SET msisdn = NULL WHERE status <> 'pending' AND subject IS NOT NULL;
ALTER TABLE ledger_requests ENABLE TRIGGER ledger_requests_decide_once;
UPDATE deposits SET status = status WHERE msisdn IS NOT NULL AND (status = 'completed' OR (status = 'failed' AND result_code <> -2));
UPDATE payouts SET status = status WHERE msisdn IS NOT NULL AND status IN ('paid', 'failed');
-- Customers erased before this migration: their number goes too.
UPDATE deposits d SET msisdn = NULL FROM customers c WHERE d.customer_id = c.id AND c.erased_at IS NOT NULL AND d.msisdn IS NOT NULL;
UPDATE payouts p SET msisdn = NULL FROM customers c WHERE p.customer_id = c.id AND c.erased_at IS NOT NULL AND p.msisdn IS NOT NULL;
UPDATE paybill_payments p SET bill_ref = '[erased]' FROM customers c WHERE p.customer_id = c.id AND c.erased_at IS NOT NULL;
DELETE FROM sms_inbound s USING customers c WHERE c.erased_at IS NOT NULL AND (s.subject = c.subject OR s.sender = c.msisdn);
DELETE FROM outbox o USING customers c WHERE c.erased_at IS NOT NULL AND (o.subject = c.subject OR o.recipient = c.msisdn);
UPDATE outbox o SET params = jsonb_set(o.params, '{to}', '"[erased]"') FROM customers c WHERE c.erased_at IS NOT NULL AND o.params->>'to' = c.msisdn;
UPDATE outbox o SET params = jsonb_set(o.params, '{from}', '"[erased]"') FROM customers c WHERE c.erased_at IS NOT NULL AND o.params->>'from' = c.msisdn;
UPDATE customers SET msisdn = NULL WHERE erased_at IS NOT NULL;
ALTER TABLE customers ADD CONSTRAINT customers_number_until_erased CHECK ((msisdn IS NULL) = (erased_at IS NOT NULL));

-- A deposit failed with -2 may still be paid (and then checked against its phone): in flight, as a
-- pending one, for an erasure.
CREATE OR REPLACE FUNCTION customers_erasable(p_id BIGINT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c RECORD;
BEGIN
    SELECT status, erased_at INTO c FROM customers WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such customer' USING ERRCODE = 'UL011';
    END IF;
    IF c.erased_at IS NOT NULL THEN
        RAISE EXCEPTION 'this customer was erased already' USING ERRCODE = 'UL021';
    END IF;
    IF c.status <> 'closed' THEN
        RAISE EXCEPTION 'only a closed wallet is erased (customer close first)' USING ERRCODE = 'UL021';
    END IF;
    -- Its accounts locked in id order, as every movement locks them: money in flight to it either
    -- committed before (and is counted below) or waits and then finds the wallet closed.
    PERFORM 1 FROM accounts WHERE customer_id = p_id ORDER BY id FOR UPDATE;
    IF EXISTS (SELECT 1 FROM account_balances a WHERE a.customer_id = p_id AND (a.balance <> 0 OR a.held <> 0)) THEN
        RAISE EXCEPTION 'the wallet still holds money: pay it out before erasing' USING ERRCODE = 'UL021';
    END IF;
    IF EXISTS (SELECT 1 FROM ledger_requests q JOIN customers w ON w.msisdn = q.msisdn
               WHERE w.id = p_id AND q.status = 'pending' AND q.kind <> 'erase') THEN
        RAISE EXCEPTION 'a correction, reversal or PIN reset of this wallet waits for an approver: decide it first' USING ERRCODE = 'UL021';
    END IF;
    IF EXISTS (SELECT 1 FROM deposits d WHERE d.customer_id = p_id AND (d.status = 'pending' OR (d.status = 'failed' AND d.result_code = -2)))
        OR EXISTS (SELECT 1 FROM payouts p WHERE p.customer_id = p_id AND p.status IN ('reserved', 'sent', 'unknown')) THEN
        RAISE EXCEPTION 'a deposit or payout of this wallet is still in flight' USING ERRCODE = 'UL021';
    END IF;
END $$;

-- A closed wallet may be reopened by staff (closing is one person's change), until its erasure is
-- asked for: an erasure rests on the wallet staying closed from the request to the approval.
CREATE OR REPLACE FUNCTION customers_closed_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'closed' AND NEW.status <> 'closed' AND (OLD.erased_at IS NOT NULL
        OR EXISTS (SELECT 1 FROM ledger_requests q WHERE q.msisdn = OLD.msisdn AND q.kind = 'erase' AND q.status = 'pending')) THEN
        RAISE EXCEPTION 'a closed wallet whose erasure is asked for (or done) is never opened again' USING ERRCODE = 'UL021';
    END IF;
    RETURN NEW;
END $$;

-- Refused provider callbacks (a wrong token, a source outside the allowlist, a malformed body): the
-- route, why, the source address and the status answered, never the body. They were rows of the
-- audit trail, which keeps the legal period; they are security telemetry with a source address,
-- kept `RETENTION_REFUSED_CALLBACK_DAYS` (`retention run`). Rows already in the trail stay there.
CREATE TABLE callback_refusals (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    route TEXT NOT NULL CHECK (length(route) BETWEEN 1 AND 200),
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    source TEXT CHECK (length(source) <= 100),
    status INT NOT NULL CHECK (status BETWEEN 100 AND 599),
    -- Refusals over the rate cap since the row before, not written one by one.
    suppressed_before INT NOT NULL DEFAULT 0 CHECK (suppressed_before >= 0)
);
CREATE INDEX callback_refusals_at ON callback_refusals (at);
-- Evidence of who knocked: the gateway writes a row, never changes or removes one; only the owner's
-- `retention run` deletes them, past their period.
CREATE FUNCTION callback_refusals_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ledger_is_owner() THEN
        RAISE EXCEPTION 'refused callbacks are kept as written; retention run removes them' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER callback_refusals_keep BEFORE UPDATE OR DELETE ON callback_refusals FOR EACH ROW EXECUTE FUNCTION callback_refusals_keep();

-- A profile's notice names the number it was cached under; an erased one has none left.
CREATE OR REPLACE FUNCTION customers_profile_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.msisdn IS NOT NULL THEN
        PERFORM pg_notify('customer_profiles', OLD.msisdn);
    END IF;
    IF (TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.msisdn IS DISTINCT FROM OLD.msisdn)) AND NEW.msisdn IS NOT NULL THEN
        PERFORM pg_notify('customer_profiles', NEW.msisdn);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION wallet_carry_out_decision() RETURNS trigger LANGUAGE plpgsql AS $$
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
    ELSIF r.kind = 'erase' THEN
        -- Erasure (issue 31): the wallet's personal fields and its number are vacated here; the
        -- gateway that approved then destroys the customer's data key in the key store (and
        -- `retention run` does for any erasure whose key is still there), which makes every
        -- sealed copy, backups included, unreadable. The ledger's rows stay, under the customer's
        -- pseudonymous subject; the audit trail and settled deposits and payouts already hold
        -- that subject, not the number (migration 0021). The number is free to register again.
        SELECT c.id, c.subject, c.status, c.erased_at INTO cust FROM customers c WHERE c.msisdn = r.msisdn FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no wallet for %', r.msisdn USING ERRCODE = 'UL011';
        END IF;
        PERFORM customers_erasable(cust.id);
        UPDATE customers SET msisdn = NULL, name = NULL, name_sealed = NULL, name_index = NULL, erased_at = now(), updated_at = now()
        WHERE id = cust.id;
        -- Their messages, either way (kept for the SMS period only, never for the legal one), and
        -- their number where another customer's messages name it.
        DELETE FROM sms_inbound WHERE subject = cust.subject OR sender = r.msisdn;
        DELETE FROM outbox WHERE subject = cust.subject OR recipient = r.msisdn;
        UPDATE outbox SET params = jsonb_set(params, '{to}', '"[erased]"') WHERE params->>'to' = r.msisdn;
        UPDATE outbox SET params = jsonb_set(params, '{from}', '"[erased]"') WHERE params->>'from' = r.msisdn;
        -- What they typed as the paybill account (their number), and any number a deposit or
        -- payout still held (one that failed and might have been retried).
        UPDATE paybill_payments SET bill_ref = '[erased]' WHERE customer_id = cust.id;
        UPDATE deposits SET msisdn = NULL WHERE customer_id = cust.id AND msisdn IS NOT NULL;
        UPDATE payouts SET msisdn = NULL WHERE customer_id = cust.id AND msisdn IS NOT NULL;
        UPDATE ledger_requests SET status = 'approved', decided_by = NEW.decided_by, decided_at = now(), decision_reason = NEW.reason
        WHERE id = r.id;
        INSERT INTO audit_log (actor, action, subject, reason, before, after)
        VALUES (NEW.decided_by, 'customer.erased', cust.subject, NEW.reason,
                jsonb_build_object('subject', cust.subject::text, 'requested_by', r.requested_by, 'request', r.id::text),
                jsonb_build_object('subject', cust.subject::text, 'personal_data', 'erased'));
        INSERT INTO audit_log (actor, action, subject, reason, before, after)
        VALUES (NEW.decided_by, 'ledger.erase_approved', cust.subject, NEW.reason,
                jsonb_build_object('request', r.id::text, 'status', 'pending', 'requested_by', r.requested_by),
                jsonb_build_object('request', r.id::text, 'status', 'approved', 'approvals', approvals::text));
        RETURN NULL;
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

-- The gateway's login no longer changes a sealed name or its index (nothing of the gateway does; a
-- compromised one could overwrite names or poison the search), and the functions above resolve
-- names in this schema only. Every later migration's call re-applies this.
CREATE OR REPLACE FUNCTION ledger_apply_privileges() RETURNS void LANGUAGE plpgsql AS $$
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
    -- Nor the blind index's hashes of names (reports): only support searches by name.
    FOR t IN SELECT a.attname AS relname FROM pg_attribute a
             WHERE a.attrelid = 'customers'::regclass AND a.attnum > 0 AND NOT a.attisdropped
                 AND a.attname NOT IN ('pin_hash', 'pin_change_grant', 'name_index') LOOP
        EXECUTE format('GRANT SELECT (%I) ON customers TO ussd_report, ussd_operator', t.relname);
    END LOOP;
    GRANT SELECT (name_index) ON customers TO ussd_operator;
    -- A payout row exists only with its hold (wallet_hold_withdrawal).
    REVOKE INSERT, DELETE ON payouts FROM ussd_app;
    -- Names only sealed (migration 0020): the clear column is the owner's, for `migrate` to seal.
    GRANT INSERT (msisdn, subject, name_sealed, name_index, language, pin_hash, status, privacy_notice, privacy_accepted_at) ON customers TO ussd_app;
    -- Nor change a sealed name or its index once written (only `migrate` seals, as the owner).
    GRANT UPDATE (language, pin_hash, failed_pin_attempts, locked_until, updated_at, pin_locks, pin_change_grant,
                  pin_change_grant_until, pin_reset_required) ON customers TO ussd_app;
    -- A new wallet's two accounts start at zero (their balance is not the client's to choose).
    GRANT INSERT (customer_id, kind) ON accounts TO ussd_app;
    -- Reporting logins record their own reads of personal data (audit_log_identity checks which).
    GRANT INSERT ON audit_log TO ussd_app, ussd_operator;
    GRANT INSERT (actor, action, msisdn, reason, before, after) ON audit_log TO ussd_report;
    GRANT USAGE ON SEQUENCE audit_log_id_seq TO ussd_report;
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
                              'audit_log_identity', 'customers_pin_reset_completed', 'ledger_called_from_wallet',
                              'customers_erasable', 'ledger_requests_erasable', 'customers_closed_is_final',
                              'ledger_keep_terms', 'callback_refusals_keep')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f.signature, current_schema());
    END LOOP;
    -- What only the owner runs.
    REVOKE EXECUTE ON FUNCTION ledger_apply_privileges() FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION ledger_add(BIGINT, BIGINT) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION customers_erasable(BIGINT) FROM PUBLIC;
END $$;

SELECT ledger_apply_privileges();
