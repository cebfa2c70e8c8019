-- The key store (issue 31): each data subject's data key, wrapped by a key-encryption key (KEK)
-- that lives in a key file, the environment or a PKCS#11 token, never here. This database is
-- apart from the ledger's and backed up on a shorter retention: destroying a subject's row
-- (crypto-shredding) makes every copy of their personal fields unreadable, in the ledger's
-- database and in its backups, once this database's older backups have aged out.
--
-- Subjects: a customer (their `customers.subject`), a calendar month for personal data that
-- belongs to no customer yet (an SMS from an unregistered number), or the blind index.
CREATE TABLE data_keys (
    subject UUID PRIMARY KEY,
    purpose TEXT NOT NULL CHECK (purpose IN ('customer', 'period', 'index')),
    -- The KEK version that wrapped it; `keys rotate` re-wraps under the newest.
    kek_version INT NOT NULL CHECK (kek_version > 0),
    -- AES-256-GCM of the 32-byte data key (nonce, ciphertext, tag) under a wrapping key derived
    -- from the KEK for this subject alone; its associated data names the subject and the version.
    wrapped BYTEA NOT NULL CHECK (length(wrapped) = 60),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    rewrapped_at TIMESTAMPTZ
);
CREATE INDEX data_keys_kek_version ON data_keys (kek_version);

-- Subjects whose key was destroyed, by whom and why: their data key is never made again (a later
-- write for them is refused rather than readable), and an erasure can be shown to have happened.
CREATE TABLE destroyed_keys (
    subject UUID PRIMARY KEY,
    purpose TEXT NOT NULL,
    destroyed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    destroyed_by TEXT NOT NULL DEFAULT session_user,
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 200)
);

-- The KEK version new data keys are wrapped under, set by `keys rotate` before it re-wraps: a
-- gateway still on an older key set cannot wrap a new key under a version about to be retired
-- (its insert is refused; it reads its key source again, or says it must be given the new key).
CREATE TABLE kek_current (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    version INT NOT NULL CHECK (version > 0)
);

CREATE FUNCTION data_keys_checked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM destroyed_keys WHERE subject = NEW.subject) THEN
        RAISE EXCEPTION 'the data key of subject % was destroyed: it is never made again', NEW.subject USING ERRCODE = 'UK001';
    END IF;
    IF NEW.kek_version < (SELECT version FROM kek_current) THEN
        RAISE EXCEPTION 'KEK version % is older than the current one (%): read the key source again', NEW.kek_version, (SELECT version FROM kek_current)
            USING ERRCODE = 'UK002';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER data_keys_checked BEFORE INSERT ON data_keys FOR EACH ROW EXECUTE FUNCTION data_keys_checked();

-- A key is only ever re-wrapped (its subject and purpose stay); destroyed only with a record of it.
CREATE FUNCTION data_keys_keep_subject() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM destroyed_keys WHERE subject = OLD.subject) THEN
            RAISE EXCEPTION 'a data key is destroyed only with its record in destroyed_keys' USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.subject <> OLD.subject OR NEW.purpose <> OLD.purpose OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'a data key keeps its subject and purpose' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER data_keys_keep_subject BEFORE UPDATE OR DELETE ON data_keys FOR EACH ROW EXECUTE FUNCTION data_keys_keep_subject();

-- Destroys a customer's data key, recording who and why (an erasure's approver runs it; `keys
-- sweep` for erasures whose key was left). The blind index's and the months' keys are the owner's
-- to destroy (retention), never a member of staff's. True when there was a key.
CREATE FUNCTION data_key_destroy(p_subject UUID, p_reason TEXT) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    kind TEXT;
BEGIN
    SELECT purpose INTO kind FROM data_keys WHERE subject = p_subject FOR UPDATE;
    -- Staff destroy customers' keys only: a customer's subject is a random (version 4) UUID, so a
    -- month's or the index's (whose subjects are known in advance) cannot be destroyed ahead of use.
    IF session_user <> current_user AND (coalesce(kind, 'customer') <> 'customer'
        OR p_subject::text !~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$') THEN
        RAISE EXCEPTION 'only a customer''s data key is destroyed by staff' USING ERRCODE = 'UK003';
    END IF;
    INSERT INTO destroyed_keys (subject, purpose, destroyed_by, reason) VALUES (p_subject, coalesce(kind, 'customer'), session_user, p_reason)
    ON CONFLICT (subject) DO NOTHING;
    DELETE FROM data_keys WHERE subject = p_subject;
    RETURN kind IS NOT NULL;
END $$;

-- Names resolve in this schema only; nobody but the owner creates tables or temporary tables to
-- shadow them.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION data_keys_checked() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION data_keys_keep_subject() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION data_key_destroy(UUID, TEXT) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
END $$;
REVOKE ALL ON data_keys, destroyed_keys, kek_current FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION data_key_destroy(UUID, TEXT) FROM PUBLIC;

-- Who may do what here, when the ledger's group roles are on this server (a key store on a
-- server of its own creates those four group roles first, then migrates): the gateway makes and
-- reads keys; staff read them (opening a name takes the KEK as well); an approver destroys a
-- customer's key through data_key_destroy, recorded under their login; re-wrapping (`keys
-- rotate`) and the months' keys are the owner's, as the key custodian.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_app') THEN
        GRANT SELECT, INSERT ON data_keys TO ussd_app;
        GRANT SELECT ON destroyed_keys, kek_current TO ussd_app;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_operator') THEN
        GRANT SELECT ON data_keys, destroyed_keys, kek_current TO ussd_report, ussd_operator;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_approver') THEN
        GRANT EXECUTE ON FUNCTION data_key_destroy(UUID, TEXT) TO ussd_approver;
    END IF;
END $$;
