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
# The schema's owner (the `ussd` login initdb made) migrates, creating the group roles; the
# gateway serves as a login of its own in ussd_app, as in production. Staff logins for trying the
# desk: ops_amina asks (ussd_operator), ops_baraka and ops_chebet approve (ussd_approver).
"$bin" migrate
owner_url=$DATABASE_URL
for login in ussd_gateway:ussd_app ussd_audit:ussd_report ops_amina:ussd_operator ops_baraka:ussd_approver ops_chebet:ussd_approver ussd_desk_web:ussd_desk; do
    "$bin" db login "${login%%:*}" --role "${login#*:}" >/dev/null
done
# The staff desk (http://127.0.0.1:8081/desk): a development administrator, its sign-in printed
# once, the first time. Its desk login switches to each person's role (SET LOCAL ROLE).
if ! "$bin" staff list 2>/dev/null | grep -q '^desk_admin'; then
    echo "run: the staff desk's development administrator (sign in at http://$HTTP_HOST:${ADMIN_PORT:-8081}/desk as desk_admin; shown once, lost: $bin staff reset desk_admin):" >&2
    "$bin" staff create desk_admin --admin --name "Desk administrator" >&2
fi
if [ "$DATABASE_URL" = "postgres://ussd@127.0.0.1:$PG_PORT/ussd" ]; then
    export DATABASE_URL="postgres://ussd_gateway@127.0.0.1:$PG_PORT/ussd"
    # The key store `migrate` made beside the ledger (personal data, PRIVACY.md), as the gateway's login.
    export PERSONAL_DATA_KEYS_URL=${PERSONAL_DATA_KEYS_URL:-postgres://ussd_gateway@127.0.0.1:$PG_PORT/ussd_keys}
fi
export DESK=${DESK:-on}
export ADMIN_PORT=${ADMIN_PORT:-8081}
export DESK_DATABASE_URL=${DESK_DATABASE_URL:-postgres://ussd_desk_web@127.0.0.1:$PG_PORT/ussd}
echo "run: the staff desk at http://$HTTP_HOST:$ADMIN_PORT/desk (readiness and metrics there too); more staff: DATABASE_URL=$owner_url $bin staff create NAME --role support --name 'Full Name'" >&2
echo "run: the gateway logs in as ussd_gateway (ussd_app); the owner ($owner_url) is for migrate. Staff: DATABASE_URL=postgres://ops_amina@127.0.0.1:$PG_PORT/ussd $bin customer reset-pin 0712345678 --reason '...'" >&2
echo "run: the morning report by mail: ENVIRONMENT=development DATABASE_URL=postgres://ussd_audit@127.0.0.1:$PG_PORT/ussd $bin report daily --email; it lands at http://$HTTP_HOST:$HTTP_PORT/sandbox/mail (SMTP on 127.0.0.1:${SANDBOX_SMTP_PORT:-2525}, unless REPORT_SMTP_URL is set)" >&2
echo "run: serving on http://$HTTP_HOST:$HTTP_PORT, the browser phone at http://$HTTP_HOST:$HTTP_PORT/simulator (Redis :$REDIS_PORT, Postgres :$PG_PORT; Ctrl-C stops, make stop stops the servers)" >&2
exec "$bin" serve
