-- Personal data (issue 31): names and texts sealed per customer, erasure by crypto-shredding.
--
-- Names: `name_sealed` holds the name sealed with the customer's data key (AES-256-GCM, bound
-- to this column and the customer's `subject`); `name_index` the keyed hashes of its words, to
-- find a customer by name without reading names. The clear `name` column is only for rows from
-- before this migration, until `ussd-gateway migrate` seals them (it does, then empties it); the
-- gateway's login may no longer write it. `subject` is the customer's pseudonymous id: their
-- data key's id in the key store, and what the ledger's rows stay attached to after an erasure.
ALTER TABLE customers
    ADD COLUMN subject UUID NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN name_sealed BYTEA CHECK (length(name_sealed) BETWEEN 30 AND 1000),
    ADD COLUMN name_index BYTEA[] CHECK (cardinality(name_index) <= 20),
    ADD COLUMN erased_at TIMESTAMPTZ,
    -- The privacy notice the customer was told of at registration and accepted by registering
    -- (menus.json's `privacy` argument of wallet.register), and when.
    ADD COLUMN privacy_notice TEXT CHECK (length(privacy_notice) BETWEEN 1 AND 40),
    ADD COLUMN privacy_accepted_at TIMESTAMPTZ,
    ADD CONSTRAINT customers_privacy_acceptance CHECK ((privacy_notice IS NULL) = (privacy_accepted_at IS NULL));
ALTER TABLE customers ADD CONSTRAINT customers_subject_key UNIQUE (subject);
-- A customer's subject is a random (version 4) UUID: never the blind index's or a month's, whose
-- keys an erasure must not reach.
ALTER TABLE customers ADD CONSTRAINT customers_subject_is_random
    CHECK (subject::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$');
-- A closed wallet stays closed (an erasure rests on it).
CREATE FUNCTION customers_closed_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'closed' AND NEW.status <> 'closed' THEN
        RAISE EXCEPTION 'a closed wallet is never opened again' USING ERRCODE = 'UL021';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER customers_closed_is_final BEFORE UPDATE OF status ON customers FOR EACH ROW EXECUTE FUNCTION customers_closed_is_final();
ALTER TABLE customers ALTER COLUMN name DROP NOT NULL;
-- A name is either sealed or (until `migrate` seals it) in clear, never both; none once erased.
ALTER TABLE customers ADD CONSTRAINT customers_name_sealed_or_erased CHECK (
    CASE WHEN erased_at IS NULL THEN (name IS NULL) <> (name_sealed IS NULL)
         ELSE name IS NULL AND name_sealed IS NULL AND name_index IS NULL END);
CREATE INDEX customers_name_index ON customers USING gin (name_index);

-- A profile's notice also goes when its sealed name changes or it is erased.
DROP TRIGGER customers_profile_changed ON customers;
CREATE TRIGGER customers_profile_changed AFTER UPDATE ON customers FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.msisdn IS DISTINCT FROM NEW.msisdn OR OLD.name IS DISTINCT FROM NEW.name
          OR OLD.name_sealed IS DISTINCT FROM NEW.name_sealed OR OLD.erased_at IS DISTINCT FROM NEW.erased_at
          OR OLD.language IS DISTINCT FROM NEW.language OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.locked_until IS DISTINCT FROM NEW.locked_until OR OLD.pin_reset_required IS DISTINCT FROM NEW.pin_reset_required
          OR OLD.pin_reset_completed_at IS DISTINCT FROM NEW.pin_reset_completed_at OR OLD.tier IS DISTINCT FROM NEW.tier)
    EXECUTE FUNCTION customers_profile_changed();

-- SMS texts: an inbound command's text (PIN masked) and an outbound message's worded text are
-- sealed for the subject they concern (the customer's, or the month's for a number with no
-- wallet), bound to the row's id or de-duplication key. The clear columns stay for rows from
-- before this migration (sealed by `migrate`) and hold nothing new.
ALTER TABLE sms_inbound
    ADD COLUMN subject UUID,
    -- The longest text Africa's Talking's callback may carry (1,600 characters, 4 bytes each at
    -- most), sealed (29 bytes more).
    ADD COLUMN text_sealed BYTEA CHECK (length(text_sealed) <= 6500);
ALTER TABLE sms_inbound ALTER COLUMN text_masked DROP NOT NULL;
ALTER TABLE sms_inbound ADD CONSTRAINT sms_inbound_sealed_with_subject CHECK (text_sealed IS NULL OR subject IS NOT NULL);
CREATE INDEX sms_inbound_subject ON sms_inbound (subject);
ALTER TABLE outbox
    ADD COLUMN subject UUID,
    ADD COLUMN message_sealed BYTEA CHECK (length(message_sealed) <= 8000);
ALTER TABLE outbox ADD CONSTRAINT outbox_sealed_with_subject CHECK (message_sealed IS NULL OR subject IS NOT NULL);
CREATE INDEX outbox_subject ON outbox (subject) WHERE subject IS NOT NULL;
-- What `retention run` deletes, found without reading the whole table for each batch.
CREATE INDEX sms_inbound_retention ON sms_inbound (received_at) WHERE status = 'done';
CREATE INDEX outbox_retention ON outbox (created_at) WHERE status IN ('sent', 'failed');

-- Erasure, with four eyes like every staff change: `customer erase` asks (an operator), another
-- person approves (`ledger approve`). Only a closed wallet with nothing in it and nothing in
-- flight may be erased: the ledger keeps every transfer, and no money may be left owed to a
-- customer nobody can name any more.
ALTER TABLE ledger_requests DROP CONSTRAINT ledger_requests_kind_check;
ALTER TABLE ledger_requests ADD CONSTRAINT ledger_requests_kind_check CHECK (kind IN ('adjustment', 'reversal', 'pin_reset', 'erase'));
ALTER TABLE ledger_requests DROP CONSTRAINT ledger_requests_amount_by_kind;
ALTER TABLE ledger_requests ADD CONSTRAINT ledger_requests_amount_by_kind CHECK ((kind IN ('pin_reset', 'erase')) = (amount IS NULL));
ALTER TABLE ledger_requests DROP CONSTRAINT ledger_requests_posts_a_transfer;
ALTER TABLE ledger_requests ADD CONSTRAINT ledger_requests_posts_a_transfer
    CHECK (kind IN ('pin_reset', 'erase') OR (status = 'approved') = (transfer_id IS NOT NULL));
CREATE UNIQUE INDEX ledger_requests_one_open_erasure ON ledger_requests (msisdn) WHERE kind = 'erase' AND status = 'pending';

-- Raises unless customer `id` may be erased: closed, not erased yet, every account at zero with
-- nothing held, no deposit pending and no payout unsettled.
CREATE FUNCTION customers_erasable(p_id BIGINT) RETURNS void LANGUAGE plpgsql AS $$
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
    IF EXISTS (SELECT 1 FROM deposits d WHERE d.customer_id = p_id AND d.status = 'pending')
        OR EXISTS (SELECT 1 FROM payouts p WHERE p.customer_id = p_id AND p.status IN ('reserved', 'sent', 'unknown')) THEN
        RAISE EXCEPTION 'a deposit or payout of this wallet is still in flight' USING ERRCODE = 'UL021';
    END IF;
END $$;

-- Checked when asked too, so a request that could never be approved is refused at once.
CREATE FUNCTION ledger_requests_erasable() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    id BIGINT;
BEGIN
    IF NEW.kind = 'erase' THEN
        SELECT c.id INTO id FROM customers c WHERE c.msisdn = NEW.msisdn;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no wallet for %', NEW.msisdn USING ERRCODE = 'UL011';
        END IF;
        PERFORM customers_erasable(id);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_requests_erasable BEFORE INSERT ON ledger_requests FOR EACH ROW EXECUTE FUNCTION ledger_requests_erasable();

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
        -- Erasure (issue 31): the wallet's personal fields are blanked here; the gateway that
        -- approved then destroys the customer's data key in the key store (and `retention run`
        -- does for any erasure whose key is still there), which makes every copy, backups
        -- included, unreadable. The ledger's rows stay, under the customer's pseudonymous subject.
        SELECT c.id, c.subject, c.status, c.erased_at INTO cust FROM customers c WHERE c.msisdn = r.msisdn FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no wallet for %', r.msisdn USING ERRCODE = 'UL011';
        END IF;
        PERFORM customers_erasable(cust.id);
        UPDATE customers SET name = NULL, name_sealed = NULL, name_index = NULL, erased_at = now(), updated_at = now() WHERE id = cust.id;
        -- Their texts: sealed for them, sealed under a month's key (before they registered), or
        -- from before texts were sealed.
        UPDATE sms_inbound SET text_sealed = NULL, text_masked = NULL
        WHERE (subject = cust.subject OR sender = r.msisdn) AND (text_sealed IS NOT NULL OR text_masked IS NOT NULL);
        UPDATE outbox SET message_sealed = NULL, message = NULL
        WHERE (subject = cust.subject OR recipient = r.msisdn) AND (message_sealed IS NOT NULL OR message IS NOT NULL);
        INSERT INTO audit_log (actor, action, msisdn, reason, before, after)
        VALUES (NEW.decided_by, 'customer.erased', r.msisdn, NEW.reason,
                jsonb_build_object('subject', cust.subject::text, 'requested_by', r.requested_by, 'request', r.id::text),
                jsonb_build_object('subject', cust.subject::text, 'personal_data', 'erased'));
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

-- Staff reads of personal data are in the trail (`customer.viewed`, `customer.exported`), by
-- whoever reads: a reporting login may write those rows, and only those, under its own name.
CREATE OR REPLACE FUNCTION audit_log_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The login, and the role it acted as when that differs (the staff desk's SET LOCAL ROLE, or the
    -- owner inside the wallet's functions): `ops_baraka as ussd_owner`.
    NEW.db_user := CASE WHEN session_user = current_user THEN current_user::text ELSE session_user || ' as ' || current_user END;
    NEW.at := now();
    -- Inside the wallet's functions current_user is the owner, which is in neither group.
    IF pg_has_role(current_user, 'ussd_operator', 'MEMBER') AND NOT pg_has_role(current_user, 'ussd_app', 'MEMBER') THEN
        NEW.actor := ledger_staff_identity();
    ELSIF pg_has_role(current_user, 'ussd_report', 'MEMBER') AND NOT pg_has_role(current_user, 'ussd_app', 'MEMBER') THEN
        IF NEW.action NOT IN ('customer.viewed', 'customer.exported') THEN
            RAISE EXCEPTION 'a reporting login records only its own reads of personal data' USING ERRCODE = 'UL004';
        END IF;
        NEW.actor := ledger_staff_identity();
    END IF;
    RETURN NEW;
END $$;

-- The gateway seals names: it may write the sealed columns, no longer the clear one (rows from
-- before are sealed by `migrate`, as the owner). Every later migration's call re-applies this.
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
    GRANT UPDATE (name_sealed, name_index, language, pin_hash, failed_pin_attempts, locked_until, updated_at, pin_locks, pin_change_grant,
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
                              'customers_erasable', 'ledger_requests_erasable', 'customers_closed_is_final')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f.signature, current_schema());
    END LOOP;
    -- What only the owner runs.
    REVOKE EXECUTE ON FUNCTION ledger_apply_privileges() FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION ledger_add(BIGINT, BIGINT) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION customers_erasable(BIGINT) FROM PUBLIC;
END $$;
REVOKE ALL ON customers FROM ussd_app;
SELECT ledger_apply_privileges();
