#!/usr/bin/env bash
# `make backup`: pgBackRest backups of `make run`'s Postgres (.data/postgres) into a repository under
# .data/backup (scripts/pgbackrest.sh says how to point it at S3-compatible storage). The first run
# switches WAL archiving on (restarting that Postgres) and takes a full backup; each later run a
# differential one, while the WAL between them is archived continuously. Restoring:
# docs/runbooks/restore-point-in-time.md; `make restore-test` proves it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pgbackrest.sh
source scripts/pgbackrest.sh

PG_PORT=${PG_PORT:-5433}
bash scripts/services.sh install
pgbackrest_install
bash scripts/services.sh start-postgres .data/postgres "$PG_PORT"
pgbackrest_configure .data/backup .data/postgres "$PG_PORT"
if pgbr info --output=json | python3 -c "import json, sys; sys.exit(0 if any(s.get('backup') for s in json.load(sys.stdin)) else 1)"; then
    pgbr backup --type=diff
else
    pgbr backup --type=full
fi
pgbr info
