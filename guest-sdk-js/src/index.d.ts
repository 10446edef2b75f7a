// Types of @roomhost/sdk. The contract's records come from `wit-types/`,
// generated from guest-sdk/wit/room.wit (`npm run gen-types`).

/// <reference path="../wit-types/room.d.ts" />

import type * as Wit from 'roomhost:room/types@0.4.0';

/** A client (one WebSocket connection), unique per host process. */
export type ClientId = Wit.ClientId;
/** A timer, named by the service. */
export type TimerId = Wit.TimerId;
/** Why a client left the room. */
export type DisconnectReason = Wit.DisconnectReason;
/** Severity of a log line. */
export type LogLevel = Wit.LogLevel;
/** An HTTP request addressed to the room. */
export type HttpRequest = Wit.HttpRequest;

/** One WebSocket data frame: text or binary. */
export declare class Message {
  readonly kind: 'text' | 'binary';
  static text(text: string): Message;
  static binary(bytes: Uint8Array | ArrayLike<number>): Message;
  /** A text frame holding `value` as JSON. */
  static json(value: unknown): Message;
  readonly isText: boolean;
  readonly isBinary: boolean;
  /** The text of a text frame; `null` for a binary one. */
  readonly text: string | null;
  /** The frame's bytes (a text frame's UTF-8). */
  readonly bytes: Uint8Array;
  /** The frame parsed as JSON; throws `SyntaxError`. */
  json(): unknown;
}

/** What a service sends: a `Message`, a string (text) or bytes (binary). */
export type Outgoing = Message | string | Uint8Array;

/** Why `connect` refused a client: return or throw one. */
export declare class Rejection {
  /** `code`: a close code in 4000..=4999; `null` (default) closes with 1008. */
  constructor(reason: string, code?: number | null);
  static withCode(code: number, reason: string): Rejection;
  readonly reason: string;
  readonly code: number | null;
}

/** A host call that was refused. */
export declare class HostError extends Error {
  readonly call: string;
  readonly kind:
    | 'frame-too-large'
    | 'too-many-timers'
    | 'invalid-info'
    | 'not-a-member'
    | 'same-room'
    | 'invalid-room-id'
    | 'no-such-room'
    | 'no-lobby'
    | 'unavailable'
    | 'too-large'
    | 'root-taken'
    | 'auth'
    | 'key-too-large'
    | 'value-too-large'
    | 'room-full';
  /** The host's bound, for `too-large` and `invalid-room-id`. */
  readonly limit: number | null;
}

/** A storage write the host refused (a key, a value or the room's total over its cap); nothing was written. */
export declare class StorageError extends HostError {
  readonly call: 'put' | 'batch';
  readonly kind: 'key-too-large' | 'value-too-large' | 'room-full';
  /** The key's or value's length, or (`room-full`) what the room would store after the write, in bytes. */
  readonly size: number;
  /** The host's bound, in bytes (`max_storage_key_bytes`, `max_storage_value_bytes`, `max_room_storage_bytes`). */
  readonly limit: number;
}

/** A storage key or value: a string (stored as UTF-8) or bytes. */
export type StorageBytes = string | Uint8Array;

/** One write of `Storage.batch`. */
export type StorageWrite =
  | { op: 'put'; key: StorageBytes; value: StorageBytes }
  /** `json` is stored as `JSON.stringify(json)`. */
  | { op: 'put'; key: StorageBytes; json: unknown }
  | { op: 'delete'; key: StorageBytes };

/** One stored entry, as `Storage.list` returns it. */
export declare class StorageEntry {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  /** The key as UTF-8 text. */
  keyText(): string;
  /** The value as UTF-8 text. */
  text(): string;
  /** The value parsed as JSON; throws `SyntaxError`. */
  json(): unknown;
}

/**
 * A room's durable key-value storage (`room.storage`): byte keys to byte
 * values, kept by the host across restarts and crashes. Reads see every
 * earlier write. The writes of one event commit together once it is
 * handled, and what the event sends reaches clients only after that
 * commit is durable. Caps (host defaults): keys 2 KiB, values 1 MiB, 32 MiB
 * per room, keys plus values; a write over one throws `StorageError` and
 * changes nothing.
 */
export declare class Storage {
  /** The value under `key`; `null` when absent. */
  get(key: StorageBytes): Uint8Array | null;
  /** The value under `key` as UTF-8 text; `null` when absent. */
  getText(key: StorageBytes): string | null;
  /** The JSON value under `key`; `null` when absent. Throws `SyntaxError` when the value is not JSON. */
  getJson<T = unknown>(key: StorageBytes): T | null;
  /** Stores `value` under `key`; throws `StorageError` over a cap. */
  put(key: StorageBytes, value: StorageBytes): void;
  /** Stores `JSON.stringify(value)` under `key`; throws `StorageError` over a cap, `TypeError` for a value JSON cannot hold. */
  putJson(key: StorageBytes, value: unknown): void;
  /** Removes `key`; whether it was there. */
  delete(key: StorageBytes): boolean;
  /** Applies `writes` in order, all or none; throws `StorageError` (nothing written). */
  batch(writes: Iterable<StorageWrite>): void;
  /**
   * Entries whose key starts with `prefix`, in key order, after `startAfter`:
   * at most `limit` (0, the default: 1,000) and about 4 MiB. Page on with the
   * last key returned; an empty page means there are no more.
   */
  list(prefix?: StorageBytes, options?: { startAfter?: StorageBytes | null; limit?: number }): StorageEntry[];
  /** Every entry whose key starts with `prefix`, read page by page. */
  listAll(prefix?: StorageBytes): StorageEntry[];
  /** The bytes the room stores, keys plus values. */
  size(): number;
  /**
   * `timer(id)` in `delayMs`, stored with the room's data: it survives
   * restarts and fires at once on a host that starts after its time.
   * `room.cancelTimer` cancels it; `room.setTimer` on the id replaces it.
   * Throws `HostError` (`too-many-timers`).
   */
  setDurableTimer(id: TimerId, delayMs: number): void;
}

/** What a client brought when it was transferred from another room. */
export interface Handoff {
  /** The room it came from (`null`: the lobby). */
  readonly fromRoom: string | null;
  readonly data: Uint8Array;
  /** Set when the room it was sent to rejected it: the reason. */
  readonly rejected: string | null;
  /** `data` as UTF-8 text. */
  text(): string;
}

/** What the host knows about a client when it connects. */
export declare class ClientInfo {
  readonly id: ClientId;
  readonly path: string;
  readonly query: string;
  readonly identity: string | null;
  readonly handoff: Handoff | null;
  readonly claims: string | null;
  readonly readOnly: boolean;
  readonly resumeToken: string | null;
  /** The first value of query parameter `name`, form-decoded; `null` if absent. */
  queryParam(name: string): string | null;
  /** The verified token's claims, parsed; `null` when there are none. */
  claimsJson(): unknown;
}

/** How a room starts. */
export declare class InitInfo {
  readonly roomId: string;
  readonly lobby: boolean;
  /** The service's configuration as JSON text (`"null"` when none was given). */
  readonly config: string;
  /** The configuration parsed; throws `SyntaxError`. */
  configJson(): unknown;
}

/** The state an earlier instance of the room saved with `snapshot()`. */
export declare class Snapshot {
  readonly bytes: Uint8Array;
  text(): string;
  json(): unknown;
}

/** A live room of the service, as the directory lists it. */
export interface RoomEntry {
  roomId: string;
  clients: number;
  info: unknown;
}

/** What changed in the service's directory (lobby only). */
export type RoomChange =
  | { kind: 'updated'; roomId: string; clients: number; info: unknown }
  | { kind: 'closed'; roomId: string };

/** What `request` returns: `json` is sent as `application/json`. */
export interface HttpResponse {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  json?: unknown;
}

/** The room a callback runs in. */
export declare class Room {
  readonly id: string;
  readonly isLobby: boolean;
  /**
   * The room's durable storage. The build gives a service the contract's
   * `storage` import only when its code mentions `storage` (or package.json
   * says `"roomhost": { "storage": true }`); without it this throws.
   */
  readonly storage: Storage;
  send(client: ClientId, message: Outgoing): void;
  sendJson(client: ClientId, value: unknown): void;
  broadcast(message: Outgoing, except?: Iterable<ClientId>): void;
  broadcastJson(value: unknown, except?: Iterable<ClientId>): void;
  close(client: ClientId, code: number, reason?: string): void;
  setTimer(id: TimerId, delayMs: number): void;
  cancelTimer(id: TimerId): void;
  nowMs(): number;
  /** A random integer below 2^53 from the host's secure generator. */
  random(): number;
  log(level: LogLevel, message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** Sets the room's listing metadata, shown by `GET /rooms`. */
  setInfo(value: unknown): void;
  clients(): ClientId[];
  client(client: ClientId): ClientInfo | null;
  clientState<T = unknown>(client: ClientId): T | null;
  setClientState(client: ClientId, value: unknown): void;
  clientStateBytes(client: ClientId): Uint8Array | null;
  setClientStateBytes(client: ClientId, bytes: Uint8Array): void;
  /** Moves a client to room `room` (`null`: the lobby). */
  transfer(client: ClientId, room: string | null, data?: Uint8Array | string, options?: { create?: boolean }): void;
  rooms(): RoomEntry[];
  serveRoot(): void;
  authEnabled(): boolean;
  verifyToken(token: string): unknown;
}

/** The callbacks a service class may implement; all optional. */
export interface RoomService {
  init?(room: Room, info: InitInfo): void;
  /** Return or throw a `Rejection` to refuse the client. */
  connect?(room: Room, client: ClientInfo): void | Rejection;
  message?(room: Room, client: ClientId, message: Message): void;
  disconnect?(room: Room, client: ClientId, reason: DisconnectReason): void;
  timer?(room: Room, timer: TimerId): void;
  reconnect?(room: Room, client: ClientId, resumeToken: string): void;
  roomChanged?(room: Room, change: RoomChange): void;
  request?(room: Room, request: HttpRequest): HttpResponse;
  /** The state to carry over a hot reload (`null`: restart and replay `connect`). */
  snapshot?(): Uint8Array | string | object | null | undefined;
}

/** A service class: `new()` for a fresh room, `restore` for a reloaded one. */
export interface RoomServiceClass {
  new (): RoomService;
  restore?(room: Room, info: InitInfo, snapshot: Snapshot): RoomService;
  /** How long a client whose connection was lost may come back (0: off). */
  reconnectGraceMs?: number;
}

/** A service with a lobby. */
export interface LobbyAndRooms {
  readonly lobby: RoomServiceClass;
  readonly room: RoomServiceClass;
}

/** A service whose lobby runs `Lobby` and whose rooms run `Room`. */
export declare function lobbyAndRooms(lobby: RoomServiceClass, room: RoomServiceClass): LobbyAndRooms;

/** The contract's `service` export for a service (`roomhost build` calls it). */
export declare function exportService(
  service: RoomServiceClass | LobbyAndRooms,
  imports: { host: unknown; directory: unknown; auth: unknown; storage?: unknown },
): typeof import('roomhost:room/service@0.4.0');

export declare function utf8Encode(text: string): Uint8Array;
export declare function utf8Decode(bytes: Uint8Array): string;
