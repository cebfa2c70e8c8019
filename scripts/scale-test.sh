#!/usr/bin/env bash
# `make scale-test`: three gateway replicas (`ussd-gateway serve`, release build) behind a real
# haproxy, on one Redis and one Postgres (fsync on). Simulated handsets (`gateway-bench handsets`)
# walk send-money and balance journeys through haproxy, so the hops of one session land on
# different replicas. First the throughput with 1, 2 and 3 replicas; then a run with faults: one
# replica SIGKILLed and restarted, then Redis restarted, then Postgres stopped as a crash would and
# restarted. Then the audit: the ledger sums to zero, no customer balance is negative, every
# transfer key appears once, every handset told "Sent" has its transfer, and no handset refused has
# one. Exit 1 when any of that fails.
#
# REDIS_MODE=cluster (`make scale-test-cluster`): sessions on a Redis Cluster of three primaries and
# three replicas instead of one Redis; the Redis fault is then a primary SIGKILLed (its replica is
# promoted automatically) and started again (it rejoins as a replica).
#
# Each throughput phase also prints every tier's CPU per hop (from /proc): what one core of each
# carries at that cost, so which part saturates first (SCALING.md).
#
# A Prometheus (Debian's) scrapes the replicas every second with the shipped alert rules
# (deploy/monitoring, `for:` shortened to 2 s); the end prints which alerts fired during the faults
# and why, and fails unless the replica kill, the Redis restart and the Postgres crash each fired
# their own (GatewayReplicaDown, RedisUnreachable, PostgresUnreachable). MONITORING_PICTURE=FILE.png
# also draws the dashboard's main panels from the run's series (README's monitoring picture).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_SIZE=${SECONDS_PER_SIZE:-20}
SECONDS_PER_JOURNEY=${SECONDS_PER_JOURNEY:-15}
FAULT_SECONDS=${FAULT_SECONDS:-60}
CONCURRENCY=${CONCURRENCY:-64}
CUSTOMERS=${CUSTOMERS:-2000}
REDIS_MODE=${REDIS_MODE:-single}

log() { printf '%s\n' "scale-test: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

bash scripts/services.sh install
command -v haproxy >/dev/null || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null; }
swift build -c release --product ussd-gateway >&2
swift build -c release --product gateway-bench >&2
bin="$(swift build -c release --show-bin-path)/ussd-gateway"
bench="$(swift build -c release --show-bin-path)/gateway-bench"

scratch=$(mktemp -d /tmp/ussd-gateway-scale.XXXXXX)
chmod 755 "$scratch"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$scratch/haproxy.pid" ] && kill "$(cat "$scratch/haproxy.pid")" 2>/dev/null || true
    bash scripts/services.sh stop-all "$scratch" || true
    # SCALE_TEST_KEEP=1 keeps the replicas' and servers' logs for a look afterwards.
    if [ "${SCALE_TEST_KEEP:-0}" = 1 ]; then echo "scale-test: logs kept in $scratch" >&2; else rm -rf "$scratch"; fi
}
trap cleanup EXIT INT TERM

if [ "$REDIS_MODE" = cluster ]; then
    bash scripts/services.sh start-redis-cluster "$scratch/redis-cluster"
    redis_url=$(cat "$scratch/redis-cluster/url")
else
    bash scripts/services.sh start-redis "$scratch/redis" auto
    redis_port=$(cat "$scratch/redis/port")
    redis_url="redis://127.0.0.1:$redis_port/0"
fi
bash scripts/services.sh start-postgres "$scratch/postgres" auto
pg_port=$(cat "$scratch/postgres/port")
pg_bin=$(bash scripts/services.sh pg-bindir)
"$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U ussd -d postgres -qc "CREATE DATABASE scale_bench" >/dev/null

token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ENVIRONMENT=production PIN_PEPPER="scale-test-pepper-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" AT_CALLBACK_TOKEN="$token"
# The gateways' PIN key (and the handsets' seed, which makes their customers' PIN values): one per run.
export PIN_KEY="1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export REDIS_URL="$redis_url" DATABASE_URL="postgres://ussd@127.0.0.1:$pg_port/scale_bench"
# The personal-data key and the key store (made and migrated by `migrate`, as the owner).
export PERSONAL_DATA_KEY="1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PERSONAL_DATA_KEYS_URL="postgres://ussd@127.0.0.1:$pg_port/scale_bench_keys"
export LOG_LEVEL=warning USSD_RATE_LIMIT_PER_MINUTE=0 RESUME_WINDOW_SECONDS=0 MENUS_PATH="$PWD/menus.json"
# Each replica probes Redis and Postgres every second (gateway_dependency_up), for the Prometheus below.
export DEPENDENCY_PROBE_SECONDS=1
"$bin" migrate 2>/dev/null
"$bench" seed --customers "$CUSTOMERS" 2>&1 | grep -v 'applied migration' >&2
# The schema's owner migrated and seeded; the gateway serves as its own login, as in production.
"$bin" db login scale_gateway --role ussd_app >/dev/null
app_url="postgres://scale_gateway@127.0.0.1:$pg_port/scale_bench"

free_port() { bash scripts/services.sh free-port; }
declare -a http_ports admin_ports replica_pids
start_replica() {
    local index=$1
    DATABASE_URL=$app_url PERSONAL_DATA_KEYS_URL="postgres://scale_gateway@127.0.0.1:$pg_port/scale_bench_keys" HTTP_PORT=${http_ports[$index]} ADMIN_PORT=${admin_ports[$index]} "$bin" serve 2>>"$scratch/replica$index.log" &
    replica_pids[$index]=$!
    pids+=($!)
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "http://127.0.0.1:${admin_ports[$index]}/readyz" 2>/dev/null && return 0
        sleep 0.1
    done
    log "replica $index never became ready"; cat "$scratch/replica$index.log" >&2; exit 1
}
for index in 1 2 3; do
    http_ports[$index]=$(free_port)
    admin_ports[$index]=$(free_port)
    while [ "${admin_ports[$index]}" = "${http_ports[$index]}" ]; do admin_ports[$index]=$(free_port); done
    start_replica "$index"
done

# Debian's Prometheus scraping every replica's /metrics each second with the shipped rules
# (deploy/monitoring), their `for:` durations shortened to 2 s so that a fault of a few seconds
# fires its alert; a watcher keeps each alert that fires, with its summary, for the report.
prom_port=$(free_port)
mkdir -p "$scratch/prometheus"
for rules in alerts slo dashboard-queries; do
    sed -E 's/^( +)for: .*/\1for: 2s/' "deploy/monitoring/$rules.yml" > "$scratch/prometheus/$rules.yml"
done
{
    printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [alerts.yml, slo.yml, dashboard-queries.yml]\n'
    printf 'scrape_configs:\n  - job_name: ussd-gateway\n    static_configs:\n      - targets: ["127.0.0.1:%s", "127.0.0.1:%s", "127.0.0.1:%s"]\n' \
        "${admin_ports[1]}" "${admin_ports[2]}" "${admin_ports[3]}"
} > "$scratch/prometheus/prometheus.yml"
prometheus --config.file="$scratch/prometheus/prometheus.yml" --storage.tsdb.path="$scratch/prometheus/data" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn 2>>"$scratch/prometheus.log" &
pids+=($!)
prom_url="http://127.0.0.1:$prom_port"
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$prom_url/-/ready" 2>/dev/null && break; sleep 0.1; done
python3 scripts/scale-monitor.py watch "$prom_url" "$scratch/alerts.jsonl" &
pids+=($!)
run_start=$(date +%s)

haproxy_port=$(free_port)
start_haproxy() {
    local replicas=$1
    [ -f "$scratch/haproxy.pid" ] && { kill "$(cat "$scratch/haproxy.pid")" 2>/dev/null || true; sleep 0.5; }
    {
        printf 'global\n    maxconn 4000\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 20s\n    timeout server 15s\n    retries 0\n'
        printf 'frontend public\n    bind 127.0.0.1:%s\n    default_backend gateways\n' "$haproxy_port"
        printf 'backend gateways\n    balance leastconn\n    option httpchk GET /readyz\n    http-check expect status 200\n'
        for index in $(seq 1 "$replicas"); do
            printf '    server replica%s 127.0.0.1:%s check port %s inter 500ms fall 1 rise 1\n' "$index" "${http_ports[$index]}" "${admin_ports[$index]}"
        done
    } > "$scratch/haproxy.cfg"
    haproxy -f "$scratch/haproxy.cfg" -D -p "$scratch/haproxy.pid"
    sleep 1
}
url="http://127.0.0.1:$haproxy_port/ussd/africastalking/$token"

# The processes of each tier, for the CPU per hop.
pidfile_list() { local f out=""; for f in "$@"; do [ -f "$f" ] && out+="$(cat "$f"),"; done; echo "${out%,}"; }
tiers() {
    local gateways="" index
    for index in 1 2 3; do gateways+="${replica_pids[$index]},"; done
    echo "gateways=${gateways%,}" \
        "haproxy=$(pidfile_list "$scratch/haproxy.pid")" \
        $(redis_tiers) \
        "postgres=$(head -1 "$scratch/postgres/data/postmaster.pid")"
}

# One Redis; or a cluster's primaries and replicas as two tiers (roles as they are right now).
redis_tiers() {
    if [ "$REDIS_MODE" != cluster ]; then echo "redis=$(pidfile_list "$scratch/redis/redis.pid")"; return; fi
    local node primaries="" replicas=""
    for node in "$scratch"/redis-cluster/node*; do
        [ -f "$node/redis.pid" ] || continue
        if redis-cli -p "$(cat "$node/port")" role 2>/dev/null | head -1 | grep -q master; then
            primaries+="$(cat "$node/redis.pid"),"
        else
            replicas+="$(cat "$node/redis.pid"),"
        fi
    done
    echo "redis-primaries=${primaries%,} redis-replicas=${replicas%,}"
}
commits() { "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U ussd -d postgres -tAc "SELECT sum(xact_commit) FROM pg_stat_database"; }

# One phase of handsets: their figures, each tier's CPU per hop, and Postgres commits per second.
phase() {
    local seconds=$1 journeys=$2 before after hops elapsed
    # shellcheck disable=SC2046
    python3 scripts/tier-cpu.py snapshot "$scratch/cpu.before" $(tiers)
    before=$(commits)
    "$bench" handsets --url "$url" --concurrency "$CONCURRENCY" --seconds "$seconds" --customers "$CUSTOMERS" --journeys "$journeys" 2>&1 \
        | grep -v 'applied migration' | tee "$scratch/phase.out"
    after=$(commits)
    # shellcheck disable=SC2046
    python3 scripts/tier-cpu.py snapshot "$scratch/cpu.after" $(tiers)
    read -r hops elapsed < <(sed -nE 's/.*: ([0-9]+) requests in ([0-9.]+) s.*/\1 \2/p' "$scratch/phase.out" | head -1)
    python3 scripts/tier-cpu.py per-hop "$scratch/cpu.before" "$scratch/cpu.after" "$hops" "$elapsed"
    python3 -c "import sys; c, s = int(sys.argv[1]), float(sys.argv[2]); print('  postgres commits: %d in %.1f s = %.0f/s (every database; the gateways\' own included)' % (c, s, c / s))" \
        "$((after - before))" "$elapsed"
}

echo "== machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ); $CONCURRENCY handsets, $CUSTOMERS customers; Redis: $REDIS_MODE"
for replicas in 1 2 3; do
    start_haproxy "$replicas"
    echo "== $replicas replica(s) behind haproxy, ${SECONDS_PER_SIZE}s: gateway-bench handsets --concurrency $CONCURRENCY --seconds $SECONDS_PER_SIZE --journeys mixed"
    phase "$SECONDS_PER_SIZE" mixed
done
# What one replica carries by journey: menu hops, balance journeys, send-money journeys.
start_haproxy 1
for journeys in menu balance send; do
    echo "== 1 replica, ${SECONDS_PER_JOURNEY}s of $journeys journeys only: gateway-bench handsets --journeys $journeys"
    phase "$SECONDS_PER_JOURNEY" "$journeys"
done

start_haproxy 3
outcomes="$scratch/outcomes.jsonl"
if [ "$REDIS_MODE" = cluster ]; then redis_fault="a Redis primary SIGKILLed (its replica promoted) and started again"; else redis_fault="Redis restarted"; fi
echo "== faults, 3 replicas, ${FAULT_SECONDS}s: replica 2 SIGKILLed and restarted at 1/4, $redis_fault at 1/2, Postgres crashed and restarted at 3/4"
"$bench" handsets --url "$url" --concurrency "$CONCURRENCY" --seconds "$FAULT_SECONDS" --customers "$CUSTOMERS" --outcomes "$outcomes" > "$scratch/faults.out" 2>&1 &
load=$!
quarter=$((FAULT_SECONDS / 4))
# Each fault's time, for the alerts' report.
fault() { echo "$(date +%s.%N) $1" >> "$scratch/faults.txt"; }
sleep "$quarter"
fault replica; log "SIGKILL replica 2"; kill -9 "${replica_pids[2]}"; sleep 5; start_replica 2; log "replica 2 back"
sleep "$quarter"
if [ "$REDIS_MODE" = cluster ]; then
    # The primary of slot 0, killed as a crash would; the cluster promotes its replica after the
    # node timeout (1 s), then the old primary comes back and rejoins as a replica.
    victim=""
    for node in "$scratch"/redis-cluster/node*; do
        if redis-cli -p "$(cat "$node/port")" cluster nodes | grep -q 'myself,master.* 0-'; then victim=$node; fi
    done
    fault redis; log "SIGKILL the Redis primary on :$(cat "$victim/port")"; kill -9 "$(cat "$victim/redis.pid")"
    for _ in $(seq 1 100); do
        other=$(ls -d "$scratch"/redis-cluster/node* | grep -v "^$victim\$" | head -1)
        redis-cli -p "$(cat "$other/port")" cluster info | grep -q cluster_state:ok \
            && redis-cli -p "$(cat "$other/port")" cluster nodes | grep -v fail | grep -q 'master.* 0-' && break
        sleep 0.1
    done
    log "a replica serves its slots"
    rm -f "$victim/redis.pid"; bash scripts/services.sh start-redis "$victim" "$(cat "$victim/port")"; log "the old primary is back as a replica"
else
    fault redis; log "restarting Redis (down 6 s)"; bash scripts/services.sh stop-redis "$scratch/redis"; sleep 6; bash scripts/services.sh start-redis "$scratch/redis" "$redis_port"; log "Redis back"
fi
sleep "$quarter"
fault postgres; log "crashing Postgres (down 6 s)"; bash scripts/services.sh crash-postgres "$scratch/postgres"; sleep 6
bash scripts/services.sh start-postgres "$scratch/postgres" "$pg_port"; log "Postgres back"
wait "$load" || { cat "$scratch/faults.out" >&2; exit 1; }
grep -v 'applied migration' "$scratch/faults.out"
# Let work finishing after its hop (late actions, the outbox) settle before the audit.
sleep 5

echo "== audit"
python3 - "$outcomes" "$pg_bin/psql" "$pg_port" <<'PY'
import json, subprocess, sys
outcomes, psql, port = sys.argv[1], sys.argv[2], sys.argv[3]
def query(sql):
    return subprocess.run([psql, "-h", "127.0.0.1", "-p", port, "-U", "ussd", "-d", "scale_bench", "-tAc", sql], check=True, capture_output=True, text=True).stdout.strip()
told = [json.loads(line) for line in open(outcomes) if line.strip()]
keys = {o["key"]: o for o in told}
# This run's sessions share one prefix (ussd:h<run>-...): the throughput phases' transfers are not its.
prefix = told[0]["key"].split("-")[0] + "-" if told else "none"
transfers = set(query("SELECT id FROM transfers WHERE id LIKE '%s%%'" % prefix).split())
checks = {
    "sum of all balances": (int(query("SELECT coalesce(sum(balance), 0) FROM account_balances")), 0),
    "customer balances below zero": (int(query("SELECT count(*) FROM account_balances WHERE customer_id IS NOT NULL AND balance < 0")), 0),
    # One journey (USSD session) asks for one send; its key is the primary key, so a send applied
    # twice would be two transfers of one session.
    "journeys with more than one transfer": (int(query("SELECT count(*) FROM (SELECT split_part(id, ':', 2) FROM transfers WHERE id LIKE 'ussd:%' GROUP BY 1 HAVING count(*) > 1) t")), 0),
    "handsets told Sent without their transfer": (sum(1 for o in told if o["told"] == "sent" and o["key"] not in transfers), 0),
    "handsets refused with a transfer": (sum(1 for o in told if o["told"] == "refused" and o["key"] in transfers), 0),
    "transfers no handset of the run asked for": (len([k for k in transfers if k not in keys]), 0),
}
print("handsets told Sent: %d, refused: %d, no answer or 'went wrong': %d (%d of those moved money, as a retried hop would find)" % (
    sum(o["told"] == "sent" for o in told), sum(o["told"] == "refused" for o in told), sum(o["told"] == "unknown" for o in told),
    sum(1 for o in told if o["told"] == "unknown" and o["key"] in transfers)))
failed = False
for name, (value, expected) in checks.items():
    ok = expected is None or value == expected
    failed |= not ok
    print("%-45s %6d %s" % (name, value, "ok" if ok else "FAILED"))
sys.exit(1 if failed else 0)
PY

echo "== alerts (Prometheus with the shipped rules, each replica scraped every second)"
sleep 3
python3 scripts/scale-monitor.py report "$scratch/alerts.jsonl" "$scratch/faults.txt"
# MONITORING_PICTURE=docs/monitoring.png: the dashboard's main panels drawn from this run's series
# (the README's picture), with matplotlib from PyPI in .build/monitoring-tools.
if [ -n "${MONITORING_PICTURE:-}" ]; then
    [ -x .build/monitoring-tools/bin/python ] || { python3 -m venv .build/monitoring-tools && .build/monitoring-tools/bin/pip install -q matplotlib==3.9.2; }
    .build/monitoring-tools/bin/python scripts/scale-monitor.py picture "$prom_url" "$run_start" "$(date +%s)" "$MONITORING_PICTURE" "$scratch/faults.txt" "$scratch/alerts.jsonl"
fi
