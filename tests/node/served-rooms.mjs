// Rooms held by a real server: opens ROOMS rooms of the server's only
// service, one WebSocket client each (sequentially), and prints the
// server's RSS and PSS growth per room and the open time per room (the
// client's handshake and first frame included). Used by bench/languages.sh.
//
//   node served-rooms.mjs PORT ROOMS SERVER_PID

import WebSocket from 'ws';
import { readFileSync } from 'node:fs';

const [port, rooms, pid] = process.argv.slice(2);
const count = Number(rooms);

function memory() {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name) => Number(rollup.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))[1]);
  return { rss: field('Rss'), pss: field('Pss') };
}

function open(room) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/${room}`);
  return new Promise((resolve, reject) => {
    ws.once('message', () => resolve(ws));
    ws.on('error', reject);
    ws.on('close', (code, reason) => reject(new Error(`room ${room} closed: ${code} ${reason}`)));
  });
}

const held = [await open('warm-up')];
await new Promise((resolve) => setTimeout(resolve, 300));
const before = memory();
const started = performance.now();
for (let i = 0; i < count; i++) held.push(await open(`room-${i}`));
const openMs = (performance.now() - started) / count;
await new Promise((resolve) => setTimeout(resolve, 1000));
const after = memory();
const listed = await (await fetch(`http://127.0.0.1:${port}/rooms`)).json();
console.log(
  JSON.stringify({
    live_rooms: listed.length,
    rss_kib_per_room: Math.round((after.rss - before.rss) / count),
    pss_kib_per_room: Math.round((after.pss - before.pss) / count),
    open_ms_per_room: Number(openMs.toFixed(2)),
    server_pss_mib: Math.round(after.pss / 1024),
  }),
);
process.exit(0);
