-- SMS (issue 7): inbound commands de-duplicated on Africa's Talking's id, and the outbox's life
-- as the sender and delivery reports see it.

-- One row per inbound message id: a retried callback finds its row and runs nothing twice. The
-- text is stored with the PIN masked.
CREATE TABLE sms_inbound (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    text_masked TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'done')),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at TIMESTAMPTZ
);

-- pending -> sent (accepted by Africa's Talking) or failed (permanent refusal, or out of
-- attempts). `message` holds an already worded text (command replies, operator messages);
-- otherwise `template` and `params` are worded in `language` when sent. A sender claims a row
-- until `claimed_until` under its own `claim_token`, and renews that claim right before sending,
-- so a row whose claim ran out and was taken by another sender is not sent twice; a crash leaves
-- the claim to expire and the row is sent after restart.
ALTER TABLE outbox
    ADD COLUMN status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    ADD COLUMN message TEXT,
    ADD COLUMN claimed_until TIMESTAMPTZ,
    ADD COLUMN claim_token TEXT,
    ADD COLUMN provider_status TEXT,
    ADD COLUMN delivery_status TEXT,
    ADD COLUMN failure_reason TEXT,
    ADD COLUMN delivered_at TIMESTAMPTZ;
UPDATE outbox SET status = 'sent' WHERE sent_at IS NOT NULL;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE UNIQUE INDEX outbox_provider_message ON outbox (provider_message_id) WHERE provider_message_id IS NOT NULL;
