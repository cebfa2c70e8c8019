-- A deposit's failure notice and its credit receipt shared the outbox dedupe key 'deposit:<id>',
-- so a payment that arrived after the failure notice was credited without a receipt. Failure
-- notices now use 'deposit-failed:<id>'; the ones already queued are renamed to match.
UPDATE outbox SET dedupe_key = 'deposit-failed:' || substr(dedupe_key, length('deposit:') + 1)
WHERE template = 'deposit_failed' AND dedupe_key LIKE 'deposit:%';
