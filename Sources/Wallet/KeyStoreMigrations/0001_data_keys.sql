-- The key store (issue 31): each data subject's data key, wrapped by a key-encryption key (KEK)
-- that lives in a key file, the environment or a PKCS#11 token, never here. This database is
-- apart from the ledger's and backed up on a shorter retention: destroying a subject's row
-- (crypto-shredding) makes every copy of their personal fields unreadable, in the ledger's
-- database and in its backups, once this database's older backups have aged out.
--
-- Subjects: a customer (their `customers.subject`), a calendar month for personal data that
-- belongs to no customer yet (an SMS from an unregistered number), or the blind index's key.
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

-- Subjects whose key was destroyed: their data key is never made again (a later write for them is
-- refused rather than readable), and an erasure can be shown to have happened.
CREATE TABLE destroyed_keys (
    subject UUID PRIMARY KEY,
    purpose TEXT NOT NULL,
    destroyed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 200)
);

CREATE FUNCTION data_keys_never_after_destruction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM destroyed_keys WHERE subject = NEW.subject) THEN
        RAISE EXCEPTION 'the data key of subject % was destroyed: it is never made again', NEW.subject USING ERRCODE = 'UK001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER data_keys_never_after_destruction BEFORE INSERT ON data_keys
    FOR EACH ROW EXECUTE FUNCTION data_keys_never_after_destruction();

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
CREATE TRIGGER data_keys_keep_subject BEFORE UPDATE OR DELETE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION data_keys_keep_subject();

-- Who may do what here, when the ledger's group roles are on this server (the same server as the
-- ledger's database; a key store elsewhere grants its own logins alike): the gateway makes and
-- reads keys and reads what was destroyed; an approver destroys the keys of the erasures they
-- approve; re-wrapping (`keys rotate`) is the owner's, as the key custodian.
DO $$
BEGIN
    REVOKE ALL ON data_keys, destroyed_keys FROM PUBLIC;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_app') THEN
        GRANT SELECT, INSERT ON data_keys TO ussd_app;
        GRANT SELECT ON destroyed_keys TO ussd_app;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_report') THEN
        GRANT SELECT ON data_keys, destroyed_keys TO ussd_report, ussd_operator;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ussd_approver') THEN
        GRANT SELECT, DELETE ON data_keys TO ussd_approver;
        GRANT SELECT, INSERT ON destroyed_keys TO ussd_approver;
    END IF;
END $$;
