/**
 * `Room`: what a callback may do, over the contract's host imports (`host`,
 * `directory`, `auth`, and `storage` when the service was built with it). Host refusals become `HostError`s; the conversions
 * between the service's values (JSON, strings) and the contract's bytes
 * and records live here.
 */

import { HostError, refusal } from './errors.js';
import { toFrame } from './message.js';
import { clientInfo } from './client.js';
import { random53 } from './globals.js';
import { Storage, missingStorage } from './storage.js';
import { utf8Decode, utf8Encode } from './utf8.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** The room a callback runs in. */
export class Room {
  /**
   * @param {{ host: any, directory: any, auth: any, storage?: any }} imports
   *   the contract's imports (the engine's, or the test harness's)
   * @param {{ roomId: string, lobby: boolean }} info
   */
  constructor(imports, info) {
    this.#imports = imports;
    this.id = info.roomId;
    this.isLobby = info.lobby;
  }

  #imports;
  #storage = null;

  /** The room's durable storage (see `Storage`). */
  get storage() {
    if (this.#storage === null) {
      if (!this.#imports.storage) throw missingStorage();
      this.#storage = new Storage(this.#imports.storage);
    }
    return this.#storage;
  }

  /** Sends a frame (`Message`, string or bytes) to a client of the service. */
  send(client, message) {
    try {
      this.#imports.host.send(client, toFrame(message));
    } catch (error) {
      throw new HostError('send', 'frame-too-large', String(refusal(error)));
    }
  }

  /** Sends `value` as a JSON text frame. */
  sendJson(client, value) {
    this.send(client, JSON.stringify(value));
  }

  /** Sends a frame to every client of the room except those in `except`. */
  broadcast(message, except = []) {
    try {
      this.#imports.host.broadcast(toFrame(message), Array.from(except));
    } catch (error) {
      throw new HostError('broadcast', 'frame-too-large', String(refusal(error)));
    }
  }

  /** Broadcasts `value` as a JSON text frame. */
  broadcastJson(value, except = []) {
    this.broadcast(JSON.stringify(value), except);
  }

  /** Closes a client's connection (code 1000 or 3000..=4999). */
  close(client, code, reason = '') {
    this.#imports.host.close(client, code, String(reason));
  }

  /** Schedules `timer(id)` in `delayMs` milliseconds, replacing a pending one. */
  setTimer(id, delayMs) {
    try {
      this.#imports.host.setTimer(id, Math.max(0, Math.floor(delayMs)));
    } catch (error) {
      throw new HostError('setTimer', 'too-many-timers', String(refusal(error)));
    }
  }

  /** Cancels a pending timer; unknown ids are ignored. */
  cancelTimer(id) {
    this.#imports.host.cancelTimer(id);
  }

  /** Wall-clock milliseconds since the Unix epoch (the host's clock). */
  nowMs() {
    return this.#imports.host.nowMs();
  }

  /** A random integer below 2^53 from the host's secure generator. */
  random() {
    return random53(this.#imports.host);
  }

  /** Writes a line to the host's log, tagged with the room. */
  log(level, message) {
    if (!LEVELS.includes(level)) throw new TypeError(`log level must be one of ${LEVELS.join(', ')}`);
    this.#imports.host.log(level, String(message));
  }

  debug(message) {
    this.log('debug', message);
  }

  info(message) {
    this.log('info', message);
  }

  warn(message) {
    this.log('warn', message);
  }

  error(message) {
    this.log('error', message);
  }

  /** Sets the room's listing metadata (any JSON value), shown by `GET /rooms`. */
  setInfo(value) {
    try {
      this.#imports.host.setInfo(JSON.stringify(value));
    } catch (error) {
      throw new HostError('setInfo', 'invalid-info', String(refusal(error)));
    }
  }

  /** The room's clients, ascending. */
  clients() {
    return Array.from(this.#imports.host.clients());
  }

  /** How a client of this room connected; `null` when it is not a member. */
  client(client) {
    const details = this.#imports.host.clientDetails(client);
    return details === null || details === undefined ? null : clientInfo(details);
  }

  /** The JSON state attached to a client (`null`: unset or not a member). */
  clientState(client) {
    const bytes = this.clientStateBytes(client);
    return bytes === null || bytes.length === 0 ? null : JSON.parse(utf8Decode(bytes));
  }

  /** Attaches JSON state to a client of this room (bounded by the host). */
  setClientState(client, value) {
    this.setClientStateBytes(client, utf8Encode(JSON.stringify(value)));
  }

  /** The raw state attached to a client; `null` when it is not a member. */
  clientStateBytes(client) {
    const bytes = this.#imports.host.clientState(client);
    return bytes === undefined ? null : bytes;
  }

  /** Attaches raw state to a client of this room. */
  setClientStateBytes(client, bytes) {
    try {
      this.#imports.host.setClientState(client, bytes);
    } catch (error) {
      const payload = refusal(error);
      const limit = payload.tag === 'too-large' ? payload.val : null;
      const message =
        payload.tag === 'too-large'
          ? `the state is larger than the host's limit of ${limit} bytes`
          : 'the client is not a member of this room';
      throw new HostError('setClientState', payload.tag, message, limit);
    }
  }

  /**
   * Moves a client to room `room` of the service (`null`: the lobby) with
   * `data` (bytes or a string) for the target's `connect`. `create: false`
   * fails when the room is not live.
   */
  transfer(client, room, data = new Uint8Array(0), { create = true } = {}) {
    const bytes = typeof data === 'string' ? utf8Encode(data) : data;
    try {
      this.#imports.directory.transfer(client, room, bytes, create);
    } catch (error) {
      const payload = refusal(error);
      const limit = payload.tag === 'invalid-room-id' ? payload.val : null;
      throw new HostError('transfer', payload.tag, TRANSFER_MESSAGES[payload.tag] ?? payload.tag, limit);
    }
  }

  /** The service's live rooms (the lobby excluded), `info` parsed. */
  rooms() {
    return Array.from(this.#imports.directory.rooms(), (entry) => ({
      roomId: entry.roomId,
      clients: entry.clients,
      info: JSON.parse(entry.info),
    }));
  }

  /** Lobby only, during `init`: claims the server root `/`. */
  serveRoot() {
    try {
      this.#imports.directory.serveRoot();
    } catch (error) {
      throw new HostError('serveRoot', 'root-taken', String(refusal(error)));
    }
  }

  /** Whether the host has a token key configured. */
  authEnabled() {
    return this.#imports.auth.enabled();
  }

  /** Verifies a JSON Web Token with the host's keys; returns its claims. */
  verifyToken(token) {
    try {
      return JSON.parse(this.#imports.auth.verifyToken(String(token)));
    } catch (error) {
      if (error instanceof SyntaxError) throw error;
      throw new HostError('verifyToken', 'auth', String(refusal(error)));
    }
  }
}

const TRANSFER_MESSAGES = {
  'not-a-member': 'the client is not a member of this room',
  'same-room': 'the client is already in that room',
  'invalid-room-id': 'the room id is empty or too long',
  'no-such-room': 'no such room is live',
  'no-lobby': 'the service has no lobby',
  unavailable: 'the room is not attached to a room table',
};
