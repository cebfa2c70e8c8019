-- M-Pesa (issue 6): what the reconciler needs to find work, raw provider bodies kept with the
-- records they settle, and callbacks that matched nothing kept for a human to review.

-- Deposits: when to query Daraja next, and how many times it was asked.
ALTER TABLE deposits
    ADD COLUMN next_check_at TIMESTAMPTZ,
    ADD COLUMN checks INT NOT NULL DEFAULT 0;
CREATE INDEX deposits_pending_check ON deposits (next_check_at) WHERE status = 'pending';

-- Payouts: the raw result or timeout body, the id of the latest transaction-status query (its
-- answer comes back to the result URL under that id), and the reconciler's schedule.
ALTER TABLE payouts
    ADD COLUMN raw_result JSONB,
    ADD COLUMN status_query_id TEXT UNIQUE,
    ADD COLUMN next_check_at TIMESTAMPTZ,
    ADD COLUMN checks INT NOT NULL DEFAULT 0;
CREATE INDEX payouts_open_check ON payouts (next_check_at) WHERE status IN ('reserved', 'sent', 'unknown');

-- A well-formed callback for a request we do not know (or that disagrees with ours).
CREATE TABLE mpesa_review (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('stk', 'b2c_result', 'b2c_timeout')),
    reference TEXT NOT NULL,
    reason TEXT NOT NULL,
    body JSONB NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
