#!/usr/bin/env bash
# Rust and TypeScript rooms behind a real server, taking turns: for each run,
# `roomhost serve` the Rust counter, then the TypeScript counter, open ROOMS
# rooms with one client each (tests/node/served-rooms.mjs) and record the
# server's memory growth per room (RSS and PSS) and the open time per room.
#
#   bench/languages.sh [ROOMS] [RUNS]        (defaults 1000 rooms, 3 runs)
#
# Needs a built roomhost (ROOMHOST, default target/release/roomhost), the
# test plugins (cargo test -p roomhost-e2e --test typescript builds them)
# and `npm ci` in tests/node. The in-process figures (instantiate, message
# call) come from `cargo bench -p roomhost-e2e --bench languages`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOMS=${1:-1000}
RUNS=${2:-3}
ROOMHOST=${ROOMHOST:-target/release/roomhost}
PORT=${PORT:-18181}
declare -A PLUGINS=(
    [counter]=target/plugins/wasm32-wasip2/release/counter.wasm
    [counter-ts]=target/plugins/js/counter_ts.wasm
)
for run in $(seq "$RUNS"); do
    for name in counter counter-ts; do
        log=$(mktemp)
        "$ROOMHOST" serve --listen "127.0.0.1:$PORT" --room-creations-per-minute 1000000 \
            --plugin "$name=${PLUGINS[$name]}" >"$log" 2>&1 &
        server=$!
        for _ in $(seq 120); do grep -q listening "$log" && break; sleep 0.5; done
        echo "run $run $name $(node tests/node/served-rooms.mjs "$PORT" "$ROOMS" "$server")"
        kill "$server"
        wait "$server" 2>/dev/null || true
        rm -f "$log"
    done
done
