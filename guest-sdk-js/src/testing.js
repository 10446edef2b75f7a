/**
 * `TestRoom`: runs a service under Node without wasm, like the Rust SDK's
 * `TestRoom`. It plays the host: the contract's imports are fakes that
 * record what the service sends, closes, schedules and transfers, and a
 * virtual clock fires timers. The calls go through the same export the
 * component uses (`exportService`), so the SDK's conversions are the ones
 * under test. The host's size limits on frames, timers and client state
 * are not applied here (the end-to-end tests run those against the real
 * host); storage's caps are, through `TestStore`, the model of the host's
 * store. `restart()` plays a host restart over the room's storage.
 */

import { exportService, INSTANCE } from './export.js';
import { Message, toFrame } from './message.js';
import { utf8Decode, utf8Encode } from './utf8.js';
import { storageBytes } from './storage.js';
import { STORAGE_LIMITS, TestStore } from './test-store.js';

/** The virtual clock's start: 2024-01-01T00:00:00Z. */
export const DEFAULT_START_MS = 1_704_067_200_000;

/** A failed host call as the engine reports it: an error carrying `payload`. */
function refused(payload) {
  const error = new Error(typeof payload === 'string' ? payload : JSON.stringify(payload));
  error.payload = payload;
  return error;
}

export class TestRoom {
  /**
   * @param service a service class, or `lobbyAndRooms(Lobby, Room)`
   * @param options `roomId`, `lobby`, `config` (a JSON value), `startMs`;
   *   `stored` (what the room's storage holds when it starts: an object of
   *   key to value, or `[key, value]` pairs; strings or bytes),
   *   `maxRoomStorageBytes`, `maxStorageKeyBytes`, `maxStorageValueBytes`
   *   (the host's caps, default the host's defaults)
   */
  constructor(
    service,
    {
      roomId = 'test-room',
      lobby = false,
      config = null,
      startMs = DEFAULT_START_MS,
      stored = [],
      maxRoomStorageBytes = STORAGE_LIMITS.maxRoomBytes,
      maxStorageKeyBytes = STORAGE_LIMITS.maxKeyBytes,
      maxStorageValueBytes = STORAGE_LIMITS.maxValueBytes,
    } = {},
  ) {
    this.#service = service;
    this.#roomId = lobby ? '' : roomId;
    this.#lobby = lobby;
    this.#config = JSON.stringify(config);
    this.#now = startMs;
    const pairs = Array.isArray(stored) ? stored : Object.entries(stored);
    this.#store = new TestStore(
      { maxKeyBytes: maxStorageKeyBytes, maxValueBytes: maxStorageValueBytes, maxRoomBytes: maxRoomStorageBytes },
      pairs.map(([key, value]) => [storageBytes(key, 'key'), storageBytes(value, 'value')]),
    );
    this.#start(null);
    this.#store.commit();
  }

  #service;
  #roomId;
  #lobby;
  #config;
  #now;
  #export = null;
  #nextClient = 1;
  #members = new Map();
  #sent = [];
  #closed = [];
  #logs = [];
  #info = null;
  #timers = new Map();
  #transfers = [];
  #kicks = [];
  #rooms = [];
  #auth = null;
  #rootServed = false;
  #tokens = 0;
  #store;

  /** The contract's imports, recording into this harness. */
  #imports() {
    const members = this.#members;
    return {
      host: {
        send: (client, frame) => {
          this.#sent.push([client, Message.fromFrame(frame)]);
        },
        broadcast: (frame, except) => {
          for (const client of members.keys()) {
            if (!except.includes(client)) this.#sent.push([client, Message.fromFrame(frame)]);
          }
        },
        close: (client, code, reason) => {
          if (!members.has(client)) return;
          this.#closed.push({ client, code, reason });
          this.#kicks.push(client);
        },
        setTimer: (id, delayMs) => {
          this.#timers.set(id, this.#now + delayMs);
          // As on the host: an ordinary timer replaces a durable one.
          this.#store.timers.delete(id);
        },
        cancelTimer: (id) => {
          this.#timers.delete(id);
          this.#store.timers.delete(id);
        },
        nowMs: () => this.#now,
        random: () => Math.floor(Math.random() * 2 ** 53),
        log: (level, message) => {
          this.#logs.push({ level, message });
        },
        setInfo: (info) => {
          try {
            this.#info = JSON.parse(info);
          } catch (error) {
            throw refused(`room info is not valid JSON: ${error.message}`);
          }
        },
        clients: () => [...members.keys()].sort((a, b) => a - b),
        clientDetails: (client) => {
          const member = members.get(client);
          return member ? { ...member.info, handoff: null } : null;
        },
        clientState: (client) => members.get(client)?.state ?? null,
        setClientState: (client, state) => {
          const member = members.get(client);
          if (!member) throw refused({ tag: 'not-a-member' });
          member.state = state;
        },
      },
      directory: {
        transfer: (client, room, data, create) => {
          if (!members.has(client)) throw refused({ tag: 'not-a-member' });
          if (room === null ? this.#lobby : room === this.#roomId) throw refused({ tag: 'same-room' });
          if (room === '') throw refused({ tag: 'invalid-room-id', val: 256 });
          if (room !== null && !create && !this.#rooms.some((entry) => entry.roomId === room)) {
            throw refused({ tag: 'no-such-room' });
          }
          this.#transfers.push({ client, room, data, create });
        },
        rooms: () => this.#rooms.map((entry) => ({ ...entry, info: JSON.stringify(entry.info ?? null) })),
        serveRoot: () => {
          if (!this.#lobby) throw refused('only the lobby may serve the root');
          this.#rootServed = true;
        },
      },
      storage: {
        get: (key) => this.#store.get(key),
        put: (key, value) => this.#store.put(key, value),
        delete: (key) => this.#store.delete(key),
        batch: (writes) => this.#store.batch(writes),
        listPrefix: (prefix, startAfter, limit) => this.#store.list(prefix, startAfter, limit),
        size: () => this.#store.bytes,
        setDurableTimer: (id, delayMs) => {
          this.#timers.set(id, this.#now + delayMs);
          this.#store.timers.set(id, this.#now + delayMs);
        },
      },
      auth: {
        enabled: () => this.#auth !== null,
        verifyToken: (token) => {
          if (this.#auth === null) throw refused('no token key is configured');
          const claims = this.#auth(token);
          if (claims === null || claims === undefined) throw refused('invalid token');
          return JSON.stringify(claims);
        },
      },
    };
  }

  /** Starts an instance: fresh, or from `restored` bytes. */
  #start(restored) {
    this.#export = exportService(this.#service, this.#imports());
    this.#export.describe();
    this.#export.init({ roomId: this.#roomId, lobby: this.#lobby, config: this.#config, restored });
  }

  /**
   * What the host does after each callback: kicked clients leave, and the
   * event's writes commit (here: the bound on pending changes starts over).
   */
  #after() {
    while (this.#kicks.length > 0) {
      const client = this.#kicks.shift();
      if (this.#members.delete(client)) this.#export.disconnect(client, 'kicked');
    }
    this.#store.commit();
  }

  /** The service instance. */
  get service() {
    return this.#export[INSTANCE]();
  }

  /** Whether the service declares a lobby. */
  get hasLobby() {
    return this.#export.describe().lobby;
  }

  /** Connects a client with `query`; throws when `connect` rejects it. */
  connect(query = '', options = {}) {
    const result = this.tryConnect(query, options);
    if (result.rejection) {
      throw new Error(`connect rejected the client: ${result.rejection.reason} (${result.rejection.code ?? 1008})`);
    }
    return result.id;
  }

  /**
   * Connects a client; `{ id }` when accepted, `{ rejection: { code, reason } }`
   * when not. Options: `identity`, `claims` (an object), `readOnly`,
   * `handoff` (`{ fromRoom, data, rejected }`), `path`.
   */
  tryConnect(query = '', { identity = null, claims = null, readOnly = false, handoff = null, path } = {}) {
    const id = this.#nextClient++;
    const grace = this.#export.describe().reconnectGraceMs;
    const info = {
      id,
      path: path ?? (this.#lobby ? '/ws' : `/ws/${this.#roomId}`),
      query,
      identity,
      handoff: handoff && {
        fromRoom: handoff.fromRoom ?? null,
        data: typeof handoff.data === 'string' ? utf8Encode(handoff.data) : (handoff.data ?? new Uint8Array(0)),
        rejected: handoff.rejected ?? null,
      },
      claims: claims === null ? null : JSON.stringify(claims),
      readOnly,
      resumeToken: grace > 0 ? `resume-${id}-0` : null,
    };
    this.#members.set(id, { info, state: new Uint8Array(0) });
    const transfersBefore = this.#transfers.length;
    try {
      this.#export.connect(info);
    } catch (error) {
      if (error instanceof Error) throw error;
      this.#members.delete(id);
      this.#transfers.length = transfersBefore;
      return { rejection: error };
    }
    this.#after();
    return { id };
  }

  /** A frame from `client`: a `Message`, a string (text) or bytes (binary). */
  message(client, data) {
    this.#export.message(client, toFrame(data));
    this.#after();
  }

  /** `client` leaves (`closed` by default). */
  disconnect(client, reason = 'closed') {
    if (!this.#members.delete(client)) return;
    this.#export.disconnect(client, reason);
    this.#after();
  }

  /** `client`'s connection was lost and the service allows reconnection. */
  suspend(client) {
    this.#export.disconnect(client, 'suspended');
    this.#after();
  }

  /** A suspended `client` comes back; returns its next resume token. */
  reconnect(client) {
    const token = `resume-${client}-${++this.#tokens}`;
    this.#export.reconnect(client, token);
    this.#after();
    return token;
  }

  /** Advances the virtual clock, firing due timers in order. */
  advance(ms) {
    const until = this.#now + ms;
    for (;;) {
      let next = null;
      for (const [id, at] of this.#timers) {
        if (at <= until && (next === null || at < next[1])) next = [id, at];
      }
      if (next === null) break;
      this.#timers.delete(next[0]);
      // A durable timer that fired is done, as on the host.
      this.#store.timers.delete(next[0]);
      this.#now = next[1];
      this.#export.timer(next[0]);
      this.#after();
    }
    this.#now = until;
  }

  /** The virtual clock. */
  get nowMs() {
    return this.#now;
  }

  /** Pending timers: `[id, ms until due]`, soonest first. */
  pendingTimers() {
    return [...this.#timers].map(([id, at]) => [id, at - this.#now]).sort((a, b) => a[1] - b[1]);
  }

  /** The frames sent to `client` since the last take. */
  takeSent(client) {
    const mine = this.#sent.filter(([to]) => to === client).map(([, message]) => message);
    this.#sent = this.#sent.filter(([to]) => to !== client);
    return mine;
  }

  /** The frames sent to `client`, parsed as JSON. */
  takeSentJson(client) {
    return this.takeSent(client).map((message) => message.json());
  }

  /** Every frame sent since the last take: `[client, Message]`. */
  takeAll() {
    const all = this.#sent;
    this.#sent = [];
    return all;
  }

  /** Clients the service closed: `{ client, code, reason }`. */
  get closed() {
    return this.#closed;
  }

  /** The room's listing metadata (parsed), `null` until set. */
  get info() {
    return this.#info;
  }

  /** Log lines: `{ level, message }`. */
  get logs() {
    return this.#logs;
  }

  /** The room's clients, ascending. */
  clients() {
    return [...this.#members.keys()].sort((a, b) => a - b);
  }

  /** Transfers asked for since the last take: `{ client, room, data, create }`. */
  takeTransfers() {
    const transfers = this.#transfers;
    this.#transfers = [];
    for (const { client } of transfers) {
      if (this.#members.delete(client)) this.#export.disconnect(client, 'transferred');
    }
    this.#after();
    return transfers;
  }

  /** Lobby: a room of the service changed (`{ kind: 'updated', roomId, clients, info }` or `{ kind: 'closed', roomId }`). */
  roomChanged(change) {
    const raw =
      change.kind === 'closed'
        ? { tag: 'closed', val: change.roomId }
        : { tag: 'updated', val: { roomId: change.roomId, clients: change.clients, info: JSON.stringify(change.info ?? null) } };
    this.#export.roomChanged(raw);
    this.#after();
  }

  /** What `rooms()` answers: `[{ roomId, clients, info }]`. */
  setRooms(rooms) {
    this.#rooms = rooms;
  }

  /** Token verification: `verify(token)` returns the claims, or `null` to refuse; `null` turns auth off. */
  setAuth(verify) {
    this.#auth = verify;
  }

  /** Whether the lobby claimed the server root. */
  get servedRoot() {
    return this.#rootServed;
  }

  /**
   * An HTTP request to the room: `{ method, path, query, headers, body }`
   * (body a string or bytes). Returns `{ status, headers, body, text(), json() }`.
   */
  request({ method = 'GET', path = '/', query = '', headers = [], body = '' } = {}) {
    const response = this.#export.request({
      method,
      path,
      query,
      headers,
      body: typeof body === 'string' ? utf8Encode(body) : body,
    });
    this.#after();
    return {
      status: response.status,
      headers: response.headers,
      body: response.body,
      text: () => utf8Decode(response.body),
      json: () => JSON.parse(utf8Decode(response.body)),
    };
  }

  /**
   * The room's storage as the service left it: `get(key)`, `getText`,
   * `getJson`, `entries()` (`[key, value]` bytes in key order), `keys()`
   * (as text), `size` (bytes, keys plus values) and `timers()` (durable
   * timers: `[id, dueMs]`).
   */
  get storage() {
    const store = this.#store;
    const get = (key) => store.get(storageBytes(key, 'key'));
    return {
      get,
      getText: (key) => {
        const value = get(key);
        return value === null ? null : utf8Decode(value);
      },
      getJson: (key) => {
        const value = get(key);
        return value === null ? null : JSON.parse(utf8Decode(value));
      },
      entries: () => store.entries(),
      keys: () => store.entries().map(([key]) => utf8Decode(key)),
      get size() {
        return store.bytes;
      },
      timers: () => [...store.timers].sort((a, b) => a[0] - b[0]),
    };
  }

  /**
   * Restarts the room as a host restart (or crash) after its last event
   * would: the service instance, its clients, ordinary timers and info are
   * gone; a new instance starts (`init`) over the room's storage as it
   * was, with its durable timers pending again (one whose time passed fires
   * on the next `advance`, even `advance(0)`). Clients that were connected
   * are no longer members, without `disconnect` (the old process is gone).
   * Throws when `init` fails.
   */
  restart() {
    this.#members.clear();
    this.#kicks = [];
    this.#transfers = [];
    this.#info = null;
    this.#timers = new Map([...this.#store.timers].map(([id, due]) => [id, Math.max(due, this.#now)]));
    this.#start(null);
    this.#after();
  }

  /**
   * A hot reload onto the same service, as `roomhost dev` does: `snapshot`,
   * then a new instance restored from it; without a snapshot, a fresh
   * instance and `connect` replayed for each client (client state kept).
   * Returns `{ restored }`. A failing snapshot or restore throws and keeps
   * the old instance.
   */
  reload() {
    const old = this.#export;
    const bytes = old.snapshot();
    try {
      this.#start(bytes);
    } catch (error) {
      this.#export = old;
      throw new Error(`the new instance failed to ${bytes === null ? 'start' : 'restore the room'}: ${error}`);
    }
    if (bytes === null) {
      for (const [, member] of this.#members) {
        const state = member.state;
        this.#export.connect(member.info);
        member.state = state;
      }
      this.#after();
    }
    return { restored: bytes !== null };
  }
}
