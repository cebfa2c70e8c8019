#!/usr/bin/env bash
# A batch of sends in Postgres alone, timed with pgbench: the set-based `wallet_move_batch`
# (migration 0018) against the same movements one by one (`ledger_move_each`, what the batch was
# before), on a throwaway Postgres with every migration and 10,000 funded customers.
#
#   scripts/batch-bench.sh              three interleaved runs of each, 8 s each, batches of 8
#   BATCH=16 SECONDS_EACH=8 RUNS=3 scripts/batch-bench.sh
#   KEEP=1 scripts/batch-bench.sh       keep the throwaway Postgres's files (/tmp/batch-bench.*) to look at
#
# Each batch is BATCH sends of KES 100 between random customers, each with its PIN's value
# (right), as the gateway sends them under load. Prints the mean time per batch and per send.
set -euo pipefail
cd "$(dirname "$0")/.."

BATCH=${BATCH:-8}
SECONDS_EACH=${SECONDS_EACH:-8}
RUNS=${RUNS:-3}
CUSTOMERS=10000

binary=.build/release/ussd-gateway
[ -x "$binary" ] || binary=.build/debug/ussd-gateway
[ -x "$binary" ] || { echo "build the gateway first (swift build -c release)" >&2; exit 1; }
pgbench=$(ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbench" ] || { echo "pgbench is not installed (Debian: postgresql-contrib)" >&2; exit 1; }

work=$(mktemp -d /tmp/batch-bench.XXXXXX)
trap 'bash scripts/services.sh stop-all "$work" >/dev/null 2>&1 || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
bash scripts/services.sh start-postgres "$work/postgres" auto >/dev/null
port=$(cat "$work/postgres/port")
url="postgres://ussd@127.0.0.1:$port/ussd"
DATABASE_URL="$url" "$binary" migrate >/dev/null 2>&1

psql -q -v ON_ERROR_STOP=1 "$url" <<SQL
INSERT INTO customers (msisdn, name, pin_hash)
SELECT '2547' || lpad(g::text, 8, '0'), 'Customer ' || g, 'pv' || g FROM generate_series(1, $CUSTOMERS) g;
INSERT INTO accounts (customer_id, kind) SELECT id, k FROM customers, (VALUES ('main'), ('savings')) v(k);
INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status)
SELECT 'fund-' || a.id, (SELECT f.id FROM accounts f WHERE f.kind = 'mpesa_float'), a.id, 100000000, 'deposit', 'posted'
FROM accounts a WHERE a.kind = 'main';
VACUUM ANALYZE;
SQL

for function in wallet_move_batch ledger_move_each; do
    cat > "$work/$function.sql" <<SQL
\set r random(1, 1000000000)
SELECT count(*) FROM $function((SELECT jsonb_agg(jsonb_build_object(
    'k', 'b' || :r || '-' || g || '-' || :client_id, 't', 'p2p', 'f', 'fp',
    'dm', '2547' || lpad((1 + ((:r::bigint * 7 + g * 13) % $CUSTOMERS))::text, 8, '0'), 'dk', 'main',
    'cm', '2547' || lpad((1 + ((:r::bigint * 11 + g * 17 + 5) % $CUSTOMERS))::text, 8, '0'), 'ck', 'main',
    'a', 10000, 'fee', 0,
    'pc', (SELECT c.id FROM customers c WHERE c.msisdn = '2547' || lpad((1 + ((:r::bigint * 7 + g * 13) % $CUSTOMERS))::text, 8, '0')),
    'pv', 'pv' || (1 + ((:r::bigint * 7 + g * 13) % $CUSTOMERS)), 'pa', 3, 'ps', 0))
    FROM generate_series(1, $BATCH) g), 10, 7000000, 3000000000);
SQL
done

echo "== a batch of $BATCH sends with their PINs, pgbench -n -c 1 -T $SECONDS_EACH, $RUNS interleaved runs (synchronous_commit=off: Postgres CPU, not the disk)"
for run in $(seq 1 "$RUNS"); do
    for function in wallet_move_batch ledger_move_each; do
        latency=$(PGOPTIONS="-c synchronous_commit=off" "$pgbench" -n -c 1 -T "$SECONDS_EACH" -f "$work/$function.sql" "$url" 2>"$work/pgbench.err" \
            | awk '/latency average/ { print $4 }')
        awk -v f="$function" -v l="$latency" -v b="$BATCH" -v r="$run" \
            'BEGIN { printf "run %d  %-18s %6.2f ms per batch  %5.3f ms per send\n", r, f, l, l / b }'
    done
done
echo "== the ledger after the runs"
psql -qAt "$url" -c "SELECT 'sum of balances: ' || sum(balance) || ', customers below zero: ' || count(*) FILTER (WHERE customer_id IS NOT NULL AND balance - held < 0) FROM account_balances"
