/**
 * `Storage`: a room's durable key-value data (`room.storage`), over the
 * contract's `storage` import. Keys and values are bytes; strings are
 * stored as UTF-8, and the JSON helpers store `JSON.stringify` text. A
 * refused write throws a `StorageError` (a `HostError` with the size and
 * the host's limit) and changes nothing.
 *
 * A service built without the `storage` import (the build leaves it out
 * when the service's code never mentions `storage`, so that its rooms skip
 * the host's output gate) has no `storage` in its imports; using it then
 * throws an error saying so instead of failing inside the engine.
 */

import { HostError, StorageError, STORAGE_REFUSALS, refusal } from './errors.js';
import { utf8Decode, utf8Encode } from './utf8.js';

/** A stored key or value as the contract's bytes: a string is UTF-8. */
export function storageBytes(value, what) {
  if (typeof value === 'string') return utf8Encode(value);
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`a storage ${what} is a string or a Uint8Array`);
}

/** The `StorageError` for a failed `put`/`batch`; anything else is rethrown. */
function storageError(call, error) {
  const payload = refusal(error);
  if (payload === null || typeof payload !== 'object' || !(payload.tag in STORAGE_REFUSALS)) throw error;
  return new StorageError(call, payload.tag, payload.val?.size ?? 0, payload.val?.limit ?? 0);
}

/** One stored entry: `key` and `value` as bytes, with readers for text and JSON. */
export class StorageEntry {
  constructor(key, value) {
    this.key = key;
    this.value = value;
  }

  /** The key as UTF-8 text. */
  keyText() {
    return utf8Decode(this.key);
  }

  /** The value as UTF-8 text. */
  text() {
    return utf8Decode(this.value);
  }

  /** The value parsed as JSON; throws `SyntaxError`. */
  json() {
    return JSON.parse(utf8Decode(this.value));
  }
}

/** The contract's `write` for one write of `batch`. */
function toWrite(write) {
  if (write === null || typeof write !== 'object') throw new TypeError('a batch write is an object');
  const key = storageBytes(write.key, 'key');
  switch (write.op) {
    case 'put': {
      const value = 'json' in write ? utf8Encode(JSON.stringify(write.json)) : storageBytes(write.value, 'value');
      return { tag: 'put', val: { key, value } };
    }
    case 'delete':
      return { tag: 'delete', val: key };
    default:
      throw new TypeError(`a batch write's op is 'put' or 'delete', not ${JSON.stringify(write.op)}`);
  }
}

/** A room's durable storage; `room.storage` hands it out. */
export class Storage {
  /** @param {any} imports the contract's `storage` interface (the engine's, or the harness's) */
  constructor(imports) {
    this.#storage = imports;
  }

  #storage;

  /** The value stored under `key` (a string or bytes); `null` when absent. */
  get(key) {
    const value = this.#storage.get(storageBytes(key, 'key'));
    return value === null || value === undefined ? null : value;
  }

  /** The value under `key` as UTF-8 text; `null` when absent. */
  getText(key) {
    const value = this.get(key);
    return value === null ? null : utf8Decode(value);
  }

  /** The JSON value under `key`, parsed; `null` when absent. Throws `SyntaxError` when it is not JSON. */
  getJson(key) {
    const value = this.get(key);
    return value === null ? null : JSON.parse(utf8Decode(value));
  }

  /** Stores `value` (a string as UTF-8, or bytes) under `key`; throws `StorageError` over a cap. */
  put(key, value) {
    const bytes = [storageBytes(key, 'key'), storageBytes(value, 'value')];
    try {
      this.#storage.put(...bytes);
    } catch (error) {
      throw storageError('put', error);
    }
  }

  /** Stores `value` as JSON text under `key`. */
  putJson(key, value) {
    const text = JSON.stringify(value);
    // `JSON.stringify` returns undefined for undefined and functions: storing
    // "undefined" would make the key unreadable by `getJson`.
    if (text === undefined) throw new TypeError(`putJson: ${typeof value} is not a JSON value`);
    this.put(key, text);
  }

  /** Removes `key`; whether it was there. */
  delete(key) {
    return this.#storage.delete(storageBytes(key, 'key'));
  }

  /**
   * Applies `writes` in order, all or none: `{ op: 'put', key, value }`
   * (or `json` instead of `value`) and `{ op: 'delete', key }`. Every cap is
   * checked before anything changes.
   */
  batch(writes) {
    const converted = Array.from(writes, toWrite);
    try {
      this.#storage.batch(converted);
    } catch (error) {
      throw storageError('batch', error);
    }
  }

  /**
   * Entries whose key starts with `prefix`, in key order, after
   * `startAfter` when given: at most `limit` (0, the default: the maximum,
   * 1,000) and about 4 MiB. Page on with the last key returned; an empty
   * page means there are no more.
   */
  list(prefix = '', { startAfter = null, limit = 0 } = {}) {
    const after = startAfter === null || startAfter === undefined ? null : storageBytes(startAfter, 'key');
    const clamped = Math.min(Math.max(0, Math.floor(limit)), 0xffffffff);
    return Array.from(
      this.#storage.listPrefix(storageBytes(prefix, 'key'), after, clamped),
      (entry) => new StorageEntry(entry.key, entry.value),
    );
  }

  /**
   * Every entry whose key starts with `prefix`, page by page. Bounded by
   * what a room may store (`max_room_storage_bytes`).
   */
  listAll(prefix = '') {
    const all = [];
    for (;;) {
      const page = this.list(prefix, { startAfter: all.length > 0 ? all[all.length - 1].key : null });
      if (page.length === 0) return all;
      all.push(...page);
    }
  }

  /** The bytes the room stores, keys plus values. */
  size() {
    return this.#storage.size();
  }

  /**
   * Schedules `timer(id)` in `delayMs` like `room.setTimer`, and stores it
   * with the room's data: it survives restarts, and a host that starts after
   * its time fires it at once (waking the room). `room.cancelTimer` cancels
   * it; an ordinary `setTimer` on the same id replaces it.
   */
  setDurableTimer(id, delayMs) {
    try {
      this.#storage.setDurableTimer(id, Math.max(0, Math.floor(delayMs)));
    } catch (error) {
      throw new HostError('setDurableTimer', 'too-many-timers', String(refusal(error)));
    }
  }
}

/** What `room.storage` gives a service built without the `storage` import. */
export function missingStorage() {
  return new Error(
    'room.storage: this service was built without storage (the build adds it when the ' +
      "service's code mentions `storage`; set \"roomhost\": { \"storage\": true } in package.json to force it)",
  );
}
