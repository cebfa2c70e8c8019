-- PIN verification values under versioned PIN keys (`pvv1$<version>$<hex>`; Sources/Wallet/PIN/
-- PINVault.swift). Staff count the values per key version (`ussd-gateway pin key-status`) to know
-- when an old key holds no customer any more, without reading a single value.
CREATE FUNCTION ledger_pin_key_status() RETURNS TABLE (scheme TEXT, key_version INT, customers BIGINT)
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT split_part(pin_hash, '$', 1) AS scheme,
           CASE WHEN pin_hash ~ '^pvv1\$[0-9]{1,9}\$' THEN split_part(pin_hash, '$', 2)::int END AS key_version,
           count(*) AS customers
    FROM customers
    GROUP BY 1, 2
    ORDER BY 1, 2
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ledger_pin_key_status() SET search_path = %I, pg_temp', current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION ledger_pin_key_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_pin_key_status() TO ussd_app, ussd_operator, ussd_report;

SELECT ledger_apply_privileges();
