-- Issue 32: the M-Pesa float, watched. Daraja's Account Balance answers arrive on a callback
-- route of their own; each answer is kept with the query it answers, so a forged or repeated
-- answer changes nothing. Nothing here moves money: the float is what M-Pesa says the B2C
-- utility account holds, set against the payouts in flight by the alerts.

-- One query per interval for the whole deployment: the replica whose insert takes the slot asks.
CREATE TABLE mpesa_balance_queries (
    id BIGSERIAL PRIMARY KEY,
    -- floor(unix time / interval): unique, so two replicas never ask in the same interval.
    slot BIGINT NOT NULL UNIQUE,
    asked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- From Daraja's acknowledgement; an answer counts only when it names both.
    conversation_id TEXT UNIQUE CHECK (length(conversation_id) BETWEEN 1 AND 128),
    originator_conversation_id TEXT CHECK (length(originator_conversation_id) <= 128),
    answered_at TIMESTAMPTZ,
    -- Daraja's ResultCode ('0' for a balance), or 'timeout' for the queue's timeout.
    result_code TEXT CHECK (length(result_code) <= 32),
    result_text TEXT CHECK (length(result_text) <= 500)
);

-- The accounts one answer reports (`Working Account`, `Utility Account`, ...), amounts in cents.
CREATE TABLE mpesa_float (
    query_id BIGINT NOT NULL REFERENCES mpesa_balance_queries (id),
    account TEXT NOT NULL CHECK (length(account) BETWEEN 1 AND 64),
    currency TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    available BIGINT NOT NULL,
    -- M-Pesa's BOCompletedTime: when the balance was read.
    reported_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (query_id, account)
);
CREATE INDEX mpesa_float_latest ON mpesa_float (account, query_id DESC);

SELECT ledger_apply_privileges();
