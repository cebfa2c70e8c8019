#!/usr/bin/env bash
# `make bench`: release build, throwaway Redis and Postgres, and each of our clients measured right
# after the reference tool doing the same work against the same server (32 connections each).
set -euo pipefail
cd "$(dirname "$0")/.."

CONCURRENCY=${CONCURRENCY:-32}
REQUESTS=${REQUESTS:-200000}
PG_TRANSACTIONS=${PG_TRANSACTIONS:-200000}

swift build -c release --product ussd-gateway >&2
bin="$(swift build -c release --show-bin-path)/ussd-gateway"

scratch=$(mktemp -d /tmp/ussd-gateway-bench.XXXXXX)
chmod 755 "$scratch"
trap 'bash scripts/services.sh stop-all "$scratch" || true; rm -rf "$scratch"' EXIT INT TERM
redis_port=$(bash scripts/services.sh free-port)
bash scripts/services.sh start-redis "$scratch/redis" "$redis_port"
pg_port=$(bash scripts/services.sh free-port)
bash scripts/services.sh start-postgres "$scratch/postgres" "$pg_port"
pg_bin=$(bash scripts/services.sh pg-bindir)
export REDIS_URL="redis://127.0.0.1:$redis_port/0"
export DATABASE_URL="postgres://ussd@127.0.0.1:$pg_port/ussd"
export LOG_LEVEL=warning

echo "== machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== redis: redis-benchmark -t set,get -c $CONCURRENCY -n $REQUESTS -q"
redis-benchmark -p "$redis_port" -t set,get -c "$CONCURRENCY" -n "$REQUESTS" -q 2>/dev/null | tr '\r' '\n' | grep 'requests per second' 
echo "== redis: ussd-gateway bench redis --concurrency $CONCURRENCY --requests $REQUESTS"
"$bin" bench redis --concurrency "$CONCURRENCY" --requests "$REQUESTS"

"$pg_bin/pgbench" -h 127.0.0.1 -p "$pg_port" -U ussd -i -s 1 -q ussd >/dev/null 2>&1
per_client=$((PG_TRANSACTIONS / CONCURRENCY))
echo "== postgres: pgbench -S -c $CONCURRENCY -j 2 -t $per_client"
"$pg_bin/pgbench" -h 127.0.0.1 -p "$pg_port" -U ussd -S -c "$CONCURRENCY" -j 2 -t "$per_client" ussd 2>/dev/null | grep -E '^tps'
echo "== postgres: pgbench -S -M prepared -c $CONCURRENCY -j 2 -t $per_client"
"$pg_bin/pgbench" -h 127.0.0.1 -p "$pg_port" -U ussd -S -M prepared -c "$CONCURRENCY" -j 2 -t "$per_client" ussd 2>/dev/null | grep -E '^tps'
echo "== postgres: ussd-gateway bench postgres --concurrency $CONCURRENCY --requests $PG_TRANSACTIONS"
"$bin" bench postgres --concurrency "$CONCURRENCY" --requests "$PG_TRANSACTIONS" --scale 1
