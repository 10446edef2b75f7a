#!/usr/bin/env bash
# collab vs @y/websocket-server 0.1.1 on the same Yjs client workload (bench.mjs).
#
#   tests/node/compare.sh [RUNS]        # RUNS per server, default 3
#
# What it does, every time (idempotent; results go to target/collab-bench/, which it clears):
# 1. builds what it needs: `npm ci` here when node_modules is missing or older than
#    package-lock.json, the release `roomhost` binary, and the collab plugin in release
#    (cargo build --release --target wasm32-wasip2 -p collab);
# 2. RUNS times, alternating which server goes first: starts the server on a free port,
#    runs `node bench.mjs URL --server-pid PID --out ...`, stops the server;
#    - reference: `node node_modules/@y/websocket-server/src/server.js` (its `y-websocket`
#      bin) with HOST and PORT;
#    - roomhost: `roomhost serve --plugin collab=collab.wasm`, its default limits, collab
#      as the only service, so the server URL is ws://HOST:PORT/ws;
# 3. prints the medians per server and the ratios roomhost / reference
#    (node bench.mjs --summarize target/collab-bench/*.json).
#
# ROOMHOST_CONFIG, when set, is passed to roomhost as --config (collab's configuration), e.g.
# ROOMHOST_CONFIG='{"max_doc_bytes": 16777216}' for documents above collab's 8 MiB default cap.
# Extra arguments for bench.mjs go in BENCH_ARGS, e.g. BENCH_ARGS="--providers 2,4 --edits 200",
# or BENCH_ARGS="--providers 0 --doc-kb 0 --large-mb 1,10" for the large late joiners alone.
set -euo pipefail

runs=${1:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/target/collab-bench
cd "$root"

if [ ! -f "$here/node_modules/.package-lock.json" ] ||
    [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    (cd "$here" && npm ci --no-audit --no-fund)
fi
cargo build --release -p roomhost-cli
cargo build --release --target wasm32-wasip2 -p collab
roomhost=$root/target/release/roomhost
wasm=$root/target/wasm32-wasip2/release/collab.wasm

rm -rf "$out"
mkdir -p "$out"

free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}

wait_port() {
    for _ in $(seq 1 200); do
        if node -e 'require("net").connect(+process.argv[1], "127.0.0.1").on("connect", () => process.exit(0)).on("error", () => process.exit(1))' "$1"; then
            return 0
        fi
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    return 1
}

server_pid=
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT

# run NAME RUN_NUMBER
run() {
    local name=$1 n=$2 port url
    port=$(free_port)
    case $name in
    reference)
        HOST=127.0.0.1 PORT=$port node "$here/node_modules/@y/websocket-server/src/server.js" \
            >"$out/$name-$n.log" 2>&1 &
        url=ws://127.0.0.1:$port
        ;;
    roomhost)
        "$roomhost" serve --listen "127.0.0.1:$port" --plugin "collab=$wasm" \
            ${ROOMHOST_CONFIG:+--config "$ROOMHOST_CONFIG"} >"$out/$name-$n.log" 2>&1 &
        url=ws://127.0.0.1:$port/ws
        ;;
    esac
    server_pid=$!
    wait_port "$port"
    echo "== run $n: $name ($url)" >&2
    # shellcheck disable=SC2086 # BENCH_ARGS is split on purpose
    node "$here/bench.mjs" "$url" --label "$name" --server-pid "$server_pid" \
        --out "$out/$name-$n.json" ${BENCH_ARGS:-} >/dev/null
    stop_server
    sleep 1
}

for n in $(seq 1 "$runs"); do
    if [ $((n % 2)) -eq 1 ]; then
        run roomhost "$n"
        run reference "$n"
    else
        run reference "$n"
        run roomhost "$n"
    fi
done

node "$here/bench.mjs" --summarize "$out"/*.json | tail -n +3 | tee "$out/summary.md"
