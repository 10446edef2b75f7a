// Compiled by `tsc` only (types.test.mjs): every public declaration used
// once, so a declaration that drifts from its use fails the type-check.

import {
  type ClientId,
  type ClientInfo,
  type HttpRequest,
  type HttpResponse,
  type RoomChange,
  HostError,
  InitInfo,
  Message,
  Rejection,
  Room,
  Snapshot,
  Storage,
  StorageEntry,
  StorageError,
  type StorageWrite,
  exportService,
  lobbyAndRooms,
  utf8Decode,
  utf8Encode,
} from '@roomhost/sdk';
import { DEFAULT_START_MS, TestRoom } from '@roomhost/sdk/testing';

class Lobby {
  init(room: Room, info: InitInfo): void {
    if (info.lobby) room.serveRoot();
    room.info(String(info.configJson()));
  }
  roomChanged(room: Room, change: RoomChange): void {
    if (change.kind === 'updated') room.debug(`${change.roomId}: ${change.clients}`);
  }
}

class Game {
  static reconnectGraceMs = 1000;
  players: ClientId[] = [];
  connect(room: Room, client: ClientInfo): Rejection | void {
    if (client.readOnly) return new Rejection('read only', 4001);
    try {
      room.transfer(client.id, null, utf8Encode('back'), { create: false });
    } catch (error) {
      if (error instanceof HostError && error.kind === 'no-lobby') room.warn(error.message);
    }
    this.players.push(client.id);
  }
  message(room: Room, client: ClientId, message: Message): void {
    room.send(client, message.isText ? Message.json({ echo: message.text }) : message.bytes);
    room.setTimer(client, 10);
  }
  request(room: Room, request: HttpRequest): HttpResponse {
    return { status: 200, json: { path: request.path, rooms: room.rooms(), now: room.nowMs() } };
  }
  snapshot(): string {
    return JSON.stringify(this.players);
  }
  static restore(_room: Room, _info: InitInfo, snapshot: Snapshot): Game {
    const game = new Game();
    game.players = snapshot.json() as ClientId[];
    return game;
  }
}

class Notes {
  message(room: Room, _client: ClientId, message: Message): void {
    const storage: Storage = room.storage;
    const count = storage.getJson<number>('count') ?? 0;
    const writes: StorageWrite[] = [
      { op: 'put', key: `note/${count}`, value: message.bytes },
      { op: 'put', key: 'count', json: count + 1 },
      { op: 'delete', key: utf8Encode('old') },
    ];
    try {
      storage.batch(writes);
      storage.put('last', storage.getText('count') ?? '');
      storage.putJson('meta', { size: storage.size() });
    } catch (error) {
      if (error instanceof StorageError && error.kind === 'room-full') room.warn(`${error.size} > ${error.limit}`);
    }
    const page: StorageEntry[] = storage.list('note/', { startAfter: 'note/0', limit: 10 });
    const all = storage.listAll('note/').map((entry) => [entry.keyText(), entry.text(), entry.json()]);
    room.info(`${page.length} ${all.length} ${storage.delete('x')} ${storage.get('x')?.length}`);
    storage.setDurableTimer(1, 60_000);
  }
}

const notes = new TestRoom<Notes>(Notes, { stored: { count: '1' }, maxRoomStorageBytes: 1024, maxStorageKeyBytes: 64 });
notes.message(notes.connect(), 'hi');
const stored: number | null = notes.storage.getJson<number>('count');
const timers: Array<[number, number]> = notes.storage.timers();
notes.restart();
export const storageChecked = [stored, timers, notes.storage.keys(), notes.storage.size, notes.storage.entries()];

const service = lobbyAndRooms(Lobby, Game);
const room = new TestRoom<Game>(service, { roomId: 'g', startMs: DEFAULT_START_MS });
const id: ClientId = room.connect('a=b', { readOnly: false });
room.message(id, 'hi');
const sent: Message[] = room.takeSent(id);
const text: string = utf8Decode(sent[0].bytes);
const players: ClientId[] = room.service.players;
export const checked = [text, players, exportService];
