-- The audit trail: who did what to whom, when, why, and the values before and after. Each row is
-- written in the same transaction as the effect it describes, and no row is ever changed: the
-- database refuses UPDATE, DELETE and TRUNCATE on it, to every role, the gateway's own included
-- (a trigger refuses them even to the table's owner, and the owner's privileges to do them are
-- revoked as well).
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- An operator's name, or 'system' for what the gateway did by itself (a PIN lock).
    actor TEXT NOT NULL CHECK (length(actor) BETWEEN 1 AND 100),
    action TEXT NOT NULL CHECK (action ~ '^[a-z][a-z_.]{1,60}$'),
    -- The customer concerned, when there is one.
    msisdn TEXT CHECK (msisdn IS NULL OR msisdn ~ '^[0-9]{6,15}$'),
    reason TEXT CHECK (reason IS NULL OR length(reason) BETWEEN 1 AND 500),
    before JSONB,
    after JSONB
);

CREATE INDEX audit_log_by_msisdn ON audit_log (msisdn, id) WHERE msisdn IS NOT NULL;

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
DO $$ BEGIN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM %I', current_user);
END $$;
