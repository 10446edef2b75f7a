/**
 * The test harness's model of a room's stored data: the host's
 * `roomhost_rules::storage::RoomStore` (rules/src/storage.rs) in
 * JavaScript, since Node cannot link the Rust one. Same caps, same order
 * of checks, same all-or-none batches, the same paging of `list`, and the
 * same bound on one event's pending changes (twice the room's cap, which
 * the host reports to a plugin as `room-full`). Refusals are thrown as the
 * engine throws a failed `result` import: an error whose `payload` is the
 * contract's `storage-error`. `test/storage.test.mjs` pins the behaviour to
 * the Rust store's documented cases; the end-to-end tests run a TypeScript
 * room against the real one.
 */

/** The host's default caps (rules/src/limits.rs). */
export const STORAGE_LIMITS = Object.freeze({
  maxKeyBytes: 2 * 1024,
  maxValueBytes: 1024 * 1024,
  maxRoomBytes: 32 * 1024 * 1024,
});

/** The most entries and bytes one `list` page holds (rules/src/limits.rs). */
const MAX_LIST_ENTRIES = 1000;
const MAX_LIST_BYTES = 4 * 1024 * 1024;

/**
 * Bytes as a string of code units 0..=255: a Map key, and one whose string
 * order is the bytes' order (what the host's BTreeMap of keys sorts by).
 */
function id(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 1) text += String.fromCharCode(bytes[i]);
  return text;
}

/** A refusal as the engine reports a failed `result` import. */
function refused(tag, size, limit) {
  const error = new Error(`storage: ${tag} (${size} > ${limit})`);
  error.payload = { tag, val: { size, limit } };
  return error;
}

export class TestStore {
  /**
   * @param {{ maxKeyBytes: number, maxValueBytes: number, maxRoomBytes: number }} limits
   * @param {Iterable<[Uint8Array, Uint8Array]>} entries what the room holds when it starts
   */
  constructor(limits, entries = []) {
    this.limits = limits;
    for (const [key, value] of entries) {
      this.#entries.set(id(key), { key, value });
      this.#bytes += key.length + value.length;
    }
  }

  /** id(key) -> { key, value } */
  #entries = new Map();
  #bytes = 0;
  /** id(key) -> the bytes of the change awaiting the commit. */
  #changes = new Map();
  #pending = 0;
  /** Durable timers: id -> due time (Unix ms). */
  timers = new Map();

  /** A copy, as the host's bytes are: a service changing it changes nothing stored. */
  get(key) {
    return this.#entries.get(id(key))?.value.slice() ?? null;
  }

  /** The bytes stored, keys plus values. */
  get bytes() {
    return this.#bytes;
  }

  /** Every entry, in key order: `[key, value]`. */
  entries() {
    return [...this.#entries.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, { key, value }]) => [key, value]);
  }

  put(key, value) {
    this.batch([{ tag: 'put', val: { key, value } }]);
  }

  delete(key) {
    const name = id(key);
    const entry = this.#entries.get(name);
    if (entry === undefined) return false;
    this.#entries.delete(name);
    this.#bytes -= key.length + entry.value.length;
    this.#record(name, key.length);
    return true;
  }

  /** The contract's writes, all or none: every one is checked before any applies. */
  batch(writes) {
    const after = this.#check(writes);
    for (const write of writes) {
      if (write.tag === 'put') {
        // Copies: the host copies the bytes out of the guest's memory.
        const key = write.val.key.slice();
        const value = write.val.value.slice();
        const name = id(key);
        this.#entries.set(name, { key, value });
        this.#record(name, key.length + value.length);
      } else {
        const name = id(write.val);
        if (this.#entries.delete(name)) this.#record(name, write.val.length);
      }
    }
    this.#bytes = after;
  }

  /** Records a change awaiting the commit, keeping `pending` in step (a key changed twice counts once). */
  #record(name, size) {
    this.#pending += size - (this.#changes.get(name) ?? 0);
    this.#changes.set(name, size);
  }

  /** The room's total after `writes`, or the refusal (the rules' `check`). */
  #check(writes) {
    const sizes = new Map();
    let total = this.#bytes;
    for (const write of writes) {
      let key;
      let size = null;
      if (write.tag === 'put') {
        ({ key } = write.val);
        const { value } = write.val;
        if (key.length > this.limits.maxKeyBytes) throw refused('key-too-large', key.length, this.limits.maxKeyBytes);
        if (value.length > this.limits.maxValueBytes) {
          throw refused('value-too-large', value.length, this.limits.maxValueBytes);
        }
        size = key.length + value.length;
      } else {
        key = write.val;
      }
      const name = id(key);
      const stored = this.#entries.get(name);
      const old = sizes.has(name) ? sizes.get(name) : stored === undefined ? null : key.length + stored.value.length;
      total = total - (old ?? 0) + (size ?? 0);
      sizes.set(name, size);
    }
    if (total > this.limits.maxRoomBytes && total > this.#bytes) {
      throw refused('room-full', total, this.limits.maxRoomBytes);
    }
    // An upper bound, as the rules count it: writes replacing pending changes count whole.
    let pending = this.#pending;
    for (const write of writes) {
      pending += write.tag === 'put' ? write.val.key.length + write.val.value.length : write.val.length;
    }
    const limit = this.limits.maxRoomBytes * 2;
    if (pending > limit) throw refused('room-full', pending, limit);
    return total;
  }

  /** A page of `list-prefix`: at most `limit` (0: 1,000) entries and about 4 MiB. */
  list(prefix, startAfter, limit) {
    const max = limit === 0 ? MAX_LIST_ENTRIES : Math.min(limit, MAX_LIST_ENTRIES);
    const start = id(prefix);
    const after = startAfter === null ? null : id(startAfter);
    const page = [];
    let bytes = 0;
    for (const [key, value] of this.entries()) {
      const name = id(key);
      if (after !== null && after >= start ? name <= after : name < start) continue;
      if (!name.startsWith(start) || page.length === max) break;
      bytes += key.length + value.length;
      if (bytes > MAX_LIST_BYTES && page.length > 0) break;
      page.push({ key: key.slice(), value: value.slice() });
    }
    return page;
  }

  /** The commit after an event: what awaited it is durable. */
  commit() {
    this.#changes.clear();
    this.#pending = 0;
  }
}
