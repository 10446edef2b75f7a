#!/usr/bin/env bash
# Hostile-client figures of issue 13 (BENCHMARKS.md), for one roomhost binary:
#
#   bench/hostile.sh path/to/roomhost [runs]
#
# Each scenario starts a fresh `roomhost serve` of the collab plugin on
# 127.0.0.1 and points bench/hostile.py at it: a never-reading ping flood
# (server RSS growth), 300 silent connections (closed within 35 s), 300
# trickling request bodies (REST requests answered after 15 s), and silent
# connections past a 256-descriptor limit (/status and a WebSocket still
# answered), and the memory of a connection with a long query string. The plugin comes from the e2e tests' build
# (target/plugins/.../collab.wasm; `cargo test -p roomhost-e2e --test collab`
# builds it).
set -euo pipefail

ROOMHOST=${1:?usage: bench/hostile.sh path/to/roomhost [runs]}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COLLAB=$ROOT/target/plugins/wasm32-wasip2/release/collab.wasm
PORT=${PORT:-18913}
OUT=$(mktemp -d)
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$OUT"' EXIT
SERVER_PID=

# Newer binaries need REST requests to be allowed to create documents.
EXTRA=()
if "$ROOMHOST" serve --help | grep -q -- --http-creates-rooms; then
    EXTRA=(--http-creates-rooms collab)
fi

start() {
    "$@" serve --listen "127.0.0.1:$PORT" --no-cache -p "collab=$COLLAB" "${EXTRA[@]}" \
        >"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        grep -q listening "$OUT/server.log" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; return 1; }
        sleep 0.1
    done
    echo "server did not start" >&2
    return 1
}

stop() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

for run in $(seq 1 "$RUNS"); do
    echo "== run $run"
    start "$ROOMHOST"
    python3 "$ROOT/bench/hostile.py" pingflood --port "$PORT" --pid "$SERVER_PID" --secs 10 --clients 4
    stop
    start "$ROOMHOST"
    python3 "$ROOT/bench/hostile.py" silent --port "$PORT" --conns 300 --wait 35
    stop
    start "$ROOMHOST"
    python3 "$ROOT/bench/hostile.py" slowbodies --port "$PORT" --room collab/doc --conns 300 --after 15
    stop
done
for query in 60000 4000 0; do
    start "$ROOMHOST"
    python3 "$ROOT/bench/hostile.py" querymem --port "$PORT" --pid "$SERVER_PID" --conns 500 --query "$query"
    stop
done
start prlimit --nofile=256:256 "$ROOMHOST"
python3 "$ROOT/bench/hostile.py" fdlimit --port "$PORT" --conns 600
stop
