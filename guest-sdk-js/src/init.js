/**
 * How a room starts: `InitInfo` (the contract's `init-info` with the
 * configuration parsed on demand) and `Snapshot` (the bytes an earlier
 * version saved, read back as text or JSON).
 */

import { utf8Decode, utf8Encode } from './utf8.js';

export class InitInfo {
  constructor(raw) {
    this.roomId = raw.roomId;
    this.lobby = raw.lobby;
    this.config = raw.config;
  }

  /** The service's configuration parsed (`null` when none was given); throws `SyntaxError`. */
  configJson() {
    return JSON.parse(this.config);
  }
}

/** The state an earlier instance of the room saved with `snapshot()`. */
export class Snapshot {
  constructor(bytes) {
    this.bytes = bytes;
  }

  /** The snapshot as UTF-8 text. */
  text() {
    return utf8Decode(this.bytes);
  }

  /** The snapshot parsed as JSON; throws `SyntaxError`. */
  json() {
    return JSON.parse(this.text());
  }
}

/** What `snapshot()` returned, as the contract's bytes (`null`: no snapshot). */
export function snapshotBytes(value) {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return utf8Encode(value);
  return utf8Encode(JSON.stringify(value));
}
