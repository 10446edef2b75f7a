/**
 * The values a service and the host exchange when something is refused:
 * `Rejection` (a service refusing a client) and `HostError` (the host
 * refusing a call), plus reading the error payload the engine attaches to
 * a failed host call.
 */

/** Why `connect` refused a client: return or throw one. */
export class Rejection {
  /**
   * @param {string} reason the close reason (cut to 123 bytes on the wire)
   * @param {number | null} [code] a close code in 4000..=4999; `null`: 1008
   */
  constructor(reason, code = null) {
    this.reason = String(reason);
    this.code = code;
  }

  /** A rejection with a close code in 4000..=4999. */
  static withCode(code, reason) {
    return new Rejection(reason, code);
  }

  toString() {
    return this.code === null ? this.reason : `${this.code}: ${this.reason}`;
  }
}

/**
 * A host call that was refused. `kind` names the case (`frame-too-large`,
 * `too-many-timers`, `invalid-info`, `not-a-member`, `same-room`,
 * `invalid-room-id`, `no-such-room`, `no-lobby`, `unavailable`,
 * `too-large`, `root-taken`, `auth`); `limit` carries the host's bound when
 * the case has one.
 */
export class HostError extends Error {
  constructor(call, kind, message, limit = null) {
    super(`${call}: ${message}`);
    this.name = 'HostError';
    this.call = call;
    this.kind = kind;
    this.limit = limit;
  }
}

/**
 * The `err` payload of a host call that failed: the engine throws an error
 * carrying it as `payload`. Anything else is not a refusal and is rethrown.
 */
export function refusal(error) {
  if (error !== null && typeof error === 'object' && 'payload' in error) return error.payload;
  throw error;
}
