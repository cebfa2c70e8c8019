#!/usr/bin/env bash
# Start the Node peer (server.js), the other side of a side-by-side benchmark of menu hops (the
# peer's URL and pids go to the benchmark driver as --other-url and --other-pids): a private
# Redis on a free port, then Node on 127.0.0.1:$PORT with $WORKERS cluster workers. Foreground;
# Ctrl-C stops both. Prints the pids to give as --other-pids.
#
# The libraries are never committed. Assemble them once into $PEER_DIR/node_modules from
# fetched GitHub copies (the npm registry is not reachable here):
#   ussd-menu-builder 1.2.0  github:habbes/ussd-menu-builder (HEAD, package.json 1.2.0)
#   async 2.6.4 (its dist/)  github:caolan/async, tag v2.6.4
#   redis 4.6.4, @redis/client 1.5.5 and its modules, cluster-key-slot, generic-pool, yallist:
#                            the published packages as committed under node_modules/ in
#                            github:busbud/coding-challenge-backend-c at f2b612a (node-redis is
#                            TypeScript; its own repository has no built files)
# with:  scripts/node-peer/run.sh assemble MIRROR_ROOT   (MIRROR_ROOT holds owner+name/repo)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEER_DIR="${PEER_DIR:-$HOME/.cache/ussd-peers/node-peer}"
PORT="${PORT:-9201}"
WORKERS="${WORKERS:-2}"
REDIS_PORT="${REDIS_PORT:-6392}"

if [[ "${1:-}" == "assemble" ]]; then
  M="${2:?mirror root}"
  mkdir -p "$PEER_DIR/node_modules" && cd "$PEER_DIR/node_modules"
  B="$M/busbud+coding-challenge-backend-c/repo"; C=f2b612a42130916de8869a5d58ac14010eb0948a
  for d in redis @redis/client @redis/bloom @redis/graph @redis/json @redis/search @redis/time-series \
           cluster-key-slot generic-pool yallist; do
    mkdir -p "$d"
    git -C "$B" archive "$C" "node_modules/$d" | tar -x --strip-components=$(( $(tr -cd / <<<"node_modules/$d" | wc -c) + 1 )) -C "$d"
  done
  git -C "$M/habbes+ussd-menu-builder/repo" archive HEAD --prefix=ussd-menu-builder/ | tar -x
  mkdir -p async && git -C "$M/caolan+async/repo" archive v2.6.4 dist package.json | tar -x -C async
  node -e "require('redis'); require('ussd-menu-builder'); console.log('node-peer: libraries assembled in $PEER_DIR')"
  exit 0
fi

[[ -d "$PEER_DIR/node_modules/ussd-menu-builder" ]] || { echo "run.sh: assemble the libraries first (see the header)" >&2; exit 1; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
while ! port_free "$REDIS_PORT"; do REDIS_PORT=$((REDIS_PORT + 1)); done
mkdir -p "$PEER_DIR/run"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --daemonize no \
  --logfile "$PEER_DIR/run/redis.log" --dir "$PEER_DIR/run" &
REDIS_PID=$!
trap 'kill $REDIS_PID $NODE_PID 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
NODE_PATH="$PEER_DIR/node_modules" PORT="$PORT" WORKERS="$WORKERS" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
  node "$HERE/server.js" &
NODE_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "run.sh: node pids $(echo $NODE_PID $(pgrep -P $NODE_PID) | tr ' ' ,) on 127.0.0.1:$PORT, redis $REDIS_PORT" >&2
wait $NODE_PID
