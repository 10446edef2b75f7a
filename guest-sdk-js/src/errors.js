/**
 * The values a service and the host exchange when something is refused:
 * `Rejection` (a service refusing a client), `HostError` (the host
 * refusing a call) and its `StorageError` (a refused storage write), plus
 * reading the error payload the engine attaches to a failed host call.
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
 * `too-large`, `root-taken`, `auth`; the storage refusals are
 * `StorageError`s); `limit` carries the host's bound when
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

/** Why a write was refused; what each case of the contract's `storage-error` says. */
export const STORAGE_REFUSALS = {
  'key-too-large': ({ size, limit }) => `storage key is ${size} bytes; the limit is ${limit} (max_storage_key_bytes)`,
  'value-too-large': ({ size, limit }) =>
    `storage value is ${size} bytes; the limit is ${limit} (max_storage_value_bytes)`,
  'room-full': ({ size, limit }) =>
    `the room would store ${size} bytes; the limit is ${limit} (max_room_storage_bytes); nothing was written`,
};

/**
 * A write the host refused; nothing was written. `kind` is
 * `key-too-large`, `value-too-large` or `room-full`; `size` is the key's or
 * value's length, or what the room would store after the write; `limit`
 * the host's bound, both in bytes.
 */
export class StorageError extends HostError {
  constructor(call, kind, size, limit) {
    const message = STORAGE_REFUSALS[kind] ?? (() => kind);
    super(call, kind, message({ size, limit }), limit);
    this.name = 'StorageError';
    this.size = size;
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
