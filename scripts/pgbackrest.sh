#!/usr/bin/env bash
# pgBackRest (Debian's package) for a Postgres that scripts/services.sh runs: sourced by
# scripts/backup.sh (`make backup`) and scripts/restore-test.sh.
#
#   pgbackrest_install                       install pgbackrest when missing
#   pgbackrest_configure BACKUP PGDIR PORT   a repository on a local path under BACKUP, its config
#                                            BACKUP/pgbackrest.conf for the Postgres in PGDIR on
#                                            PORT (stanza "ussd"); WAL archiving switched on (a
#                                            restart when it was off), commit timestamps tracked,
#                                            archive_timeout 5 s (bounds what a lost primary takes
#                                            with it); the stanza created and checked
#   pgbr ARGS...                             pgbackrest --config=... --stanza=ussd ARGS, as the
#                                            user Postgres runs as
# For S3-compatible storage instead of a local path, set repo1-type=s3, repo1-s3-bucket,
# repo1-s3-endpoint, repo1-s3-region, repo1-s3-key, repo1-s3-key-secret and repo1-path in the
# config's [global] section (docs/runbooks/restore-point-in-time.md).

# pgBackRest runs as the user Postgres runs as (services.sh: "postgres" when root), whose files it reads.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pgbackrest_install() {
    command -v pgbackrest >/dev/null && return 0
    printf '%s\n' "pgbackrest: installing Debian's pgbackrest" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbackrest >/dev/null
    else
        sudo apt-get update -qq && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbackrest >/dev/null
    fi
}

pgbackrest_conf=""
pgbackrest_configure() {
    local backup=$1 pgdir=$2 port=$3 bin
    backup=$(mkdir -p "$backup" && cd "$backup" && pwd)
    pgdir=$(cd "$pgdir" && pwd)
    pgbackrest_conf="$backup/pgbackrest.conf"
    mkdir -p "$backup/repo" "$backup/log" "$backup/lock" "$backup/spool"
    if [ ! -f "$pgbackrest_conf" ]; then
        cat > "$pgbackrest_conf" <<CONF
[global]
repo1-path=$backup/repo
repo1-retention-full=2
log-path=$backup/log
lock-path=$backup/lock
spool-path=$backup/spool
log-level-console=warn
start-fast=y

[ussd]
pg1-path=$pgdir/data
pg1-port=$port
pg1-socket-path=$pgdir
pg1-user=ussd
CONF
    fi
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$backup"; fi
    bin=$(bash scripts/services.sh pg-bindir)
    local psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U ussd -d postgres -v ON_ERROR_STOP=1 -tAq)
    if [ "$("${psql[@]}" -c "SHOW archive_mode")" != on ]; then
        printf '%s\n' "pgbackrest: WAL archiving on (archive_timeout 5 s, commit timestamps tracked), Postgres restarted" >&2
        "${psql[@]}" -c "ALTER SYSTEM SET archive_mode = 'on'"
        "${psql[@]}" -c "ALTER SYSTEM SET archive_command = 'pgbackrest --config=$pgbackrest_conf --stanza=ussd archive-push %p'"
        "${psql[@]}" -c "ALTER SYSTEM SET archive_timeout = '5s'"
        "${psql[@]}" -c "ALTER SYSTEM SET track_commit_timestamp = 'on'"
        bash scripts/services.sh stop-postgres "$pgdir"
        bash scripts/services.sh start-postgres "$pgdir" "$port"
    fi
    pgbr stanza-create
    pgbr check
}

pgbr() { as_pg pgbackrest --config="$pgbackrest_conf" --stanza=ussd "$@"; }
