-- Group commit: concurrent movements, and concurrent deposit completions, gathered into one
-- statement and one commit.
--
-- `wallet_move_batch` runs `wallet_move` (migration 0009) for each movement of `p_moves`, a JSON
-- array of {k: key, t: kind, f: fingerprint, dm/dk: debit msisdn and account kind, cm/ck: credit
-- msisdn and account kind, a: amount, fee: fee}, in order, and returns one `wallet_move_result`
-- per movement in the same order. Each movement keeps its own key, replay, refusal and receipts:
-- only the transaction, and so the WAL flush at commit, is shared.
--
-- Every account of every customer the batch touches is locked first, in id order, so two batches
-- never wait on each other in a cycle (a batch that meets another only waits for it). The system
-- accounts a movement then reaches (the fee-income shard) are one row per batch.
--
-- A batch is all or nothing: if any movement raises (a CHECK, a deadlock with a transaction
-- outside the batches), nothing of the batch is committed and the caller runs each movement on
-- its own, where the usual retries apply.
CREATE FUNCTION wallet_move_batch(p_moves JSONB, p_min BIGINT, p_max BIGINT, p_daily BIGINT)
RETURNS SETOF wallet_move_result LANGUAGE plpgsql AS $$
DECLARE
    m JSONB;
    result wallet_move_result;
BEGIN
    -- Index lookups only: the numbers as an array (a join against the JSON would make the
    -- planner hash every customer).
    PERFORM 1 FROM accounts a
    WHERE a.customer_id IN (
        SELECT c.id FROM customers c
        WHERE c.msisdn = ANY (ARRAY(SELECT e->>'dm' FROM jsonb_array_elements(p_moves) e
                                    UNION SELECT e->>'cm' FROM jsonb_array_elements(p_moves) e)))
    ORDER BY a.id
    FOR UPDATE;
    FOR i IN 0 .. jsonb_array_length(p_moves) - 1 LOOP
        m := p_moves->i;
        result := wallet_move(m->>'k', m->>'t', m->>'f', m->>'dm', m->>'dk', m->>'cm', m->>'ck',
                              (m->>'a')::bigint, p_min, p_max, p_daily, (m->>'fee')::bigint);
        RETURN NEXT result;
    END LOOP;
END $$;

-- The same for paid deposits: `wallet_complete_deposit` (migrations 0002, 0007) for each of
-- `p_calls`, a JSON array of {c: CheckoutRequestID, r: receipt, a: amount, p: phone, raw: the
-- callback as JSON text, q: confirmed by a query}, one result row each, in order. The deposits
-- are locked first, in id order, then their customers' main accounts, in id order: the order
-- every completion takes them in, so batches only ever wait for one another. The float account's
-- shard is one row per batch.
CREATE FUNCTION wallet_complete_deposit_batch(p_calls JSONB)
RETURNS TABLE (outcome TEXT, id BIGINT, idempotency_key TEXT, msisdn TEXT, amount BIGINT, status TEXT, checkout_request_id TEXT, receipt TEXT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c JSONB;
    checkouts TEXT[] := ARRAY(SELECT e->>'c' FROM jsonb_array_elements(p_calls) e);
BEGIN
    PERFORM 1 FROM deposits d WHERE d.checkout_request_id = ANY (checkouts) ORDER BY d.id FOR UPDATE;
    PERFORM 1 FROM accounts a
    WHERE a.kind = 'main' AND a.customer_id IN (SELECT d.customer_id FROM deposits d WHERE d.checkout_request_id = ANY (checkouts))
    ORDER BY a.id
    FOR UPDATE;
    FOR i IN 0 .. jsonb_array_length(p_calls) - 1 LOOP
        c := p_calls->i;
        RETURN QUERY SELECT * FROM wallet_complete_deposit(c->>'c', c->>'r', (c->>'a')::bigint, c->>'p', (c->>'raw')::jsonb, (c->>'q')::boolean);
    END LOOP;
END $$;
