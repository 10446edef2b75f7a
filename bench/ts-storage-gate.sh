#!/usr/bin/env bash
# What the output gate costs a TypeScript room that never writes: one
# fan-out service (every frame broadcast to the room) built twice by the
# JavaScript SDK, without the `storage` import (what the build chooses for
# it) and with it (package.json `"roomhost": {"storage": true}`), each served
# with the embedded store and driven by `roomhost loadtest`, taking turns.
# Reports per run the server's CPU seconds (and per delivery), delivery
# latency and connect time (which includes creating the room, and for the
# storage build its load from the store).
#
#   bench/ts-storage-gate.sh [RUNS]      (default 3; ROOMS, CLIENTS, RATE, SECS)
#
# Needs a built roomhost (ROOMHOST, default target/release/roomhost) and
# `npm ci` in guest-sdk-js.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
ROOMHOST=${ROOMHOST:-target/release/roomhost}
ROOMS=${ROOMS:-100} CLIENTS=${CLIENTS:-5} RATE=${RATE:-4} SECS=${SECS:-10}
PORT=${PORT:-18911}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for variant in plain storage; do
    mkdir -p "$work/$variant/src"
    storage=$([ "$variant" = storage ] && echo true || echo false)
    echo "{\"name\":\"fanout-$variant\",\"type\":\"module\",\"roomhost\":{\"storage\":$storage}}" \
        >"$work/$variant/package.json"
    cat >"$work/$variant/src/index.ts" <<'TS'
import { type ClientId, Message, Room } from '@roomhost/sdk';
export default class Fanout {
  message(room: Room, _client: ClientId, message: Message): void {
    room.broadcast(message);
  }
}
TS
    node guest-sdk-js/bin/roomhost-js.mjs build "$work/$variant" --out "$work/$variant.wasm" >/dev/null
done
for run in $(seq "$RUNS"); do
    for variant in plain storage; do
        PORT=$((PORT + 1))
        "$ROOMHOST" serve --plugin "fanout=$work/$variant.wasm" --data-dir "$work/data-$variant-$run" \
            --listen "127.0.0.1:$PORT" --room-creations-per-minute 1000000 >"$work/serve.log" 2>&1 &
        server=$!
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
        before=$(awk '{print $14 + $15}' "/proc/$server/stat")
        "$ROOMHOST" loadtest --url "ws://127.0.0.1:$PORT/ws/fanout" --rooms "$ROOMS" \
            --clients-per-room "$CLIENTS" --rate "$RATE" --payload-bytes 64 --ramp-up-secs 2 \
            --warmup-secs 2 --duration-secs "$SECS" --json >"$work/report.json" 2>/dev/null
        after=$(awk '{print $14 + $15}' "/proc/$server/stat")
        kill "$server"
        wait "$server" 2>/dev/null || true
        node -e '
const [variant, run, ticks, path] = process.argv.slice(1);
const r = JSON.parse(require("fs").readFileSync(path, "utf8"));
const cpu = Number(ticks) / 100, m = r.messages, l = r.latency_ms, c = r.connections.connect_ms;
console.log(`${variant.padEnd(8)} run ${run}: server CPU ${cpu.toFixed(2)} s (${(cpu * 1e6 / m.delivered).toFixed(1)} us/delivery), ` +
  `delivered ${m.delivered} (ratio ${m.delivery_ratio}), latency p50 ${l.p50} p99 ${l.p99} ms, connect p50 ${c.p50} p99 ${c.p99} ms`);
' "$variant" "$run" "$((after - before))" "$work/report.json"
    done
done
