-- Each PIN key version's check value (the first 8 bytes of the key's HMAC of a fixed label, in
-- hex; Sources/Wallet/PIN/PINVault.swift): recorded by the first gateway or `pin rotate-key` that
-- holds the version, and compared by every later one. Two hosts that each made their own "version
-- 2" (a key file per host, separate tokens) would write values the other cannot verify; the second
-- refuses to start instead.
CREATE TABLE pin_key_versions (
    version INT PRIMARY KEY CHECK (version > 0),
    check_value TEXT NOT NULL CHECK (check_value ~ '^[0-9a-f]{16}$'),
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

SELECT ledger_apply_privileges();
