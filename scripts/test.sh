#!/usr/bin/env bash
# `make test`: throwaway Redis and Postgres in a temporary directory on free ports, the whole
# suite against them, and the servers stopped afterwards even when tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v swift >/dev/null || { echo "test: Swift is not on PATH" >&2; exit 1; }

scratch=$(mktemp -d /tmp/ussd-gateway-test.XXXXXX)
chmod 755 "$scratch"
cleanup() {
    bash scripts/services.sh stop-all "$scratch" || true
    rm -rf "$scratch"
}
trap cleanup EXIT INT TERM

# The module graph in ARCHITECTURE.md is Package.swift's; no module imports one it does not declare, or declares one it does not import.
python3 scripts/architecture.py --check
# No file under Sources/ over 400 lines (a ratchet for the ones still being split).
python3 scripts/sizes.py --check
# deploy/ is valid (so CI, which runs this script, checks it too).
bash scripts/deploy-check.sh

# The browser phone's test needs headless Chromium; without it that one test is skipped, visibly.
bash scripts/services.sh install-browser || true

bash scripts/services.sh start-redis "$scratch/redis" auto
redis_port=$(cat "$scratch/redis/port")
# Throwaway data: durability off makes the many small test databases fast to create.
PG_EXTRA_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    bash scripts/services.sh start-postgres "$scratch/postgres" auto
pg_port=$(cat "$scratch/postgres/port")

# A Redis Cluster of three primaries and three replicas: the cluster tests, then the session
# suites a second time with every Redis key on it.
bash scripts/services.sh start-redis-cluster "$scratch/redis-cluster"
# A Redis that speaks only TLS, with a password and a test CA: the TLS tests, then the session
# suites a third time over it.
bash scripts/services.sh start-redis-tls "$scratch/redis-tls"

export REDIS_URL="redis://127.0.0.1:$redis_port/0"
export REDIS_CLUSTER_URL=$(cat "$scratch/redis-cluster/url")
export DATABASE_URL="postgres://ussd@127.0.0.1:$pg_port/ussd"
# The CA is trusted only by rediss:// URLs: the plain REDIS_URL ignores it.
export REDIS_TLS_URL=$(cat "$scratch/redis-tls/url")
export REDIS_CA_FILE="$scratch/redis-tls/ca.pem"
# The development gateways the tests start keep the sandbox's mail on a free port each, never on
# 2525, where a `make run` on this machine may listen (ReportMailTests picks its own).
export SANDBOX_SMTP_PORT=0
echo "test: Redis on :$redis_port, Redis Cluster at ${REDIS_CLUSTER_URL#redis+cluster://}, TLS Redis on :$(cat "$scratch/redis-tls/port"), Postgres on :$pg_port" >&2

# Whatever the build and the tests leave in the temporary directory (the compiler's scratch files,
# child output, private servers' files) goes with the scratch directory.
mkdir -p "$scratch/tmp"
chmod 755 "$scratch/tmp"
export TMPDIR="$scratch/tmp"

swift build --build-tests
# Every suite that keeps state in Redis: sessions, resume, rate limits, replicas, health, the client.
CLUSTER_SUITES='RedisClientTests|USSDSessionTests|DialectJourneyTests|USSDJourneyTests|USSDReplicaTests|HostileInputTests|SMSTests|HealthRoutesTests|SandboxTests'
set +e
# At most TEST_PARALLELISM tests at once (default 8). Unbounded, all 170-odd start together on two
# cores: the gateway's cooperative threads then back up for seconds, and tests whose fakes must
# answer within a client timeout fail for want of CPU, not for a fault.
swift test --skip-build --experimental-maximum-parallelization-width "${TEST_PARALLELISM:-8}" "$@" 2>&1 | tee "$scratch/test-output.log"
status=${PIPESTATUS[0]}
# The same session suites on Redis Cluster and on the TLS-only Redis as on one Redis (skipped when
# arguments pick tests).
if [ "$#" -eq 0 ]; then
    echo "test: the session suites again, with REDIS_URL on the Redis Cluster" >&2
    REDIS_URL=$REDIS_CLUSTER_URL swift test --skip-build --experimental-maximum-parallelization-width "${TEST_PARALLELISM:-8}" \
        --filter "$CLUSTER_SUITES" 2>&1 | tee -a "$scratch/test-output.log"
    cluster_status=${PIPESTATUS[0]}
    [ "$status" -ne 0 ] || status=$cluster_status
    echo "test: the session suites again, with REDIS_URL on the TLS-only Redis" >&2
    REDIS_URL=$REDIS_TLS_URL swift test --skip-build --experimental-maximum-parallelization-width "${TEST_PARALLELISM:-8}" \
        --filter "$CLUSTER_SUITES" 2>&1 | tee -a "$scratch/test-output.log"
    tls_status=${PIPESTATUS[0]}
    [ "$status" -ne 0 ] || status=$tls_status
fi
set -e

# The PINs the USSD tests type (Tests/USSDGatewayTests/USSDSupport.swift, TypedPINs) must not
# appear anywhere in the run's output, which holds every log line the gateway wrote to stderr.
if grep -nE '(^|[^0-9A-Za-z.,:])(3857|9146|2739|6152)([^0-9A-Za-z.,:]|$)' "$scratch/test-output.log"; then
    echo "test: a PIN typed in the tests reached the output above" >&2
    exit 1
fi
exit "$status"
