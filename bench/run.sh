#!/usr/bin/env bash
# roomhost benchmark suite (issue 7): wasm-hosted rooms against the native
# baseline, measured in the same run, alternating, on the same machine.
#
#   bench/run.sh [STEP...]        steps: build micro fanout shapes sweep idle rooms coldstart summary
#                                 (default: all of them, in that order)
#
# Environment (all optional):
#   RUNS=3          repetitions of each loadtest scenario (medians are reported)
#   DURATION=10     measured seconds per loadtest run (after ramp-up and warm-up)
#   WARMUP=2        unmeasured seconds after the ramp-up
#   IDLE_CONNS=19500  idle connections (the container's hard open-files limit is
#                     20,000 per process, for the server and the load generator alike)
#   ROOMS_HELD=10000  rooms held (one idle client each)
#   OUT=bench/results  where JSON per run and summary.md go
#   SHAPE_RATE=20000 SHAPE_CLIENTS="10 100 1000" SHAPE_MODES="fixed max"
#   SHAPE_SERVERS="wasm native" SHAPE_IN_FLIGHT=1   the shapes step (below)
#   FANOUT_SERVERS="wasm native"  servers of the fanout and sweep steps
#   FANOUT_SCENARIOS="a b c"      the fanout step's scenarios (below)
#   IDLE_ROOMS=20 IDLE_SERVERS="wasm native"        the idle step
#   ROOMS_SERVERS="wasm native"                     the rooms step
#   SERVER_CPUS=0 GENERATOR_CPUS=1  pin servers and the load generator to
#       separate cores (`taskset -c`), so they do not compete for the same
#       ones (default: unpinned, sharing every core). A pinned roomhost's
#       default is one worker per core it may use: on one core, wasm and
#       wasm_w1 are the same server. The shapes' JSON records both
#       (server.workers, server.cpus).
#   Server kinds: wasm (`roomhost serve`, one worker thread per core it may
#       use), wasm_w1 (the same with `--workers 1`), native, before,
#       stateroom (below). Only the shapes step's summary lists wasm_w1.
#   BEFORE_ROOMHOST=path  an older roomhost binary: the server kind "before"
#                         in SHAPE_SERVERS, FANOUT_SERVERS and IDLE_SERVERS
#   STATEROOM=target/stateroom/bin/stateroom  Stateroom 0.4.4 (`stateroom serve`,
#       one room at /ws): the server kind "stateroom" in SHAPE_SERVERS, serving
#       STATEROOM_WASM (bench/stateroom-fanout; see its Cargo.toml for the two
#       build commands). Fixed-rate shapes only: Stateroom's room panics when a
#       client's queue fills, which max rate does at 1,000 clients.
#
# What it runs, per scenario, alternating wasm (`roomhost serve fanout.wasm`)
# and native (`roomhost-baseline --service fanout`), a fresh server each run:
#   (a) 1000 rooms x 4 clients, (b) 10 rooms x 100 clients, (c) 1 room x 1000
#   clients, first at --rate 0 (as fast as echoes return, 4 frames in flight
#   per client), then at half the wasm maximum (both servers at the same rate)
#   for delivery latency.
#   sweep: fixed offered loads (SWEEP_TARGETS deliveries/s) per scenario and
#   server: sustainable throughput (all delivered, p99 < 10 ms) and p99 at
#   half of it.
#   idle: IDLE_CONNS silent clients in 20 rooms; server RSS growth per connection.
#   rooms: ROOMS_HELD rooms with one silent client each; server RSS.
#   coldstart: time from exec to "listening" for `roomhost serve` with no
#   compile cache, with a warm cache, and for the native baseline.
#   shapes: 1 room x 10 / 100 / 1,000 clients at a fixed SHAPE_RATE
#   deliveries/s and at max rate; server CPU seconds per million deliveries.
#   micro: `cargo bench -p roomhost-baseline --bench calls` (instantiate,
#   message call and memory per idle room, wasm vs native).
#
# The load generator and the server share the machine's cores: compare the
# wasm/native ratios, not the absolute figures. Idempotent: builds are
# incremental, results are overwritten.
#
# Needs: Linux (server RSS is read from /proc), bash, cargo with the
# wasm32-wasip2 target (`rustup target add wasm32-wasip2`), jq, curl and
# python3. Latency is measured from each frame's scheduled send time; results
# from before that change (BENCHMARKS.md says which) measured from the send.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/bench/results}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
IDLE_CONNS=${IDLE_CONNS:-19500}
ROOMS_HELD=${ROOMS_HELD:-10000}
PORT=${PORT:-18480}
ROOMHOST=$ROOT/target/release/roomhost
STATEROOM=${STATEROOM:-$ROOT/target/stateroom/bin/stateroom}
STATEROOM_WASM=${STATEROOM_WASM:-$ROOT/target/stateroom/wasm32-wasip1/release/stateroom_fanout.wasm}
BASELINE=$ROOT/target/release/roomhost-baseline
FANOUT_WASM=$ROOT/target/plugins/wasm32-wasip2/release/fanout.wasm
CACHE_DIR=$OUT/compile-cache
# Same limits for both servers: queues deep enough for --rate 0 fan-out to a
# 1000-client room (every client may have 4 frames in flight).
LIMITS=(--max-rooms 12000 --max-connections 20000 --client-queue 8192 --room-inbox 4096 --room-creations-per-minute 1000000)
SERVER_PID=
# `env` when unpinned: a no-op prefix that keeps "${SERVER_PIN[@]}" non-empty.
SERVER_PIN=(env)
GENERATOR_PIN=(env)
[[ -n ${SERVER_CPUS:-} ]] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[[ -n ${GENERATOR_CPUS:-} ]] && GENERATOR_PIN=(taskset -c "$GENERATOR_CPUS")

missing=()
for tool in jq curl python3 cargo; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ -r /proc/self/status ]] || missing+=("Linux /proc")
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "bench/run.sh needs: ${missing[*]}" >&2
    exit 1
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "bench/run.sh needs the wasm32-wasip2 target: rustup target add wasm32-wasip2" >&2
    exit 1
fi

mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

build() {
    log "building release binaries and fanout.wasm"
    # Separate invocations: the baseline turns on roomhost-host's
    # `native-baseline` feature, which must not reach the `roomhost` binary.
    cargo build --release -p roomhost-cli
    cargo build --release -p roomhost-baseline
    cargo build --release --target wasm32-wasip2 -p fanout --target-dir target/plugins
}

# start_server wasm|native [extra args]: starts a fresh server on $PORT and
# waits until it listens.
start_server() {
    local kind=$1
    shift
    local logfile=$OUT/server-$kind.log
    if [[ $kind == wasm || $kind == wasm_w1 || $kind == before ]]; then
        local binary=$ROOMHOST
        if [[ $kind == before ]]; then
            binary=${BEFORE_ROOMHOST:?"set BEFORE_ROOMHOST to an older roomhost binary"}
        elif [[ $kind == wasm_w1 ]]; then
            set -- --workers 1 "$@"
        fi
        "${SERVER_PIN[@]}" "$binary" serve --listen "127.0.0.1:$PORT" --cache-dir "$CACHE_DIR-$kind" \
            -p "fanout=$FANOUT_WASM" "${LIMITS[@]}" "$@" >"$logfile" 2>&1 &
    elif [[ $kind == stateroom ]]; then
        # Prints no "listening" line: ready once /ws answers (400 to a
        # request that is not an upgrade).
        "${SERVER_PIN[@]}" "$STATEROOM" serve -p "$PORT" "$STATEROOM_WASM" >"$logfile" 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 1 600); do
            if curl -s -o /dev/null "http://127.0.0.1:$PORT/ws"; then return 0; fi
            sleep 0.05
        done
        log "server $kind did not start"
        return 1
    else
        "${SERVER_PIN[@]}" "$BASELINE" --listen "127.0.0.1:$PORT" --service fanout "${LIMITS[@]}" "$@" \
            >"$logfile" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        if grep -q listening "$logfile"; then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$logfile" >&2
            return 1
        fi
        sleep 0.05
    done
    log "server $kind did not start"
    return 1
}

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# loadtest OUTFILE ROOMS CLIENTS RATE [extra args]
loadtest() {
    local out=$1 rooms=$2 clients=$3 rate=$4
    shift 4
    "${GENERATOR_PIN[@]}" "$ROOMHOST" loadtest --url "ws://127.0.0.1:$PORT/ws" --rooms "$rooms" \
        --clients-per-room "$clients" --rate "$rate" --max-in-flight 4 \
        --payload-bytes 64 --warmup-secs "$WARMUP" --duration-secs "$DURATION" \
        --json "$@" >"$out"
}

# on_both LABEL REPORT ROOMS CLIENTS RATE RAMP: one loadtest run against a
# fresh wasm server, then one against a fresh native server; KIND in REPORT
# becomes wasm or native.
on_both() {
    local label=$1 report=$2 rooms=$3 clients=$4 rate=$5 ramp=$6
    for kind in ${FANOUT_SERVERS:-wasm native}; do
        log "$label, $kind"
        start_server "$kind"
        loadtest "${report//KIND/$kind}" "$rooms" "$clients" "$rate" --ramp-up-secs "$ramp"
        stop_server
    done
}

micro() {
    log "micro benchmarks (cargo bench -p roomhost-baseline --bench calls)"
    # The release profile, so the build is shared with `build`.
    cargo bench --profile release -p roomhost-baseline --bench calls | tee "$OUT/micro.txt"
}

FANOUT_SCENARIOS=${FANOUT_SCENARIOS:-"a b c"}
fanout() {
    local scenarios=("a 1000 4 2" "b 10 100 1" "c 1 1000 1")
    for run in $(seq 1 "$RUNS"); do
        for scenario in "${scenarios[@]}"; do
            read -r name rooms clients ramp <<<"$scenario"
            [[ " $FANOUT_SCENARIOS " == *" $name "* ]] || continue
            on_both "run $run: ($name) ${rooms}x${clients} max rate" \
                "$OUT/$name-max-KIND-$run.json" "$rooms" "$clients" 0 "$ramp"
            # Half of the wasm maximum, per client, for both servers. With no
            # connection or a rate that rounds down to 0 (which would mean
            # unlimited), there is no half rate to measure.
            local half
            half=$(jq -r 'if .connections.established > 0
                then (.messages.sent_per_sec / .connections.established / 2) * 1000 | floor / 1000
                else 0 end' "$OUT/$name-max-wasm-$run.json")
            if ! awk -v rate="$half" 'BEGIN { exit !(rate > 0) }'; then
                log "run $run: ($name) no half rate (wasm max run: $half/s per client), skipped"
                continue
            fi
            on_both "run $run: ($name) ${rooms}x${clients} at $half/s per client" \
                "$OUT/$name-half-KIND-$run.json" "$rooms" "$clients" "$half" "$ramp"
        done
    done
}

# Fixed offered loads (open loop), ascending, for each scenario and both
# servers: the highest load each sustains (every frame delivered, p99 under
# 10 ms) is its sustainable throughput, and the p99 at half of it is the
# latency goal's measure. --rate 0 (closed loop) above measures how fast
# queues drain, which overloads both servers at half of it.
SWEEP_TARGETS=${SWEEP_TARGETS:-"8000 16000 32000 64000"}
sweep() {
    local scenarios=("a 1000 4 2" "b 10 100 1" "c 1 1000 1")
    for scenario in "${scenarios[@]}"; do
        read -r name rooms clients ramp <<<"$scenario"
        for target in $SWEEP_TARGETS; do
            # deliveries/s = rate x clients in all rooms x clients per room
            local rate
            rate=$(python3 -c "print(round($target / ($rooms * $clients * $clients), 6))")
            on_both "sweep ($name) ${rooms}x${clients} offered $target deliveries/s ($rate/s per client)" \
                "$OUT/sweep-$name-$target-KIND.json" "$rooms" "$clients" "$rate" "$ramp"
        done
    done
}

# Fan-out shapes (issue 19): one room of 10, 100 and 1,000 clients, 64-byte
# frames broadcast to every member, sender included; at a fixed SHAPE_RATE
# deliveries/s ("fixed") and as fast as echoes return ("max": --rate 0,
# SHAPE_IN_FLIGHT of its own frames in flight per client). Each run samples
# the server's CPU (user and system ticks, /proc/PID/stat), its write(2)
# calls (/proc/PID/io: eventfd wake-ups; sockets use send(2)) and the TCP
# segments its sockets sent (ss; recorded raw, not summarised: the sums came
# out negative in the issue 19 runs, unexplained) at the start and end of the measured window, so
# summarize.py reports CPU seconds per million deliveries. The load
# generator reports its own CPU over its window (`generator_cpu_secs`): over loopback, a segment's receive path
# (and the wake-up of the receiving thread) runs in the sender's system
# call, so a server that sends fewer, later segments (Nagle) moves part of
# its cost to the generator; server + generator is the whole machine's cost. SHAPE_SERVERS
# picks the servers, alternating within each run: wasm, native, and before
# (BEFORE_ROOMHOST: another roomhost binary serving the same fanout.wasm,
# for before/after comparisons in one run).
SHAPE_RATE=${SHAPE_RATE:-20000}
SHAPE_CLIENTS=${SHAPE_CLIENTS:-"10 100 1000"}
SHAPE_MODES=${SHAPE_MODES:-"fixed max"}
SHAPE_SERVERS=${SHAPE_SERVERS:-"wasm native"}
SHAPE_IN_FLIGHT=${SHAPE_IN_FLIGHT:-1}

# proc_sample PID: "utime stime syscw" (ticks, ticks, write(2)-type calls).
# (TCP segments per delivery are not sampled here: the server's sockets go
# as the generator ends, right at the window's end. bench/profile.sh counts
# send calls with strace instead.)
proc_sample() {
    local ticks writes
    ticks=$(awk '{print $14, $15}' "/proc/$1/stat")
    writes=$(awk '/^syscw/ {print $2}' "/proc/$1/io" 2>/dev/null || echo 0)
    echo "$ticks ${writes:-0}"
}

shapes() {
    local ramp=2
    for run in $(seq 1 "$RUNS"); do
        for clients in $SHAPE_CLIENTS; do
            for mode in $SHAPE_MODES; do
                local rate=0
                if [[ $mode == fixed ]]; then
                    rate=$(python3 -c "print(round($SHAPE_RATE / ($clients * $clients), 6))")
                fi
                for kind in $SHAPE_SERVERS; do
                    local out=$OUT/shape-$clients-$mode-$kind-$run.json
                    log "run $run: 1x$clients $mode (rate $rate/client), $kind"
                    start_server "$kind"
                    # roomhost's runtime threads (a pinned server's default is
                    # one per core it may use) and the cores the server may use.
                    local workers cpus
                    workers=$(curl -s "http://127.0.0.1:$PORT/status" | jq '.workers // null' 2>/dev/null || echo null)
                    cpus=$(awk '/^Cpus_allowed_list/ {print $2}' "/proc/$SERVER_PID/status")
                    local target=(--url "ws://127.0.0.1:$PORT/ws")
                    [[ $kind == stateroom ]] && target+=(--single-url)
                    "${GENERATOR_PIN[@]}" "$ROOMHOST" loadtest "${target[@]}" --rooms 1 \
                        --clients-per-room "$clients" --rate "$rate" \
                        --max-in-flight "$SHAPE_IN_FLIGHT" --payload-bytes 64 \
                        --ramp-up-secs "$ramp" --warmup-secs "$WARMUP" \
                        --duration-secs "$DURATION" --json >"$out.tmp" &
                    local client=$!
                    sleep $((ramp + WARMUP))
                    local start end
                    start=$(proc_sample "$SERVER_PID")
                    sleep "$DURATION"
                    end=$(proc_sample "$SERVER_PID")
                    wait "$client" || true
                    stop_server
                    read -r u0 s0 w0 <<<"$start"
                    read -r u1 s1 w1 <<<"$end"
                    jq --arg kind "$kind" --arg mode "$mode" \
                        --argjson workers "${workers:-null}" --arg cpus "$cpus" \
                        --argjson hz "$(getconf CLK_TCK)" \
                        --argjson user $((u1 - u0)) --argjson system $((s1 - s0)) \
                        --argjson writes $((w1 - w0)) \
                        '. + {server: {kind: $kind, mode: $mode, workers: $workers, cpus: $cpus,
                              cpu_user_secs: ($user / $hz), cpu_system_secs: ($system / $hz),
                              write_calls: $writes}}' "$out.tmp" >"$out"
                    rm -f "$out.tmp"
                done
            done
        done
    done
}

# held KIND NAME ROOMS CLIENTS: ROOMS x CLIENTS silent clients; records the
# server's RSS before and while they are connected.
held() {
    local kind=$1 name=$2 rooms=$3 clients=$4
    start_server "$kind"
    sleep 0.5
    local before
    before=$(rss_kib "$SERVER_PID")
    # One frame per client per ~3 hours (the lowest rate loadtest takes):
    # about 0.2 % of the clients send one frame during the run. Pings keep
    # them alive (idle timeout 60 s, longer than the run).
    loadtest "$OUT/$name-$kind.json" "$rooms" "$clients" 0.0001 --ramp-up-secs 8 \
        --max-connections 50000 &
    local client=$!
    sleep $((8 + WARMUP + DURATION / 2))
    local during
    during=$(rss_kib "$SERVER_PID")
    local live
    live=$(curl -s "http://127.0.0.1:$PORT/status" | jq -c '.' || echo null)
    wait "$client" || true
    stop_server
    jq -n --arg kind "$kind" --argjson before "$before" --argjson during "$during" \
        --argjson rooms "$rooms" --argjson clients "$clients" --argjson status "$live" \
        --slurpfile report "$OUT/$name-$kind.json" \
        '{kind: $kind, rooms: $rooms, clients_per_room: $clients,
          rss_before_kib: $before, rss_during_kib: $during,
          established: $report[0].connections.established,
          open_at_end: $report[0].connections.open_at_end, status: $status}' \
        >"$OUT/$name-$kind-rss.json"
}

# IDLE_ROOMS rooms share IDLE_CONNS silent clients; IDLE_SERVERS as
# SHAPE_SERVERS (wasm, native, before). Issue 19 measured 1 room x 5,000 and
# 1 x 19,000 (IDLE_ROOMS=1).
IDLE_ROOMS=${IDLE_ROOMS:-20}
IDLE_SERVERS=${IDLE_SERVERS:-"wasm native"}
idle() {
    local per_room=$((IDLE_CONNS / IDLE_ROOMS))
    for kind in $IDLE_SERVERS; do
        log "idle: $IDLE_ROOMS rooms x $per_room silent clients, $kind"
        held "$kind" "idle-$IDLE_CONNS" "$IDLE_ROOMS" "$per_room"
    done
}

ROOMS_SERVERS=${ROOMS_SERVERS:-"wasm native"}
rooms() {
    for kind in $ROOMS_SERVERS; do
        log "rooms held: $ROOMS_HELD rooms x 1 silent client, $kind"
        held "$kind" rooms "$ROOMS_HELD" 1
    done
}

# time_to_listen CMD...: milliseconds from exec to the "listening" line.
time_to_listen() {
    python3 - "$@" <<'PY'
import subprocess, sys, time
start = time.monotonic()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
for line in proc.stdout:
    if "listening" in line:
        print(round((time.monotonic() - start) * 1000, 1))
        break
proc.terminate()
proc.wait()
PY
}

coldstart() {
    local warm=$OUT/coldstart-cache
    rm -rf "$warm"
    # Fill the cache: the server compiles and stores the plugin before it
    # prints "listening".
    local primed
    primed=$(time_to_listen "$ROOMHOST" serve --listen "127.0.0.1:$PORT" --cache-dir "$warm" \
        -p "fanout=$FANOUT_WASM")
    if [[ -z $primed ]]; then
        log "the server did not start to fill the compile cache"
        return 1
    fi
    : >"$OUT/coldstart.txt"
    for run in $(seq 1 $((RUNS * 2))); do
        log "cold start run $run"
        {
            echo "nocache $(time_to_listen "$ROOMHOST" serve --listen "127.0.0.1:$PORT" --no-cache -p "fanout=$FANOUT_WASM")"
            echo "cache $(time_to_listen "$ROOMHOST" serve --listen "127.0.0.1:$PORT" --cache-dir "$warm" -p "fanout=$FANOUT_WASM")"
            echo "native $(time_to_listen "$BASELINE" --listen "127.0.0.1:$PORT" --service fanout)"
        } >>"$OUT/coldstart.txt"
    done
}

summary() {
    {
        python3 "$ROOT/bench/summarize.py" "$OUT"
        python3 "$ROOT/bench/sweep.py" "$OUT"
    } | tee "$OUT/summary.md"
}

steps=("$@")
if [[ ${#steps[@]} -eq 0 ]]; then
    steps=(build micro fanout shapes sweep idle rooms coldstart summary)
fi
if [[ -n ${SERVER_CPUS:-}${GENERATOR_CPUS:-} ]]; then
    sharing="servers on cores ${SERVER_CPUS:-all}, load generator on ${GENERATOR_CPUS:-all}"
else
    sharing="load generator and server share them"
fi
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $sharing"
for step in "${steps[@]}"; do
    "$step"
done
