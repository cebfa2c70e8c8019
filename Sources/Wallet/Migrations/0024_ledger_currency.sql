-- One currency per ledger (issue 34). Amounts are integer minor units of the deployment's
-- currency (CURRENCY); a ledger that counted shillings must never be read as cedis. The first
-- start claims the currency; every later start must name the same one or is refused.

CREATE TABLE ledger_currency (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    code TEXT NOT NULL CHECK (code ~ '^[A-Z]{3}$'),
    minor_units INT NOT NULL CHECK (minor_units BETWEEN 0 AND 4),
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every ledger before this migration counted Kenyan shillings in cents.
INSERT INTO ledger_currency (code, minor_units) SELECT 'KES', 2 WHERE EXISTS (SELECT 1 FROM transfers);

-- Claimed once, never changed: converting a ledger is a migration of its own, not a setting.
CREATE FUNCTION ledger_currency_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger''s currency is % and cannot be changed', OLD.code USING ERRCODE = 'UL022';
END;
$$;
CREATE TRIGGER ledger_currency_keep BEFORE UPDATE OR DELETE ON ledger_currency FOR EACH ROW EXECUTE FUNCTION ledger_currency_keep();

-- Claims the currency for an unclaimed ledger (`migrate` claims it first, `serve` again) and
-- answers the one in force. A ledger that held money when this migration ran was seeded above.
CREATE FUNCTION wallet_claim_currency(p_code TEXT, p_minor_units INT) RETURNS TABLE (code TEXT, minor_units INT) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_currency (code, minor_units) VALUES (p_code, p_minor_units) ON CONFLICT (only_row) DO NOTHING;
    RETURN QUERY SELECT l.code, l.minor_units FROM ledger_currency l;
END;
$$;

-- MTN MoMo's disagreements wait for a person beside M-Pesa's (the review queue is the rail's, not
-- one provider's): a deposit or a payout MoMo reports otherwise than the ledger has it.
ALTER TABLE mpesa_review DROP CONSTRAINT mpesa_review_kind_check;
ALTER TABLE mpesa_review ADD CONSTRAINT mpesa_review_kind_check
    CHECK (kind IN ('stk', 'b2c_result', 'b2c_timeout', 'stk_query', 'payout', 'c2b', 'momo_deposit', 'momo_payout'));

-- The privileges as migration 0023 left them, and the ledger's currency among the tables the
-- gateway may not write (it claims it through wallet_claim_currency only).
CREATE OR REPLACE FUNCTION ledger_apply_privileges() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    f RECORD;
    -- Tables the gateway may not write: money, the staff's requests and decisions, settings.
    not_app TEXT[] := ARRAY['transfers', 'accounts', 'account_shards', 'audit_log', 'kyc_tiers', 'ledger_requests', 'ledger_decisions',
                            'ledger_settings', 'customers', 'schema_migrations', 'staff', 'ledger_currency'];
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
