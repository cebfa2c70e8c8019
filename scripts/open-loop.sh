#!/usr/bin/env bash
# `make open-loop`: the gateway under an open loop. Sessions start as a Poisson process at each of
# RATES (sessions per second) in turn, OPEN_SECONDS each, whatever the answers take, against one
# `ussd-gateway serve` (release build) on a throwaway Redis and Postgres (fsync on). Prints each
# rate's hops/s, p50 and p99 (a session's first hop counted from its scheduled arrival), then the
# highest rate at which every hop's p99 stayed under 100 ms with nothing dropped or unanswered.
# Ends with the gateway's resident size (now and peak) and the live sessions in Redis;
# LIVE_SESSIONS=N first opens N sessions that stay live (a dial each), to measure memory with them.
# JOURNEYS picks the journeys (mixed, menu, balance, send), as for `gateway-bench handsets`;
# HANDSETS_SHOW_UNKNOWN=1 prints each journey that ended on an unexpected screen, with the screen.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-50,100,200,300,400,600}
OPEN_SECONDS=${OPEN_SECONDS:-15}
JOURNEYS=${JOURNEYS:-mixed}
CUSTOMERS=${CUSTOMERS:-2000}

bash scripts/services.sh install
swift build -c release --product ussd-gateway >&2
swift build -c release --product gateway-bench >&2
bin="$(swift build -c release --show-bin-path)/ussd-gateway"
bench="$(swift build -c release --show-bin-path)/gateway-bench"

scratch=$(mktemp -d /tmp/ussd-gateway-open.XXXXXX)
chmod 755 "$scratch"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    bash scripts/services.sh stop-all "$scratch" || true
    rm -rf "$scratch"
}
trap cleanup EXIT INT TERM

bash scripts/services.sh start-redis "$scratch/redis" auto
bash scripts/services.sh start-postgres "$scratch/postgres" auto
pg_port=$(cat "$scratch/postgres/port")
pg_bin=$(bash scripts/services.sh pg-bindir)
"$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U ussd -d postgres -qc "CREATE DATABASE open_bench" >/dev/null

token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ENVIRONMENT=production PIN_PEPPER="open-loop-pepper-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" AT_CALLBACK_TOKEN="$token"
# The gateways' PIN key (and the handsets' seed, which makes their customers' PIN values): one per run.
export PIN_KEY="1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export REDIS_URL="redis://127.0.0.1:$(cat "$scratch/redis/port")/0" DATABASE_URL="postgres://ussd@127.0.0.1:$pg_port/open_bench"
# The personal-data key and the key store (made and migrated by `migrate`, as the owner).
export PERSONAL_DATA_KEY="1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PERSONAL_DATA_KEYS_URL="postgres://ussd@127.0.0.1:$pg_port/open_bench_keys"
export LOG_LEVEL=warning USSD_RATE_LIMIT_PER_MINUTE=0 RESUME_WINDOW_SECONDS=0 MENUS_PATH="$PWD/menus.json"
"$bin" migrate 2>/dev/null
"$bench" seed --customers "$CUSTOMERS" 2>&1 | grep -v 'applied migration' >&2
# The schema's owner migrated and seeded; the gateway serves as its own login, as in production.
"$bin" db login open_gateway --role ussd_app >/dev/null
app_url="postgres://open_gateway@127.0.0.1:$pg_port/open_bench"

http_port=$(bash scripts/services.sh free-port)
admin_port=$(bash scripts/services.sh free-port)
while [ "$admin_port" = "$http_port" ]; do admin_port=$(bash scripts/services.sh free-port); done
DATABASE_URL=$app_url PERSONAL_DATA_KEYS_URL="postgres://open_gateway@127.0.0.1:$pg_port/open_bench_keys" HTTP_PORT=$http_port ADMIN_PORT=$admin_port "$bin" serve 2>>"$scratch/serve.log" &
server=$!
for _ in $(seq 1 200); do curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/readyz" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/readyz" || { cat "$scratch/serve.log" >&2; exit 1; }

rport=$(cat "$scratch/redis/port")
redis_memory() { redis-cli -p "$rport" INFO memory | awk -F: '/^used_memory:/ {print $2 + 0}'; }
gateway_rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
gateway_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }

echo "== machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if [ "${LIVE_SESSIONS:-0}" -gt 0 ]; then
    memory0=$(redis_memory) rss0=$(gateway_rss)
    python3 scripts/live-sessions.py "http://127.0.0.1:$http_port/ussd/africastalking/$token" "$LIVE_SESSIONS"
    echo "== each live session: $(( ($(redis_memory) - memory0) / LIVE_SESSIONS )) bytes in Redis (used_memory), $(( ($(gateway_rss) - rss0) * 1024 / LIVE_SESSIONS )) bytes of the gateway's resident size"
fi
echo "== open loop: gateway-bench handsets --journeys $JOURNEYS --arrival-rates $RATES --seconds $OPEN_SECONDS (one gateway, no balancer)"
ticks0=$(gateway_ticks)
"$bench" handsets --url "http://127.0.0.1:$http_port/ussd/africastalking/$token" --journeys "$JOURNEYS" --customers "$CUSTOMERS" \
    --arrival-rates "$RATES" --seconds "$OPEN_SECONDS" | tee "$scratch/open-loop.txt"
# The gateway's CPU (user and system) over every rate, per hop answered: one rate at a time gives
# that rate's.
hops=$( (grep -o '[0-9]* hops =' "$scratch/open-loop.txt" || true) | awk '{sum += $1} END {print sum + 0}')
awk -v ticks=$(( $(gateway_ticks) - ticks0 )) -v hz="$(getconf CLK_TCK)" -v hops="$hops" \
    'BEGIN {if (hops > 0) printf "== gateway CPU: %.3f ms per hop over %d hops\n", 1000 * ticks / hz / hops, hops}'

# Memory with the sessions still live: every session record in Redis is within its TTL (two
# minutes), and this process keeps its own copy of the ones it served (RecentSessions).
records=$(redis-cli -p "$rport" --scan --pattern 'ussd:s:*' | wc -l)
now=$(date +%s)
live=0
for shard in $(seq 0 15); do live=$((live + $(redis-cli -p "$rport" ZCOUNT "ussd:active:{$shard}" "$now" +inf))); done
echo "== memory: $records session records in Redis, $live of them live (not ended); gateway $(grep -E '^VmRSS' /proc/$server/status | tr -s ' ' | cut -d' ' -f2-), peak $(grep -E '^VmHWM' /proc/$server/status | tr -s ' ' | cut -d' ' -f2-)"
