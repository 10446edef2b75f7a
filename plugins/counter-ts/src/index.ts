/**
 * A shared counter per room, in TypeScript: the protocol of the Rust
 * `counter` plugin.
 *
 * Clients send `increment` / `decrement` (or JSON
 * `{"op": "increment" | "decrement", "by": n}` with `n` in
 * `1..=1_000_000`, default 1). After every accepted command the room
 * broadcasts `{"count": n}` to everyone; a new client receives the current
 * `{"count": n}` on connect. Anything else gets `{"error": "..."}` back.
 * Configuration: `{"start": n}` (default 0). The room's listing metadata is
 * `{"count": n}`. The count survives hot reloads (a JSON snapshot).
 */

import {
  type ClientId,
  type ClientInfo,
  InitInfo,
  Message,
  Room,
  Snapshot,
} from '@roomhost/sdk';

/** The largest step a single command may take. */
export const MAX_STEP = 1_000_000;

/** `text` quoted for an error message, cut to 64 characters. */
function quotedPrefix(text: string): string {
  const chars = Array.from(text);
  return chars.length > 64 ? `${JSON.stringify(chars.slice(0, 64).join(''))}...` : JSON.stringify(text);
}

/** Parses a frame into a signed step, or throws the error to send back. */
export function parse(message: Message): number {
  const text = message.text;
  if (text === null) throw new Error('unknown command: binary frames are not supported');
  switch (text.trim()) {
    case 'increment':
      return 1;
    case 'decrement':
      return -1;
  }
  let command: unknown;
  try {
    command = JSON.parse(text);
  } catch {
    throw new Error(`unknown command ${quotedPrefix(text)}`);
  }
  if (typeof command !== 'object' || command === null || typeof (command as { op?: unknown }).op !== 'string') {
    throw new Error(`unknown command ${quotedPrefix(text)}`);
  }
  const { op, by } = command as { op: string; by?: unknown };
  const sign = op === 'increment' ? 1 : op === 'decrement' ? -1 : 0;
  if (sign === 0) throw new Error(`unknown command ${quotedPrefix(op)}`);
  if (by === undefined || by === null) return sign;
  if (typeof by !== 'number' || !Number.isInteger(by) || by < 1 || by > MAX_STEP) {
    throw new Error(`"by" must be an integer from 1 to ${MAX_STEP}`);
  }
  return sign * by;
}

export default class Counter {
  count = 0;

  init(room: Room, info: InitInfo): void {
    const config = info.configJson() as { start?: unknown } | null;
    const start = config?.start;
    if (start !== undefined && !Number.isSafeInteger(start)) {
      room.warn('invalid config, starting at 0: "start" must be an integer');
    } else if (typeof start === 'number') {
      this.count = start;
    }
    room.setInfo({ count: this.count });
  }

  connect(room: Room, client: ClientInfo): void {
    room.sendJson(client.id, { count: this.count });
  }

  message(room: Room, client: ClientId, message: Message): void {
    let step: number;
    try {
      step = parse(message);
    } catch (error) {
      room.sendJson(client, { error: (error as Error).message });
      return;
    }
    // Saturates at the bounds of a safe integer (the Rust counter: i64).
    this.count = Math.max(Number.MIN_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, this.count + step));
    room.broadcastJson({ count: this.count });
    room.setInfo({ count: this.count });
  }

  snapshot(): string {
    return JSON.stringify({ count: this.count });
  }

  static restore(_room: Room, _info: InitInfo, snapshot: Snapshot): Counter {
    const counter = new Counter();
    counter.count = (snapshot.json() as { count: number }).count;
    return counter;
  }
}
