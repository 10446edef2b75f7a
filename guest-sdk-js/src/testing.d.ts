// Types of @roomhost/sdk/testing: the Node test harness.

import type {
  ClientId,
  DisconnectReason,
  LobbyAndRooms,
  Message,
  Outgoing,
  RoomServiceClass,
  TimerId,
} from './index.js';

/** The virtual clock's start: 2024-01-01T00:00:00Z. */
export declare const DEFAULT_START_MS: number;

export interface TestRoomOptions {
  roomId?: string;
  lobby?: boolean;
  /** The service's configuration (any JSON value). */
  config?: unknown;
  startMs?: number;
  /** What the room's storage holds when it starts, as if an earlier instance had stored it. */
  stored?: Record<string, string | Uint8Array> | Array<[string | Uint8Array, string | Uint8Array]>;
  /** The host's `max_room_storage_bytes` (default 32 MiB), to test a refused write. */
  maxRoomStorageBytes?: number;
  /** The host's `max_storage_key_bytes` (default 2 KiB). */
  maxStorageKeyBytes?: number;
  /** The host's `max_storage_value_bytes` (default 1 MiB). */
  maxStorageValueBytes?: number;
}

/** The room's storage as the service left it (`TestRoom.storage`). */
export interface TestStorage {
  get(key: string | Uint8Array): Uint8Array | null;
  getText(key: string | Uint8Array): string | null;
  getJson<T = unknown>(key: string | Uint8Array): T | null;
  /** Every entry in key order. */
  entries(): Array<[Uint8Array, Uint8Array]>;
  /** Every key as text, in key order. */
  keys(): string[];
  /** Bytes stored, keys plus values. */
  readonly size: number;
  /** Durable timers: `[id, due time in Unix ms]`, by id. */
  timers(): Array<[TimerId, number]>;
}

export interface ConnectOptions {
  identity?: string | null;
  /** The verified token's claims. */
  claims?: unknown;
  readOnly?: boolean;
  handoff?: { fromRoom?: string | null; data?: Uint8Array | string; rejected?: string | null } | null;
  path?: string;
}

export interface TestResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
  text(): string;
  json(): unknown;
}

/** Runs a service under Node without wasm, playing the host. */
export declare class TestRoom<S = any> {
  constructor(service: RoomServiceClass | LobbyAndRooms, options?: TestRoomOptions);
  readonly service: S;
  readonly hasLobby: boolean;
  connect(query?: string, options?: ConnectOptions): ClientId;
  tryConnect(query?: string, options?: ConnectOptions): { id: ClientId; rejection?: undefined } | { id?: undefined; rejection: { code: number | null; reason: string } };
  message(client: ClientId, data: Outgoing): void;
  disconnect(client: ClientId, reason?: DisconnectReason): void;
  suspend(client: ClientId): void;
  reconnect(client: ClientId): string;
  advance(ms: number): void;
  readonly nowMs: number;
  pendingTimers(): Array<[TimerId, number]>;
  takeSent(client: ClientId): Message[];
  takeSentJson(client: ClientId): any[];
  takeAll(): Array<[ClientId, Message]>;
  readonly closed: Array<{ client: ClientId; code: number; reason: string }>;
  readonly info: any;
  readonly logs: Array<{ level: string; message: string }>;
  clients(): ClientId[];
  takeTransfers(): Array<{ client: ClientId; room: string | null; data: Uint8Array; create: boolean }>;
  roomChanged(change: { kind: 'updated'; roomId: string; clients: number; info?: unknown } | { kind: 'closed'; roomId: string }): void;
  setRooms(rooms: Array<{ roomId: string; clients: number; info?: unknown }>): void;
  setAuth(verify: ((token: string) => unknown) | null): void;
  readonly servedRoot: boolean;
  request(request?: { method?: string; path?: string; query?: string; headers?: Array<[string, string]>; body?: string | Uint8Array }): TestResponse;
  reload(): { restored: boolean };
  /** The room's storage as the service left it. */
  readonly storage: TestStorage;
  /** A host restart: a new instance over the stored data and durable timers; clients and ordinary timers are gone. */
  restart(): void;
}
