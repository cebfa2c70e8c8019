#!/usr/bin/env bash
# Local Redis and Postgres for development and tests: never the system's servers.
#
#   services.sh install                      install missing Debian packages (apt-get, sudo when not root)
#   services.sh install-browser              install headless Chromium and chromedriver for the browser test
#                                            (best effort: exits 1 when they cannot be installed)
#   services.sh free-port                    print a free TCP port on 127.0.0.1
#   services.sh start-redis DIR PORT         start redis-server with its files in DIR
#   services.sh start-postgres DIR PORT      initdb DIR on first use, start postgres, create database "ussd"
#                                            PORT "auto": a free port, another one if the bind still
#                                            loses a race; either way the port is written to DIR/port
#   services.sh stop-redis DIR | stop-postgres DIR | stop-all DIR
#   services.sh crash-postgres DIR           stop Postgres as a crash would (immediate: WAL replay on start)
#   services.sh start-redis-cluster DIR      a Redis Cluster of three primaries and three replicas in DIR/node1..6
#                                            on free ports; DIR/url holds redis+cluster://host:port,...
#   services.sh stop-redis-cluster DIR
#   services.sh start-redis-tls DIR [mutual] a Redis that speaks only TLS, with a password, on a free port, its test CA
#                                            and server certificate (127.0.0.1, localhost) made with openssl in DIR;
#                                            DIR/url holds rediss://:password@127.0.0.1:PORT/0, DIR/ca.pem the CA to trust;
#                                            "mutual": clients must also present a certificate (DIR/client.pem, client.key)
#   services.sh stop-redis-tls DIR
#
# As root, Postgres runs as the unprivileged "postgres" user (created by Debian's package).
set -euo pipefail

# haproxy and openssl: Tests/USSDGatewayTests/EdgeProxyTests.swift runs deploy/haproxy.cfg with a certificate it makes.
# libp11-kit-dev: the PKCS#11 header; softhsm2: the token the PIN key tests make (Tests/TestSupport/SoftHSM.swift).
# prometheus: promtool checks and unit-tests deploy/monitoring's rules (make test, make deploy-check), and
# `make scale-test` runs a Prometheus that scrapes the replicas with those rules.
PACKAGES=(pkg-config libhiredis-dev libpq-dev libcurl4-openssl-dev libp11-kit-dev libqrencode-dev softhsm2 redis-server redis-tools postgresql postgresql-contrib haproxy openssl prometheus)

log() { printf '%s\n' "services: $*" >&2; }

REDIS_CLUSTER_OPTIONS="--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] || { log "no PostgreSQL server found under /usr/lib/postgresql (run: $0 install)"; exit 1; }
    printf '%s\n' "$dir"
}

install() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -eq 0 ]; then return 0; fi
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts the packaged servers as system services where it can; we never use them.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now redis-server postgresql haproxy prometheus >/dev/null 2>&1 || true
    fi
}

# Debian's chromium and chromium-driver, for the browser phone's test (Tests/USSDGatewayTests/
# BrowserPhoneTests.swift drives them through the WebDriver protocol). Not needed to serve.
install_browser() {
    local missing=()
    for package in chromium chromium-driver; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -eq 0 ]; then return 0; fi
    log "installing ${missing[*]} for the browser test"
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || {
        log "could not install ${missing[*]}: the browser test will be skipped"
        return 1
    }
}

# Ports in use in any state (listening, connected, TIME_WAIT), from the kernel's tables. Read by
# awk in one pass: bash's `read` takes a /proc file a byte at a time, and the kernel rebuilds the
# table for each read, which cost seconds of CPU while the test suite held thousands of sockets.
ports_in_use() {
    awk 'FNR > 1 {
        split($2, address, ":"); hex = toupper(address[2]); port = 0
        for (i = 1; i <= length(hex); i++) port = port * 16 + index("0123456789ABCDEF", substr(hex, i, 1)) - 1
        print port
    }' /proc/net/tcp /proc/net/tcp6 2>/dev/null || true
}

# A port below the kernel's ephemeral range (outgoing connections take their local ports from
# there, and a port one of them holds cannot be bound), not in use, and refusing connections.
free_port() {
    local low=32768 port used
    if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then read -r low _ < /proc/sys/net/ipv4/ip_local_port_range; fi
    [ "$low" -gt 11000 ] || low=61000
    used=" $(ports_in_use | tr '\n' ' ') "
    for _ in $(seq 1 200); do
        port=$(( (RANDOM % (low - 10000)) + 10000 ))
        case "$used" in *" $port "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    log "no free port found"
    exit 1
}

wait_for_port() {
    local port=$1 what=$2
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$what did not start listening on port $port"
    return 1
}

start_redis() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
        log "redis already running (pid $(cat "$dir/redis.pid"))"
        return 0
    fi
    # A cluster node keeps its identity in nodes.conf: started again, it rejoins its cluster.
    local extra=${REDIS_EXTRA_OPTIONS:-}
    if [ -f "$dir/nodes.conf" ]; then extra="$REDIS_CLUSTER_OPTIONS"; fi
    # A restart on the same port can race the old server's exit: try again while the port is taken.
    # With "auto", a port someone took between our look and the bind is traded for another.
    local attempt chosen=$port
    for attempt in 1 2 3 4 5; do
        if [ "$port" = auto ]; then chosen=$(free_port); fi
        # Only this attempt's lines of the log count (earlier runs' lines are kept).
        local seen=0
        if [ -f "$dir/redis.log" ]; then seen=$(wc -l < "$dir/redis.log"); fi
        redis-server --bind 127.0.0.1 --port "$chosen" --dir "$dir" --pidfile "$dir/redis.pid" \
            --logfile "$dir/redis.log" --daemonize yes --save "" --appendonly no $extra </dev/null >/dev/null 2>&1
        if [ "$attempt" -lt 5 ] && sleep 0.2 && tail -n "+$((seen + 1))" "$dir/redis.log" 2>/dev/null | grep -q "Address already in use"; then
            log "redis: port $chosen is taken; trying again"
            [ "$port" = auto ] || sleep 1
            continue
        fi
        break
    done
    wait_for_port "$chosen" redis
    echo "$chosen" > "$dir/port"
}

stop_redis() {
    local dir=$1
    [ -f "$dir/redis.pid" ] || return 0
    local pid
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "redis (pid $pid) ignored SIGTERM; killing it"
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/redis.pid"
}

# Six cluster-enabled servers, then `redis-cli --cluster create` with one replica per primary, then
# a wait until every node says cluster_state:ok and every replica has synced. A short node timeout
# (1 s) lets a test see a failover in seconds.
start_redis_cluster() {
    local dir=$1 i ports=() nodes=()
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/url" ]; then
        log "redis cluster already set up in $dir"
        return 0
    fi
    for i in 1 2 3 4 5 6; do
        REDIS_EXTRA_OPTIONS="$REDIS_CLUSTER_OPTIONS" start_redis "$dir/node$i" auto
        ports+=("$(cat "$dir/node$i/port")")
        nodes+=("127.0.0.1:${ports[-1]}")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || {
        cat "$dir/create.log" >&2
        return 1
    }
    local port ready
    for _ in $(seq 1 200); do
        ready=1
        for port in "${ports[@]}"; do
            redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ready=0
            if redis-cli -p "$port" info replication 2>/dev/null | grep -q 'role:slave'; then
                redis-cli -p "$port" info replication | grep -q 'master_link_status:up' || ready=0
            fi
        done
        [ "$ready" = 1 ] && break
        sleep 0.1
    done
    [ "$ready" = 1 ] || { log "redis cluster in $dir did not become ready"; return 1; }
    local IFS=,
    echo "redis+cluster://${nodes[*]}" > "$dir/url"
}

stop_redis_cluster() {
    local dir=$1 node
    for node in "$dir"/node*; do
        if [ -d "$node" ]; then stop_redis "$node"; fi
    done
    rm -f "$dir/url"
}

# A throwaway certificate authority and a server certificate it signed, for 127.0.0.1 and localhost
# (subject alternative names; not ::1, so a test can reach the same server under a name the
# certificate does not hold). EC keys: quick to make. Valid for a week: a test run is shorter.
make_test_certificates() {
    local dir=$1
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 7 -subj "/CN=ussd-gateway test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>"$dir/openssl.log" || { cat "$dir/openssl.log" >&2; return 1; }
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>>"$dir/openssl.log" || { cat "$dir/openssl.log" >&2; return 1; }
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 7 \
        -extfile "$dir/server.ext" -out "$dir/server.pem" 2>>"$dir/openssl.log" || { cat "$dir/openssl.log" >&2; return 1; }
    # A client certificate from the same CA, for a server that asks for one.
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=ussd-gateway test client" \
        -keyout "$dir/client.key" -out "$dir/client.csr" 2>>"$dir/openssl.log" || { cat "$dir/openssl.log" >&2; return 1; }
    printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=clientAuth" > "$dir/client.ext"
    openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 7 \
        -extfile "$dir/client.ext" -out "$dir/client.pem" 2>>"$dir/openssl.log" || { cat "$dir/openssl.log" >&2; return 1; }
    # The server and the tests run as this user; only it reads the keys.
    chmod 600 "$dir/ca.key" "$dir/server.key" "$dir/client.key"
}

# Redis with its plain port closed (`--port 0`): TLS only, the certificates above, a password.
# Clients are not asked for certificates (`--tls-auth-clients no`): the password authenticates;
# with "mutual" they must present one the CA signed as well.
start_redis_tls() {
    local dir=$1 clients=no
    if [ "${2:-}" = mutual ]; then clients=yes; fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/url" ] && [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
        log "TLS redis already running in $dir"
        return 0
    fi
    [ -f "$dir/server.pem" ] || make_test_certificates "$dir"
    [ -f "$dir/password" ] || { openssl rand -hex 16 > "$dir/password"; chmod 600 "$dir/password"; }
    local password port attempt seen
    password=$(cat "$dir/password")
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        seen=0
        if [ -f "$dir/redis.log" ]; then seen=$(wc -l < "$dir/redis.log"); fi
        # The password goes in through the configuration on stdin, not the command line (ps shows that).
        printf 'requirepass %s\n' "$password" | redis-server - --bind 127.0.0.1 -::1 --port 0 --tls-port "$port" \
            --tls-cert-file "$dir/server.pem" --tls-key-file "$dir/server.key" --tls-ca-cert-file "$dir/ca.pem" \
            --tls-auth-clients "$clients" --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --daemonize yes \
            --save "" --appendonly no >/dev/null 2>&1
        if [ "$attempt" -lt 5 ] && sleep 0.2 && tail -n "+$((seen + 1))" "$dir/redis.log" 2>/dev/null | grep -q "Address already in use"; then
            log "redis (TLS): port $port is taken; trying again"
            continue
        fi
        break
    done
    wait_for_port "$port" "redis (TLS)"
    echo "$port" > "$dir/port"
    echo "rediss://:$password@127.0.0.1:$port/0" > "$dir/url"
    chmod 600 "$dir/url"
}

stop_redis_tls() {
    stop_redis "$1"
    rm -f "$1/url"
}

# Runs a Postgres binary as the unprivileged user when we are root.
pg_run() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_postgres() {
    local dir=$1 port=$2 bin
    bin=$(pg_bindir)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
        chown postgres "$dir"
        # The server must be able to reach its directory through every parent.
        local parent=$dir
        while [ "$parent" != / ]; do parent=$(dirname "$parent"); chmod o+x "$parent" 2>/dev/null || true; done
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        pg_run mkdir -p "$dir/data"
        pg_run "$bin/initdb" -D "$dir/data" -U ussd --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    local chosen=$port attempt
    if pg_run "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        log "postgres already running"
        chosen=$(cat "$dir/port" 2>/dev/null || printf '%s' "$port")
    else
        for attempt in 1 2 3 4 5; do
            if [ "$port" = auto ]; then chosen=$(free_port); fi
            local seen=0
            if [ -f "$dir/data/server.log" ]; then seen=$(wc -l < "$dir/data/server.log"); fi
            if pg_run "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 \
                -o "-p $chosen -c listen_addresses=127.0.0.1 -k $dir -c max_connections=200 ${PG_EXTRA_OPTIONS:-}" start \
                </dev/null >/dev/null 2>>"$dir/pg_ctl.log"; then
                break
            fi
            # A port someone took between our look and the bind: with "auto", trade it for another.
            if [ "$port" = auto ] && [ "$attempt" -lt 5 ] && tail -n "+$((seen + 1))" "$dir/data/server.log" 2>/dev/null | grep -q "Address already in use"; then
                log "postgres: port $chosen is taken; trying again"
                continue
            fi
            tail -n "+$((seen + 1))" "$dir/data/server.log" >&2
            exit 1
        done
    fi
    echo "$chosen" > "$dir/port"
    "$bin/psql" -h 127.0.0.1 -p "$chosen" -U ussd -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'ussd'" | grep -q 1 \
        || "$bin/psql" -h 127.0.0.1 -p "$chosen" -U ussd -d postgres -qc "CREATE DATABASE ussd" >/dev/null
}

# Stops Postgres as a crash would (`-m immediate`): no checkpoint; the next start replays the WAL.
crash_postgres() {
    local dir=$1 bin
    bin=$(pg_bindir)
    pg_run "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

stop_postgres() {
    local dir=$1 bin
    [ -f "$dir/data/PG_VERSION" ] || return 0
    bin=$(pg_bindir)
    pg_run "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

command=${1:-}
shift || true
case "$command" in
    install) install ;;
    install-browser) install_browser ;;
    free-port) free_port ;;
    start-redis) start_redis "$@" ;;
    stop-redis) stop_redis "$@" ;;
    start-postgres) start_postgres "$@" ;;
    stop-postgres) stop_postgres "$@" ;;
    crash-postgres) crash_postgres "$@" ;;
    start-redis-cluster) start_redis_cluster "$@" ;;
    stop-redis-cluster) stop_redis_cluster "$@" ;;
    start-redis-tls) start_redis_tls "$@" ;;
    stop-redis-tls) stop_redis_tls "$@" ;;
    stop-all) stop_redis "$1/redis"; stop_redis_cluster "$1/redis-cluster"; stop_redis_tls "$1/redis-tls"; stop_postgres "$1/postgres" ;;
    pg-bindir) pg_bindir ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
