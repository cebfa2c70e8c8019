-- The ledger: customers, accounts, immutable transfers, provider records and the outbox.
-- Invariants live here, not only in code:
--   * balances change only through transfers (a trigger applies each transfer to both accounts),
--     so every movement debits one account and credits another: the sum of balances stays zero;
--   * a customer account's balance less its holds never goes below zero (CHECK);
--   * a transfer is never deleted, and never updated except a pending one's single resolution.

CREATE TABLE customers (
    id BIGSERIAL PRIMARY KEY,
    msisdn TEXT NOT NULL UNIQUE CHECK (msisdn ~ '^254[17][0-9]{8}$'),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    language TEXT NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2}$'),
    pin_hash TEXT NOT NULL,
    failed_pin_attempts INT NOT NULL DEFAULT 0 CHECK (failed_pin_attempts >= 0),
    locked_until TIMESTAMPTZ,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id BIGSERIAL PRIMARY KEY,
    customer_id BIGINT REFERENCES customers (id),
    kind TEXT NOT NULL CHECK (kind IN ('main', 'savings', 'mpesa_float', 'payouts_in_flight')),
    -- Integer cents. Posted money only; `held` is the part reserved by pending debits.
    balance BIGINT NOT NULL DEFAULT 0,
    held BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT customer_accounts_are_main_or_savings
        CHECK ((customer_id IS NOT NULL) = (kind IN ('main', 'savings'))),
    CONSTRAINT customer_balance_never_negative
        CHECK (customer_id IS NULL OR balance - held >= 0),
    UNIQUE (customer_id, kind)
);
CREATE UNIQUE INDEX accounts_one_per_system_kind ON accounts (kind) WHERE customer_id IS NULL;

INSERT INTO accounts (customer_id, kind) VALUES (NULL, 'mpesa_float'), (NULL, 'payouts_in_flight');

CREATE TABLE transfers (
    -- The caller's idempotency key.
    id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    debit_account BIGINT NOT NULL REFERENCES accounts (id),
    credit_account BIGINT NOT NULL REFERENCES accounts (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'p2p', 'save', 'unsave', 'reversal')),
    status TEXT NOT NULL CHECK (status IN ('posted', 'pending', 'voided')),
    -- For a transfer that resolves another (e.g. a reversal).
    resolves TEXT REFERENCES transfers (id),
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at TIMESTAMPTZ,
    CHECK (debit_account <> credit_account)
);
CREATE INDEX transfers_debit ON transfers (debit_account, created_at);
CREATE INDEX transfers_credit ON transfers (credit_account, created_at);

-- Applies a new transfer to its accounts: posted moves money, pending holds it on the debit side.
CREATE FUNCTION transfers_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'posted' THEN
        UPDATE accounts SET balance = balance - NEW.amount WHERE id = NEW.debit_account;
        UPDATE accounts SET balance = balance + NEW.amount WHERE id = NEW.credit_account;
    ELSIF NEW.status = 'pending' THEN
        UPDATE accounts SET held = held + NEW.amount WHERE id = NEW.debit_account;
    ELSE
        RAISE EXCEPTION 'a transfer cannot be created voided' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER transfers_apply AFTER INSERT ON transfers FOR EACH ROW EXECUTE FUNCTION transfers_apply();

-- Transfers are immutable: the only change allowed is a pending transfer's one resolution,
-- which releases its hold and, when posted, moves the money.
CREATE FUNCTION transfers_resolve() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'transfers are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'pending' OR NEW.status NOT IN ('posted', 'voided')
        OR NEW.id <> OLD.id OR NEW.debit_account <> OLD.debit_account OR NEW.credit_account <> OLD.credit_account
        OR NEW.amount <> OLD.amount OR NEW.kind <> OLD.kind OR NEW.created_at <> OLD.created_at
        OR NEW.resolves IS DISTINCT FROM OLD.resolves THEN
        RAISE EXCEPTION 'only a pending transfer may change, and only to posted or voided' USING ERRCODE = 'restrict_violation';
    END IF;
    UPDATE accounts SET held = held - OLD.amount WHERE id = OLD.debit_account;
    IF NEW.status = 'posted' THEN
        UPDATE accounts SET balance = balance - OLD.amount WHERE id = OLD.debit_account;
        UPDATE accounts SET balance = balance + OLD.amount WHERE id = OLD.credit_account;
    END IF;
    NEW.resolved_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER transfers_resolve BEFORE UPDATE OR DELETE ON transfers FOR EACH ROW EXECUTE FUNCTION transfers_resolve();

-- Balances change only through transfers: a direct UPDATE of balance or held is refused unless
-- it comes from the transfer triggers above (pg_trigger_depth() > 0).
CREATE FUNCTION accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'accounts are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF pg_trigger_depth() < 2 AND (NEW.balance <> OLD.balance OR NEW.held <> OLD.held) THEN
        RAISE EXCEPTION 'balances change only through transfers' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_guard BEFORE UPDATE OR DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_guard();

-- Attempts that failed for a business reason, so a retried key keeps failing the same way.
CREATE TABLE failed_transfers (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    error TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE deposits (
    id BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    msisdn TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed')),
    checkout_request_id TEXT UNIQUE,
    receipt TEXT UNIQUE,
    result_code INT,
    result_text TEXT,
    raw_callback JSONB,
    transfer_id TEXT REFERENCES transfers (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE payouts (
    -- Our OriginatorConversationID.
    id TEXT PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    msisdn TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    status TEXT NOT NULL DEFAULT 'reserved' CHECK (status IN ('reserved', 'sent', 'paid', 'failed', 'unknown')),
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    conversation_id TEXT UNIQUE,
    provider_transaction_id TEXT UNIQUE,
    result_code INT,
    result_text TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Messages to send after the money movement that causes them commits (same transaction).
-- The wallet records what happened (a template name and its values); the SMS sender words it
-- in the recipient's language.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('sms')),
    recipient TEXT NOT NULL,
    language TEXT NOT NULL,
    template TEXT NOT NULL,
    params JSONB NOT NULL DEFAULT '{}',
    dedupe_key TEXT NOT NULL UNIQUE,
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    provider_message_id TEXT,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
