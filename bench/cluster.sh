#!/usr/bin/env bash
# What a cluster costs (issue 16): the latency a forwarding hop adds, and
# messages/s through one node against three nodes behind HAProxy.
#
#   bench/cluster.sh              RUNS=3 DURATION=5 (medians of RUNS, alternating)
#
# Starts its own PostgreSQL 15 (as the `postgres` user when run as root), three
# `roomhost serve --cluster` nodes and HAProxy with deploy/haproxy.cfg, all on
# 127.0.0.1, serving bench/fanout (every frame broadcast to the room).
#
#   latency:    10 rooms x 10 clients, 10 frames/s each (10,000 deliveries/s).
#               "direct": the clients connect to the node that owns their rooms;
#               "forwarded": to another node, which forwards every connection.
#               The rooms are pinned to their owner first by one idle client each.
#   throughput: 10 rooms x 10 clients at --rate 0 (4 frames in flight per
#               client): one plain `roomhost serve` against the three nodes
#               through HAProxy (rooms spread by the path hash).
#
# The load generator, PostgreSQL, HAProxy and every node share the machine's
# cores: on 2 cores three nodes show the cost of the extra processes and hops,
# not scaling. Needs: release binary and fanout.wasm (bench/run.sh build),
# haproxy, python3, PostgreSQL 15 binaries (/usr/lib/postgresql/15/bin or
# $ROOMHOST_PG_BIN).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
ROOMHOST=$ROOT/target/release/roomhost
FANOUT=$ROOT/target/plugins/wasm32-wasip2/release/fanout.wasm
PG_BIN=${ROOMHOST_PG_BIN:-/usr/lib/postgresql/15/bin}
OUT=${OUT:-$ROOT/bench/results/cluster}
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; else "$@"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

[ -x "$ROOMHOST" ] && [ -f "$FANOUT" ] || { log "run bench/run.sh build first"; exit 1; }
command -v haproxy >/dev/null || { log "haproxy is needed (apt-get install haproxy)"; exit 1; }

log "starting PostgreSQL"
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
PG_PORT=$(free_port)
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -A trust -U postgres >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w \
    -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
DB=postgres://postgres@127.0.0.1:$PG_PORT/postgres

# start NAME PORT [serve args...]: a server, waited for until it listens.
start() {
    local name=$1 port=$2
    shift 2
    "$ROOMHOST" serve --listen "127.0.0.1:$port" --cache-dir "$WORK/cache" \
        -p "fanout=$FANOUT" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 600); do
        grep -q listening "$WORK/$name.log" && return 0
        sleep 0.05
    done
    log "$name did not start"; cat "$WORK/$name.log" >&2; exit 1
}

PORTS=($(free_port) $(free_port) $(free_port))
for i in 0 1 2; do
    start "node$((i + 1))" "${PORTS[$i]}" --cluster "$DB" --node-id "node$((i + 1))"
done
PROXY_PORT=$(free_port)
ROOMHOST_PROXY_BIND=127.0.0.1:$PROXY_PORT ROOMHOST_NODE1=127.0.0.1:${PORTS[0]} \
    ROOMHOST_NODE2=127.0.0.1:${PORTS[1]} ROOMHOST_NODE3=127.0.0.1:${PORTS[2]} \
    haproxy -f deploy/haproxy.cfg >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
SINGLE_PORT=$(free_port)
start single "$SINGLE_PORT" --no-storage
sleep 2

loadtest() { # OUTFILE URL PREFIX [args...]
    local out=$1 url=$2 prefix=$3
    shift 3
    "$ROOMHOST" loadtest --url "$url" --room-prefix "$prefix" --rooms 10 --clients-per-room 10 \
        --ramp-up-secs 1 --warmup-secs 1 --duration-secs "$DURATION" --json "$@" >"$out" 2>/dev/null
}

# pin PREFIX PORT: one idle client per room on node PORT, so that node owns them.
pin() {
    "$ROOMHOST" loadtest --url "ws://127.0.0.1:$2/ws" --room-prefix "$1" --rooms 10 \
        --clients-per-room 1 --rate 0.0001 --ramp-up-secs 0 --warmup-secs 0 \
        --duration-secs 3600 --json >/dev/null 2>&1 &
    PIDS+=($!)
    sleep 1.5
}

pin direct- "${PORTS[0]}"
pin forwarded- "${PORTS[1]}"
for run in $(seq 1 "$RUNS"); do
    log "run $run/$RUNS: latency, direct then forwarded"
    loadtest "$OUT/direct-$run.json" "ws://127.0.0.1:${PORTS[0]}/ws" direct- --rate 10
    loadtest "$OUT/forwarded-$run.json" "ws://127.0.0.1:${PORTS[0]}/ws" forwarded- --rate 10
    log "run $run/$RUNS: throughput, one node then three behind the proxy"
    loadtest "$OUT/single-$run.json" "ws://127.0.0.1:$SINGLE_PORT/ws" max-$run- --rate 0 --max-in-flight 4
    loadtest "$OUT/cluster-$run.json" "ws://127.0.0.1:$PROXY_PORT/ws" max-$run- --rate 0 --max-in-flight 4
done

python3 - "$OUT" "$RUNS" <<'EOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(kind):
    return [json.load(open(f"{out}/{kind}-{run}.json")) for run in range(1, runs + 1)]
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")
print("| scenario | delivered/s | p50 ms | p99 ms | connections open |")
print("|---|---:|---:|---:|---:|")
for kind, label in [("direct", "10 x 10 at 10k/s, clients on the owner"),
                    ("forwarded", "10 x 10 at 10k/s, clients forwarded by another node"),
                    ("single", "10 x 10 max rate, one plain node"),
                    ("cluster", "10 x 10 max rate, three nodes behind HAProxy")]:
    reports = load(kind)
    print(f"| {label} | {med([r['messages']['delivered_per_sec'] for r in reports]):,.0f} "
          f"| {med([r['latency_ms']['p50'] for r in reports]):.2f} "
          f"| {med([r['latency_ms']['p99'] for r in reports]):.2f} "
          f"| {med([r['connections']['open_at_end'] for r in reports]):.0f} |")
EOF
