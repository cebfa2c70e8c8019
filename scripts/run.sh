#!/usr/bin/env bash
# `make run`: local Redis and Postgres under .data/ on non-default ports, migrate, then serve.
# Ctrl-C stops the gateway; `make stop` stops Redis and Postgres.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v swift >/dev/null || { echo "run: Swift is not on PATH (https://www.swift.org/install/linux/)" >&2; exit 1; }

REDIS_PORT=${REDIS_PORT:-6380}
PG_PORT=${PG_PORT:-5433}
mkdir -p .data
bash scripts/services.sh start-redis .data/redis "$REDIS_PORT"
bash scripts/services.sh start-postgres .data/postgres "$PG_PORT"

export ENVIRONMENT=${ENVIRONMENT:-development}
export HTTP_HOST=${HTTP_HOST:-127.0.0.1}
export HTTP_PORT=${HTTP_PORT:-8080}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
export DATABASE_URL=${DATABASE_URL:-postgres://ussd@127.0.0.1:$PG_PORT/ussd}
export LOG_LEVEL=${LOG_LEVEL:-info}

swift build --product ussd-gateway
bin="$(swift build --show-bin-path)/ussd-gateway"
"$bin" migrate
echo "run: serving on http://$HTTP_HOST:$HTTP_PORT, the browser phone at http://$HTTP_HOST:$HTTP_PORT/simulator (Redis :$REDIS_PORT, Postgres :$PG_PORT; Ctrl-C stops, make stop stops the servers)" >&2
exec "$bin" serve
