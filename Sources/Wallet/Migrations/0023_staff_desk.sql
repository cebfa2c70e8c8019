-- Issue 33: the staff desk, a web back-office on the admin listener. People sign in to the desk
-- with a password and a second factor; the desk's own login (a member of ussd_desk) then acts in
-- the database as the person, with SET LOCAL ROLE per transaction, so every check of issue 20
-- (who asked, who decides, four eyes) compares the person, never the desk.
--
-- The desk's login is NOINHERIT: it holds no right of the people it may switch to until it
-- switches, and only the rights granted to it by name (desk_admit_all): reading and updating the
-- staff accounts' sign-in state, and writing its own `desk.*` rows of the audit trail.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_desk') THEN
        BEGIN
            CREATE ROLE ussd_desk NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END $$;

-- One row per member of staff who signs in to the desk. `login` is their database role (created
-- by `ussd-gateway staff create`, in exactly the group their desk role maps to); the desk never
-- creates roles (it has no CREATEROLE), so a compromised desk cannot mint a person.
CREATE TABLE staff (
    login TEXT PRIMARY KEY CHECK (login ~ '^[a-z_][a-z0-9_]{0,62}$'),
    display_name TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    desk_role TEXT NOT NULL CHECK (desk_role IN ('support', 'finance-maker', 'finance-approver', 'auditor', 'admin')),
    -- scrypt (memory-hard), in a self-describing form: scrypt$<log2 N>$<r>$<p>$<salt>$<hash>.
    password_hash TEXT NOT NULL CHECK (password_hash LIKE 'scrypt$%'),
    -- The TOTP secret (RFC 6238); shown once, as a QR code, until the first code confirms it.
    totp_secret TEXT NOT NULL CHECK (length(totp_secret) BETWEEN 16 AND 64),
    -- When the secret was shown (by `staff create` on its terminal, or the desk's enrolment page):
    -- it is shown once; an administrator's reset makes a new one.
    totp_shown_at TIMESTAMPTZ,
    totp_enrolled_at TIMESTAMPTZ,
    -- The last time step a code was accepted for: a code is never accepted twice.
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    failed_attempts INT NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until TIMESTAMPTZ,
    -- Sessions carry the epoch they began in; "sign out everywhere" moves it on.
    session_epoch INT NOT NULL DEFAULT 0,
    disabled_at TIMESTAMPTZ,
    last_signed_in_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by TEXT NOT NULL DEFAULT current_user
);

-- A desk role names the database group its login must be in, and only that one: support, the
-- finance makers and administrators ask (ussd_operator), finance approvers decide (ussd_approver),
-- auditors read (ussd_report). The desk may not change a role: only the owner (staff create).
CREATE FUNCTION staff_role_matches() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted TEXT := CASE NEW.desk_role WHEN 'finance-approver' THEN 'ussd_approver' WHEN 'auditor' THEN 'ussd_report' ELSE 'ussd_operator' END;
    groups TEXT[];
BEGIN
    SELECT coalesce(array_agg(g.rolname::text ORDER BY g.rolname), '{}') INTO groups FROM pg_auth_members m
    JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
    WHERE r.rolname = NEW.login AND g.rolname IN ('ussd_app', 'ussd_report', 'ussd_operator', 'ussd_approver', 'ussd_desk');
    IF groups <> ARRAY[wanted] THEN
        RAISE EXCEPTION 'a % logs in as a member of % only (% is in %)', NEW.desk_role, wanted, NEW.login, groups USING ERRCODE = 'UL020';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.desk_role <> OLD.desk_role AND NOT ledger_is_owner() THEN
        RAISE EXCEPTION 'only the owner changes a desk role' USING ERRCODE = 'UL004';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER staff_role_matches BEFORE INSERT OR UPDATE OF desk_role, login ON staff FOR EACH ROW EXECUTE FUNCTION staff_role_matches();

-- The desk's own rows in the trail (sign-ins, refusals, staff changes): `desk.*` only, under the
-- desk's login. What a person does through the desk is written as that person (SET LOCAL ROLE).
CREATE OR REPLACE FUNCTION audit_log_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The login, and the role it acted as when that differs (the staff desk's SET LOCAL ROLE, or the
    -- owner inside the wallet's functions): `ops_baraka as ussd_owner`.
    NEW.db_user := CASE WHEN session_user = current_user THEN current_user::text ELSE session_user || ' as ' || current_user END;
    NEW.at := now();
    IF pg_has_role(current_user, 'ussd_desk', 'MEMBER') AND NOT ledger_is_owner() AND NOT pg_has_role(current_user, 'ussd_app', 'MEMBER') THEN
        IF NEW.action NOT LIKE 'desk.%' THEN
            RAISE EXCEPTION 'the desk writes only its own desk.* rows; a person''s actions are written as that person' USING ERRCODE = 'UL004';
        END IF;
        NEW.actor := current_user;
    -- Inside the wallet's functions current_user is the owner, which is in neither group.
    ELSIF pg_has_role(current_user, 'ussd_operator', 'MEMBER') AND NOT pg_has_role(current_user, 'ussd_app', 'MEMBER') THEN
        NEW.actor := ledger_staff_identity();
    ELSIF pg_has_role(current_user, 'ussd_report', 'MEMBER') AND NOT pg_has_role(current_user, 'ussd_app', 'MEMBER') THEN
        IF NEW.action NOT IN ('customer.viewed', 'customer.exported') THEN
            RAISE EXCEPTION 'a reporting login records only its own reads of personal data' USING ERRCODE = 'UL004';
        END IF;
        NEW.actor := ledger_staff_identity();
    END IF;
    RETURN NEW;
END $$;

-- Whether `login` works at the desk as support or as an administrator (an enabled account): the
-- ones who may decide a PIN reset besides approvers. Runs as the owner, since staff logins may not
-- read the accounts; it answers only that.
CREATE FUNCTION staff_decides_pin_resets(login TEXT) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER AS $$
    -- Only about the caller: the session's own login, or a person the session (the desk) acts as.
    SELECT ($1 = session_user OR pg_has_role(session_user, $1, 'MEMBER'))
        AND EXISTS (SELECT 1 FROM staff s WHERE s.login = $1 AND s.desk_role IN ('support', 'admin') AND s.disabled_at IS NULL)
$$;

-- Four eyes as before; a PIN reset may also be decided by another member of support (or an
-- administrator) at the desk, as support desks work: never by the one who asked. A login in
-- ussd_operator without such a desk account (a finance maker, a command-line operator) may not.
CREATE OR REPLACE FUNCTION ledger_decisions_identity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    NEW.decided_by := ledger_staff_identity();
    NEW.decided_at := now();
    SELECT * INTO r FROM ledger_requests WHERE id = NEW.request_id;
    IF NOT pg_has_role(current_user, 'ussd_approver', 'MEMBER')
        AND NOT (FOUND AND r.kind = 'pin_reset' AND pg_has_role(current_user, 'ussd_operator', 'MEMBER') AND staff_decides_pin_resets(current_user::text)) THEN
        RAISE EXCEPTION 'only an approver (ussd_approver) may decide a request' USING ERRCODE = 'UL004';
    END IF;
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

-- The rights of a desk login (a member of ussd_desk), granted by name because it inherits none:
-- NOINHERIT, so switching to a person is the only way to act as one. It may switch to every
-- member of staff. Run by the owner: for `only_desk` (`db login NAME --role ussd_desk`), or for
-- every desk login admitted here before (`staff create`, and each migration). Roles are the
-- cluster's: a desk admitted to another database is left alone, and nothing is granted twice.
CREATE FUNCTION desk_admit_all(only_desk TEXT DEFAULT NULL) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    d RECORD;
    s RECORD;
BEGIN
    -- One at a time in this database: two `staff create` at once would grant the same rows.
    PERFORM pg_advisory_xact_lock(hashtext('desk_admit_all'));
    FOR d IN SELECT r.oid, r.rolname, r.rolinherit FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
             WHERE g.rolname = 'ussd_desk' AND r.rolcanlogin
                 AND (r.rolname = only_desk OR (only_desk IS NULL AND has_table_privilege(r.oid, 'staff', 'SELECT'))) LOOP
        IF d.rolinherit THEN
            EXECUTE format('ALTER ROLE %I NOINHERIT', d.rolname);
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), d.rolname);
        EXECUTE format('GRANT SELECT ON staff TO %I', d.rolname);
        EXECUTE format('GRANT UPDATE (password_hash, totp_secret, totp_shown_at, totp_enrolled_at, totp_last_step, failed_attempts, locked_until, session_epoch, disabled_at, last_signed_in_at) ON staff TO %I', d.rolname);
        EXECUTE format('GRANT INSERT (actor, action, msisdn, reason, before, after) ON audit_log TO %I', d.rolname);
        EXECUTE format('GRANT USAGE ON SEQUENCE audit_log_id_seq TO %I', d.rolname);
        FOR s IN SELECT staff.login FROM staff JOIN pg_roles p ON p.rolname = staff.login
                 WHERE NOT EXISTS (SELECT 1 FROM pg_auth_members a WHERE a.roleid = p.oid AND a.member = d.oid) LOOP
            EXECUTE format('GRANT %I TO %I', s.login, d.rolname);
        END LOOP;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION ledger_apply_privileges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    f RECORD;
    -- Tables the gateway may not write: money, the staff's requests and decisions, settings.
    not_app TEXT[] := ARRAY['transfers', 'accounts', 'account_shards', 'audit_log', 'kyc_tiers', 'ledger_requests', 'ledger_decisions',
                            'ledger_settings', 'customers', 'schema_migrations', 'staff'];
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
    -- Decisions: approvers; PIN resets also another member of support (ledger_decisions_identity).
    GRANT INSERT (request_id, decision, reason) ON ledger_decisions TO ussd_operator;
    -- The staff desk's accounts: the desk's own logins only (desk_admit_all), nobody else.
    REVOKE ALL ON staff FROM PUBLIC, ussd_app, ussd_report, ussd_operator, ussd_approver;
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
                              'ledger_keep_terms', 'callback_refusals_keep', 'staff_role_matches')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f.signature, current_schema());
    END LOOP;
    -- What only the owner runs.
    REVOKE EXECUTE ON FUNCTION ledger_apply_privileges() FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION ledger_add(BIGINT, BIGINT) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION customers_erasable(BIGINT) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION desk_admit_all(TEXT) FROM PUBLIC;
    EXECUTE format('ALTER FUNCTION staff_decides_pin_resets(TEXT) SET search_path = %I, pg_temp', current_schema());
    REVOKE EXECUTE ON FUNCTION staff_decides_pin_resets(TEXT) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION staff_decides_pin_resets(TEXT) TO ussd_operator;
    PERFORM desk_admit_all();
END $$;

SELECT ledger_apply_privileges();
