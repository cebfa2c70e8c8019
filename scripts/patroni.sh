#!/usr/bin/env bash
# Helpers for `make ha-test`: an etcd and Postgres nodes under Patroni (Debian's `patroni` and
# `etcd-server`), on loopback ports of their own, in a scratch directory. Sourced; defines:
#   patroni_install                     apt-get the packages when missing
#   etcd_start DIR                      one etcd member (the DCS) in DIR; its client URL in DIR/url
#   patroni_configure DIR NAME ETCD     writes DIR/patroni.yml for node NAME (free ports chosen)
#   patroni_start DIR                   starts the node's Patroni (it starts its own Postgres)
#   patroni_kill DIR                    SIGKILLs the whole node: its Patroni and every Postgres process
#   patroni_json DIR                    `patronictl list -f json` seen from that node's configuration
#
# The cluster's settings are deploy/patroni/patroni.yml's (docs/runbooks/fail-over-and-back.md
# explains them): synchronous replication in strict mode (a commit is acknowledged only once a
# standby has it, never falling back to asynchronous), ttl 20 / loop_wait 5 / retry_timeout 7,
# pg_rewind for an old primary to rejoin. Loopback only: pg_hba trusts 127.0.0.1 where the shipped
# file asks for scram-sha-256 over TLS.

patroni_install() {
    local missing=()
    command -v patroni >/dev/null || missing+=(patroni)
    command -v etcd >/dev/null || missing+=(etcd-server)
    command -v etcdctl >/dev/null || missing+=(etcd-client)
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts etcd as a system service on install; this test runs its own.
    $sudo systemctl disable --now etcd >/dev/null 2>&1 || true
}

patroni_free_port() { bash scripts/services.sh free-port; }

etcd_start() {
    local dir=$1 client peer
    mkdir -p "$dir"
    client=$(patroni_free_port)
    peer=$(patroni_free_port)
    while [ "$peer" = "$client" ]; do peer=$(patroni_free_port); done
    setsid etcd --name ha-dcs --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "ha-dcs=http://127.0.0.1:$peer" --initial-cluster-state new \
        >"$dir/etcd.log" 2>&1 &
    echo $! > "$dir/pid"
    echo "http://127.0.0.1:$client" > "$dir/url"
    for _ in $(seq 1 100); do
        ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$client" endpoint health >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "etcd never became healthy" >&2; cat "$dir/etcd.log" >&2; return 1
}

patroni_configure() {
    local dir=$1 name=$2 etcd=$3 pg_port api_port bin_dir
    pg_port=$(patroni_free_port)
    api_port=$(patroni_free_port)
    while [ "$api_port" = "$pg_port" ]; do api_port=$(patroni_free_port); done
    bin_dir=$(bash scripts/services.sh pg-bindir)
    mkdir -p "$dir"
    echo "$pg_port" > "$dir/port"
    echo "$api_port" > "$dir/api-port"
    echo "$name" > "$dir/name"
    # deploy/patroni/patroni.yml's cluster settings (bootstrap.dcs, initdb), so the settings this
    # test proves are the ones shipped; the node's own addresses, directories and loopback trust
    # instead of its TLS and passwords. Debian's Python, which has Patroni's YAML module.
    /usr/bin/python3 - deploy/patroni/patroni.yml "$dir" "$name" "${etcd#http://}" "$pg_port" "$api_port" "$bin_dir" > "$dir/patroni.yml" <<'PY'
import sys, yaml
shipped, directory, name, etcd, pg_port, api_port, bin_dir = sys.argv[1:]
node = yaml.safe_load(open(shipped))
parameters = node["bootstrap"]["dcs"]["postgresql"]["parameters"]
for tls in ("ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"):
    parameters.pop(tls, None)
node["name"] = name
node["log"] = {"level": "INFO"}
node["restapi"] = {"listen": "127.0.0.1:" + api_port, "connect_address": "127.0.0.1:" + api_port}
node["etcd3"] = {"hosts": etcd}
node["postgresql"] = {
    "listen": "127.0.0.1:" + pg_port, "connect_address": "127.0.0.1:" + pg_port,
    "data_dir": directory + "/data", "bin_dir": bin_dir, "pgpass": directory + "/pgpass",
    "authentication": {"superuser": {"username": "ussd"}, "replication": {"username": "replicator"}, "rewind": {"username": "ussd"}},
    "parameters": {"unix_socket_directories": directory},
    "pg_hba": ["local all all trust", "host replication replicator 127.0.0.1/32 trust", "host all all 127.0.0.1/32 trust"],
}
yaml.safe_dump(node, sys.stdout, sort_keys=False)
PY
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; fi
}

patroni_start() {
    local dir=$1
    # A session of its own (setsid), so that patroni_kill takes the node's Patroni as one.
    if [ "$(id -u)" = 0 ]; then
        setsid runuser -u postgres -- patroni "$dir/patroni.yml" >>"$dir/patroni.log" 2>&1 &
    else
        setsid patroni "$dir/patroni.yml" >>"$dir/patroni.log" 2>&1 &
    fi
    echo $! > "$dir/patroni.pid"
}

patroni_kill() {
    local dir=$1 postmaster sid
    if [ -f "$dir/patroni.pid" ]; then kill -9 -- "-$(cat "$dir/patroni.pid")" 2>/dev/null || true; fi
    if [ -f "$dir/data/postmaster.pid" ]; then
        postmaster=$(head -1 "$dir/data/postmaster.pid")
        # Only while that pid is still this node's postmaster (after a crash the file is stale and
        # the pid may be another process's by now): its whole session, backends included.
        if tr '\0' ' ' < "/proc/$postmaster/cmdline" 2>/dev/null | grep -qF "$dir/data"; then
            sid=$(ps -o sid= -p "$postmaster" 2>/dev/null | tr -d ' ' || true)
            if [ -n "$sid" ]; then pkill -9 -s "$sid" 2>/dev/null || true; fi
            kill -9 "$postmaster" 2>/dev/null || true
        fi
    fi
    return 0
}

patroni_json() { patronictl -c "$1/patroni.yml" list -f json 2>/dev/null; }
