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

-- Claims the currency for an unclaimed ledger and answers the one in force. A ledger that already
-- holds money but was never claimed (restored from before this migration) is shillings.
CREATE FUNCTION wallet_claim_currency(p_code TEXT, p_minor_units INT) RETURNS TABLE (code TEXT, minor_units INT) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_currency (code, minor_units)
    SELECT CASE WHEN EXISTS (SELECT 1 FROM transfers) THEN 'KES' ELSE p_code END,
           CASE WHEN EXISTS (SELECT 1 FROM transfers) THEN 2 ELSE p_minor_units END
    ON CONFLICT (only_row) DO NOTHING;
    RETURN QUERY SELECT l.code, l.minor_units FROM ledger_currency l;
END;
$$;

-- MTN MoMo's disagreements wait for a person beside M-Pesa's (the review queue is the rail's, not
-- one provider's): a deposit or a payout MoMo reports otherwise than the ledger has it.
ALTER TABLE mpesa_review DROP CONSTRAINT mpesa_review_kind_check;
ALTER TABLE mpesa_review ADD CONSTRAINT mpesa_review_kind_check
    CHECK (kind IN ('stk', 'b2c_result', 'b2c_timeout', 'stk_query', 'payout', 'c2b', 'momo_deposit', 'momo_payout'));

SELECT ledger_apply_privileges();
