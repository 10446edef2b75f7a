#!/usr/bin/env bash
# Profiles a roomhost server under a fan-out shape (issue 19):
#
#   bench/profile.sh ROOMHOST_BINARY CLIENTS RATE_PER_CLIENT OUT_DIR
#   bench/profile.sh stateroom CLIENTS RATE_PER_CLIENT OUT_DIR
#
# (`stateroom`: Stateroom 0.4.4 serving bench/stateroom-fanout, built as its
# Cargo.toml says; STATEROOM and STATEROOM_WASM as in bench/run.sh.)
#
# Starts `ROOMHOST_BINARY serve` with bench/fanout (fanout.wasm from
# `bench/run.sh build`), points `roomhost loadtest` at it (1 room x CLIENTS,
# 64-byte frames; RATE_PER_CLIENT 0 = as fast as echoes return, 1 frame in
# flight per client), then, inside the measured window:
#   1. `perf record` of the server's user space for PERF_SECS (default 5);
#   2. `strace -c -f` of the server for STRACE_SECS (default 3): system calls
#      per delivery (strace slows the server; read the counts, not the times).
# Writes OUT_DIR/perf.data, perf.txt (self time by symbol), categories.txt
# (bench/perf_categories.py), strace.txt and loadtest.json.
#
# SERVER_CPUS / GENERATOR_CPUS pin the server and the load generator to
# separate cores (`taskset -c`), as in bench/run.sh. ROOMHOST_WORKERS=N sets
# roomhost's worker threads (`serve --workers N`).
#
# perf samples the kernel too when it runs as root (as in this container);
# unprivileged, with perf_event_paranoid 2, it sees user space only, and the
# kernel's share is the server's system CPU from bench/run.sh shapes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINARY=$1 CLIENTS=$2 RATE=$3 OUT=$4
PERF_SECS=${PERF_SECS:-5}
STRACE_SECS=${STRACE_SECS:-3}
PORT=${PORT:-18490}
FANOUT_WASM=${FANOUT_WASM:-$ROOT/target/plugins/wasm32-wasip2/release/fanout.wasm}
LOADTEST=${LOADTEST:-$ROOT/target/release/roomhost}
mkdir -p "$OUT"
SERVER_PIN=(env)
GENERATOR_PIN=(env)
[[ -n ${SERVER_CPUS:-} ]] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[[ -n ${GENERATOR_CPUS:-} ]] && GENERATOR_PIN=(taskset -c "$GENERATOR_CPUS")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TARGET=(--url "ws://127.0.0.1:$PORT/ws")
if [[ $BINARY == stateroom ]]; then
    STATEROOM=${STATEROOM:-$ROOT/target/stateroom/bin/stateroom}
    STATEROOM_WASM=${STATEROOM_WASM:-$ROOT/target/stateroom/wasm32-wasip1/release/stateroom_fanout.wasm}
    "${SERVER_PIN[@]}" "$STATEROOM" serve -p "$PORT" "$STATEROOM_WASM" >"$OUT/server.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true' EXIT
    for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$PORT/ws" && break; sleep 0.05; done
    TARGET+=(--single-url)
else
    "${SERVER_PIN[@]}" "$BINARY" serve --listen "127.0.0.1:$PORT" --no-cache -p "fanout=$FANOUT_WASM" \
        --client-queue 8192 --room-inbox 4096 >"$OUT/server.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true' EXIT
    for _ in $(seq 1 600); do grep -q listening "$OUT/server.log" && break; sleep 0.05; done
fi
DURATION=$((PERF_SECS + STRACE_SECS + 3))
"${GENERATOR_PIN[@]}" "$LOADTEST" loadtest "${TARGET[@]}" --rooms 1 --clients-per-room "$CLIENTS" \
    --rate "$RATE" --max-in-flight 1 --payload-bytes 64 --ramp-up-secs 2 --warmup-secs 2 \
    --duration-secs "$DURATION" --json >"$OUT/loadtest.json" 2>/dev/null &
CLIENT=$!
sleep 5
perf record -F "${PERF_FREQ:-1999}" -g --call-graph dwarf,16384 -o "$OUT/perf.data" -p "$SERVER" \
    -- sleep "$PERF_SECS" >/dev/null 2>&1 || true
timeout "$STRACE_SECS" strace -c -f -p "$SERVER" -o "$OUT/strace.txt" 2>/dev/null || true
wait "$CLIENT" || true
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -60 >"$OUT/perf.txt" || true
python3 "$ROOT/bench/perf_categories.py" "$OUT/perf.data" >"$OUT/categories.txt" || true
echo "$OUT: $(jq -c '{delivered: .messages.delivered, per_sec: .messages.delivered_per_sec, p99: .latency_ms.p99}' "$OUT/loadtest.json")"
