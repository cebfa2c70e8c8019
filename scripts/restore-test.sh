#!/usr/bin/env bash
# `make restore-test`: continuous backups with pgBackRest (Debian's package), proven by restoring.
#
# One Postgres with WAL archiving to a pgBackRest repository on a local path (archive_timeout 5 s),
# a full backup, the gateway (release build) under simulated handsets (`gateway-bench handsets`)
# with a differential backup taken mid-load, then the primary lost mid-load: stopped as a crash would
# and its data directory removed. Then:
#   1. a restore to the end of the archive: every send a handset was told "Sent" for that committed
#      before the last archived WAL segment is there; the ledger audit is clean; the RPO printed is
#      what the archive still lacked when the primary was lost (time since the last archived
#      segment, and WAL bytes);
#   2. a point-in-time restore to a commit timestamp between two commits, into a fresh data
#      directory: exactly the transfers committed up to it are there (none after), the audit is
#      clean, and the RTO printed runs from the start of the restore to the first answered journey.
# Exit 1 when any check fails. Not part of `make test` (like `make scale-test`).
set -euo pipefail
cd "$(dirname "$0")/.."

LOAD_SECONDS=${LOAD_SECONDS:-40}
CONCURRENCY=${CONCURRENCY:-32}
CUSTOMERS=${CUSTOMERS:-500}

log() { printf '%s\n' "restore-test: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# shellcheck source=scripts/pgbackrest.sh
source scripts/pgbackrest.sh

bash scripts/services.sh install
pgbackrest_install
swift build -c release --product ussd-gateway >&2
swift build -c release --product gateway-bench >&2
bin="$(swift build -c release --show-bin-path)/ussd-gateway"
bench="$(swift build -c release --show-bin-path)/gateway-bench"

scratch=$(mktemp -d /tmp/ussd-gateway-restore.XXXXXX)
chmod 755 "$scratch"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    bash scripts/services.sh stop-all "$scratch" || true
    for dir in "$scratch"/restored-*; do [ -d "$dir" ] && bash scripts/services.sh stop-postgres "$dir"; done
    rm -rf "$scratch"
}
trap cleanup EXIT INT TERM

bash scripts/services.sh start-redis "$scratch/redis" auto
redis_url="redis://127.0.0.1:$(cat "$scratch/redis/port")/0"
bash scripts/services.sh start-postgres "$scratch/postgres" auto
pg_port=$(cat "$scratch/postgres/port")
pg_bin=$(bash scripts/services.sh pg-bindir)
psql_at() { "$pg_bin/psql" -h 127.0.0.1 -p "$1" -U ussd -d "$2" -v ON_ERROR_STOP=1 -tAc "$3"; }

# WAL archived to a repository on a local path, commit timestamps tracked, the stanza checked.
pgbackrest_configure "$scratch/backup" "$scratch/postgres" "$pg_port"

token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ENVIRONMENT=production AT_CALLBACK_TOKEN="$token" PIN_KEY="1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export REDIS_URL="$redis_url" LOG_LEVEL=warning USSD_RATE_LIMIT_PER_MINUTE=0 RESUME_WINDOW_SECONDS=0 MENUS_PATH="$PWD/menus.json"
psql_at "$pg_port" postgres "CREATE DATABASE restore_bench" >/dev/null
export DATABASE_URL="postgres://ussd@127.0.0.1:$pg_port/restore_bench"
# The personal-data key and the key store (made and migrated by `migrate`, as the owner).
export PERSONAL_DATA_KEY="1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PERSONAL_DATA_KEYS_URL="postgres://ussd@127.0.0.1:$pg_port/restore_bench_keys"
"$bin" migrate 2>/dev/null
"$bench" seed --customers "$CUSTOMERS" 2>&1 | grep -v 'applied migration' >&2
"$bin" db login restore_gateway --role ussd_app >/dev/null

log "full backup"
pgbr backup --type=full

free_port() { bash scripts/services.sh free-port; }
# Serves on the database at port $1; its HTTP port in $http once ready.
http=""
serve() {
    local port admin
    port=$1 http=$(free_port) admin=$(free_port)
    while [ "$admin" = "$http" ]; do admin=$(free_port); done
    DATABASE_URL="postgres://restore_gateway@127.0.0.1:$port/restore_bench" HTTP_PORT=$http ADMIN_PORT=$admin \
    PERSONAL_DATA_KEYS_URL="postgres://restore_gateway@127.0.0.1:$port/restore_bench_keys" \
        "$bin" serve >>"$scratch/gateway-$port.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$admin/readyz" 2>/dev/null && return 0
        sleep 0.1
    done
    log "the gateway on :$port never became ready"; cat "$scratch/gateway-$port.log" >&2; exit 1
}
serve "$pg_port"
url="http://127.0.0.1:$http/ussd/africastalking/$token"

outcomes="$scratch/outcomes.jsonl"
echo "== ${LOAD_SECONDS}s of handsets (send and balance journeys), a differential backup at 1/3, the primary lost at 2/3"
"$bench" handsets --url "$url" --concurrency "$CONCURRENCY" --seconds "$LOAD_SECONDS" --customers "$CUSTOMERS" --outcomes "$outcomes" \
    > "$scratch/load.out" 2>&1 &
load=$!
sleep $((LOAD_SECONDS / 3))
log "differential backup under load"
pgbr backup --type=diff
sleep $((LOAD_SECONDS / 3 - 2))
# What the archive holds at the moment of loss, then the loss: a crash, and the disk gone.
read -r lost_lsn last_archived_wal last_archived_age < <(psql_at "$pg_port" postgres \
    "SELECT pg_current_wal_lsn(), coalesce(last_archived_wal, '-'), coalesce(extract(epoch FROM now() - last_archived_time), -1) FROM pg_stat_archiver" | tr '|' ' ')
log "the primary is lost (crash, data directory removed) at $lost_lsn; last archived segment $last_archived_wal, ${last_archived_age}s before"
bash scripts/services.sh crash-postgres "$scratch/postgres"
rm -rf "$scratch/postgres/data"
wait "$load" || true
grep -v 'applied migration' "$scratch/load.out" || true
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
pids=()

# Restores into a new data directory with pgBackRest's own options ("$@"), starts it without
# archiving (it must not write into the lost primary's stanza), waits for it to be promoted.
restored_port=""
restore() {
    local dir=$1; shift
    mkdir -p "$dir/data"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; fi
    chmod 700 "$dir/data"
    pgbr --pg1-path="$dir/data" "$@" restore
    echo "archive_mode = 'off'" | as_pg tee -a "$dir/data/postgresql.auto.conf" >/dev/null
    bash scripts/services.sh start-postgres "$dir" auto
    restored_port=$(cat "$dir/port")
    for _ in $(seq 1 600); do
        [ "$(psql_at "$restored_port" postgres "SELECT pg_is_in_recovery()" 2>/dev/null)" = "f" ] && return 0
        sleep 0.1
    done
    log "the restored Postgres in $dir was never promoted"; tail -20 "$dir/data/server.log" >&2; exit 1
}

failed=0
check() {
    local name=$1 value=$2 expected=$3
    if [ "$value" = "$expected" ]; then printf '%-62s %8s ok\n' "$name" "$value"; else printf '%-62s %8s FAILED (want %s)\n' "$name" "$value" "$expected"; failed=1; fi
}
# The ledger audit on a restored ledger: every check passes, except that the benchmark seed's
# funding transfers (bench-fund-*, written by hand as the schema's owner) name no cause, as the
# audit says they should; any other transfer without one fails it.
audit() {
    DATABASE_URL="postgres://ussd@127.0.0.1:$1/restore_bench" "$bin" ledger audit --json > "$scratch/audit-$1.json" 2>"$scratch/audit-$1.err" || true
    local others
    others=$(psql_at "$1" restore_bench "SELECT count(*) FROM transfers WHERE cause IS NULL AND id NOT LIKE 'bench-fund-%'")
    python3 - "$scratch/audit-$1.json" "$others" <<'PY'
import json, sys
audit = json.load(open(sys.argv[1]))
failed = [c["name"] for c in audit["checks"] if not c["passed"] and c["name"] != "every transfer names its cause"]
if int(sys.argv[2]) > 0:
    failed.append("%s transfers besides the seed's name no cause" % sys.argv[2])
print("clean" if not failed else "FAILED: " + "; ".join(failed))
PY
}

echo "== 1. restore to the end of the archive"
restore "$scratch/restored-end" --type=default
end_port=$restored_port
# Every transfer with its commit time (group commit: up to 64 share one).
psql_at "$end_port" restore_bench "SELECT id, to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM transfers WHERE pg_xact_commit_timestamp(xmin) IS NOT NULL" \
    > "$scratch/end.transfers"
# The sends handsets were told "Sent" for, and how many of them the restored ledger has: those it
# lacks committed after the last archived WAL (the RPO below), never before it.
read -r told_sent present < <(python3 - "$outcomes" "$scratch/end.transfers" <<'PY'
import json, sys
told = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
sent = {o["key"] for o in told if o["told"] == "sent"}
committed = {line.split("|")[0] for line in open(sys.argv[2]).read().split("\n") if line}
print(len(sent), sum(1 for key in sent if key in committed))
PY
)
lost_after_archive=$((told_sent - present))
echo "handsets told Sent: $told_sent; their transfers in the restored ledger: $present; not archived when the primary was lost: $lost_after_archive"
check "ledger audit of the restored ledger" "$(audit "$end_port")" clean
rpo_bytes=$(python3 - "$lost_lsn" "$last_archived_wal" <<'PY'
import sys
lsn, wal = sys.argv[1], sys.argv[2]
high, low = lsn.split("/")
position = (int(high, 16) << 32) + int(low, 16)
if wal == "-":
    print(position); sys.exit()
log, segment = int(wal[8:16], 16), int(wal[16:24], 16)
archived_end = (log << 32) + (segment + 1) * (16 << 20)
print(max(0, position - archived_end))
PY
)
echo "RPO: the archive lacked ${last_archived_age}s of WAL ($rpo_bytes bytes past the last archived segment) when the primary was lost; archive_timeout bounds it at 5 s"

echo "== 2. point-in-time restore to a commit between two others"
# A commit in the middle of the run: all transfers committed at or before it, none after.
target=$(python3 - "$scratch/end.transfers" <<'PY'
import sys
stamps = sorted({line.split("|")[1] for line in open(sys.argv[1]).read().split("\n") if line})
print(stamps[len(stamps) // 2] if len(stamps) > 2 else "")
PY
)
[ -n "$target" ] || { log "too few commits to choose a target"; exit 1; }
awk -F'|' -v t="$target" '$2 <= t { print $1 }' "$scratch/end.transfers" | sort > "$scratch/expected.before"
awk -F'|' -v t="$target" '$2 > t { print $1 }' "$scratch/end.transfers" | sort > "$scratch/expected.after"
log "target: the commit at $target UTC ($(wc -l < "$scratch/expected.before") transfers at or before it, $(wc -l < "$scratch/expected.after") after)"
bash scripts/services.sh stop-postgres "$scratch/restored-end"
started=$(date +%s.%N)
restore "$scratch/restored-pitr" --type=time "--target=$target+00" --target-action=promote
pitr_port=$restored_port
psql_at "$pitr_port" restore_bench "SELECT id FROM transfers" | sort > "$scratch/restored.ids"
check "transfers committed at or before the target, missing" "$(comm -23 "$scratch/expected.before" "$scratch/restored.ids" | wc -l)" 0
check "transfers committed after the target, present" "$(comm -12 "$scratch/expected.after" "$scratch/restored.ids" | wc -l)" 0
check "transfers in the restore that the full replay does not have" "$(comm -13 <(cat "$scratch/expected.before" "$scratch/expected.after" | sort) "$scratch/restored.ids" | wc -l)" 0
check "ledger audit of the point-in-time restore" "$(audit "$pitr_port")" clean
# RTO: the first journey answered by a gateway on the restored ledger.
serve "$pitr_port"
phone="+$(psql_at "$pitr_port" restore_bench "SELECT msisdn FROM customers WHERE msisdn LIKE '2547%' ORDER BY id LIMIT 1")"
session="restore-$(date +%s%N)"
answer=""
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$http/ussd/africastalking/$token" --data-urlencode "sessionId=$session" \
        --data-urlencode "phoneNumber=$phone" --data-urlencode "serviceCode=*384*96*1#" --data-urlencode "text=" --data-urlencode "networkCode=63902" \
        && answer=$(curl -fsS "http://127.0.0.1:$http/ussd/africastalking/$token" --data-urlencode "sessionId=$session" \
            --data-urlencode "phoneNumber=$phone" --data-urlencode "serviceCode=*384*96*1#" --data-urlencode "text=4826" --data-urlencode "networkCode=63902") \
        && break
    sleep 0.1
done
answered=$(date +%s.%N)
check "first journey on the restored ledger answers its balance" "$([[ "$answer" == "END Balance"* ]] && echo yes || echo "no: $answer")" yes
python3 -c "import sys; print('RTO: %.1f s from the start of the restore to the first answered journey' % (float(sys.argv[2]) - float(sys.argv[1])))" "$started" "$answered"
exit "$failed"
