#!/usr/bin/env bash
# Allocations per menu hop of a release gateway, counted exactly by uprobes: libc's malloc and
# USSDService.handle (entered once per hop), over the same window of the side-by-side benchmark's
# menu journey. Needs perf with uprobes (root).
#
#   bash scripts/allocations-per-hop.sh .build/release/ussd-gateway [checkout]
set -euo pipefail
BINARY=$(readlink -f "$1")
CHECKOUT=$(readlink -f "${2:-.}")
HERE=$(cd "$(dirname "$0")" && pwd)
HANDLE='$s11USSDChannel11USSDServiceC6handleyAC6AnswerOAA7USSDHopVYaF'
LIBC=$(ldd "$BINARY" | awk '/libc.so.6/ {print $3}')
perf probe -q -d 'probe_libc:malloc' 2>/dev/null || true
perf probe -q -d 'hops:handle' 2>/dev/null || true
perf probe -q -x "$LIBC" --add malloc
perf probe -q -x "$BINARY" --add "hops:handle=$HANDLE" 2>/dev/null || perf probe -q -x "$BINARY" --add "handle=$HANDLE"
EVENT=$(perf probe -l 2>/dev/null | awk '/USSDService|handle/ {print $1; exit}')
LOG=$(mktemp)
python3 "$HERE/../../shared/bench/side-by-side.py" --binary "$BINARY" --checkout "$CHECKOUT" --rounds 1 --duration 20 --skip-peer >"$LOG" 2>&1 &
DRIVER=$!
for _ in $(seq 300); do grep -q "healthz " "$LOG" && break; sleep 1; done
PID=$(pgrep -f "$BINARY serve" | head -1)
sleep 3
perf stat -x, -e probe_libc:malloc -e "$EVENT" -p "$PID" -- sleep 8 2>&1 | awk -F, '
  /malloc/ {m=$1} /handle/ {h=$1}
  END {printf "mallocs %d, hops %d, mallocs per menu hop %.1f\n", m, h, m / h}'
wait "$DRIVER" || true
grep "round 1" "$LOG"
perf probe -q -d 'probe_libc:malloc' 2>/dev/null || true
perf probe -q -d "$EVENT" 2>/dev/null || true
rm -f "$LOG"
