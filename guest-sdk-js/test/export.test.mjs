import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportService, lobbyAndRooms, Rejection, HostError, Message } from '../src/index.js';
import { TestRoom } from '../src/testing.js';

/** Host imports that record calls, failing like the engine does. */
function fakeImports(log) {
  const refuse = (payload) => Object.assign(new Error('refused'), { payload });
  return {
    host: {
      send: (client, frame) => log.push(['send', client, frame]),
      broadcast: (frame, except) => log.push(['broadcast', frame, except]),
      setTimer: () => {
        throw refuse('the room holds 64 timers');
      },
      setClientState: () => {
        throw refuse({ tag: 'too-large', val: 4096 });
      },
      log: (level, message) => log.push(['log', level, message]),
    },
    directory: {
      transfer: () => {
        throw refuse({ tag: 'invalid-room-id', val: 256 });
      },
    },
    auth: {},
  };
}

const info = (extra = {}) => ({ roomId: 'r', lobby: false, config: 'null', restored: null, ...extra });
const client = (id, query = '') => ({ id, path: '/ws/r', query, identity: null, handoff: null, claims: null, readOnly: false, resumeToken: null });

test('describe, connect rejections and frames map onto the contract', () => {
  class Svc {
    static reconnectGraceMs = 1500;
    connect(room, c) {
      if (c.queryParam('no') !== null) return Rejection.withCode(4403, 'go away');
      if (c.queryParam('plain') !== null) throw new Rejection('plain');
      room.send(c.id, Message.binary([1, 2]));
    }
    message(room, id, message) {
      room.broadcastJson({ echo: message.text }, [id]);
    }
  }
  const log = [];
  const service = exportService(Svc, fakeImports(log));
  assert.deepEqual(service.describe(), { lobby: false, reconnectGraceMs: 1500 });
  service.init(info());
  assert.throws(() => service.connect(client(1, 'no')), (e) => e.code === 4403 && e.reason === 'go away');
  assert.throws(() => service.connect(client(2, 'plain')), (e) => e.code === null && e.reason === 'plain');
  service.connect(client(3));
  service.message(3, { tag: 'text', val: 'hi' });
  assert.deepEqual(log, [
    ['send', 3, { tag: 'binary', val: Uint8Array.from([1, 2]) }],
    ['broadcast', { tag: 'text', val: '{"echo":"hi"}' }, [3]],
  ]);
  assert.equal(service.snapshot(), null, 'no snapshot method: none');
  assert.equal(service.request({ method: 'GET', path: '/', query: '', headers: [], body: new Uint8Array() }).status, 404);
});

test('a failure in connect that is not a rejection is an error (the room fails)', () => {
  class Svc {
    connect() {
      throw 'oops';
    }
  }
  const service = exportService(Svc, fakeImports([]));
  service.init(info());
  assert.throws(() => service.connect(client(1)), (e) => e instanceof Error && e.message === 'oops');
});

test('host refusals become HostErrors with their kind and limit', () => {
  const seen = [];
  class Svc {
    init(room) {
      for (const call of [
        () => room.setTimer(1, 10),
        () => room.setClientState(1, 'x'),
        () => room.transfer(1, 'y'.repeat(300)),
      ]) {
        try {
          call();
        } catch (error) {
          assert.ok(error instanceof HostError);
          seen.push([error.kind, error.limit]);
        }
      }
    }
  }
  exportService(Svc, fakeImports([])).init(info());
  assert.deepEqual(seen, [
    ['too-many-timers', null],
    ['too-large', 4096],
    ['invalid-room-id', 256],
  ]);
});

test('init and restore failures are the contract error strings', () => {
  class Bad {
    init() {
      throw new Error('bad config');
    }
  }
  assert.throws(() => exportService(Bad, fakeImports([])).init(info()), (e) => e === 'bad config');
  class NoRestore {}
  assert.throws(
    () => exportService(NoRestore, fakeImports([])).init(info({ restored: Uint8Array.of(1) })),
    (e) => e === 'this service does not restore snapshots',
  );
});

test('lobbyAndRooms: the lobby instance runs the lobby class', () => {
  class Lobby {
    connect(room, c) {
      room.transfer(c.id, 'game-1', 'hello');
    }
  }
  class Game {
    static reconnectGraceMs = 200;
    connect(room, c) {
      room.sendJson(c.id, { arrived: c.handoff?.text() ?? null, room: room.id });
    }
  }
  const service = lobbyAndRooms(Lobby, Game);
  const lobby = new TestRoom(service, { lobby: true });
  assert.equal(lobby.hasLobby, true);
  const id = lobby.connect();
  const [transfer] = lobby.takeTransfers();
  assert.deepEqual([transfer.client, transfer.room], [id, 'game-1']);
  assert.deepEqual(lobby.clients(), [], 'moved out');
  const game = new TestRoom(service, { roomId: 'game-1' });
  const arrived = game.connect('', { handoff: { fromRoom: null, data: transfer.data } });
  assert.deepEqual(game.takeSentJson(arrived), [{ arrived: 'hello', room: 'game-1' }]);
  assert.throws(() => lobbyAndRooms(Lobby, {}), TypeError);
});

test('the harness: kicks, timers, client state, requests and a reload without snapshot', () => {
  class Svc {
    connect(room, c) {
      room.setClientState(c.id, { name: c.queryParam('name') });
      room.setTimer(7, 100);
    }
    message(room, id, message) {
      if (message.text === 'kick') room.close(id, 4000, 'bye');
    }
    disconnect(room, id, reason) {
      room.info(`left ${id} ${reason}`);
    }
    timer(room, id) {
      room.broadcast(`timer ${id} at ${room.nowMs()}`);
    }
    request(room, req) {
      return { status: 201, json: { method: req.method, clients: room.clients(), name: room.clientState(1)?.name } };
    }
  }
  const room = new TestRoom(Svc, { startMs: 1000 });
  const ada = room.connect('name=ada');
  assert.deepEqual(room.pendingTimers(), [[7, 100]]);
  room.advance(100);
  assert.deepEqual(room.takeSent(ada).map((m) => m.text), ['timer 7 at 1100']);
  const response = room.request({ method: 'POST' });
  assert.equal(response.status, 201);
  assert.deepEqual(response.json(), { method: 'POST', clients: [1], name: 'ada' });
  assert.deepEqual(response.headers, [['content-type', 'application/json']]);
  assert.deepEqual(room.reload(), { restored: false });
  assert.equal(room.service.constructor, Svc);
  assert.deepEqual(room.request().json().name, 'ada', 'client state kept across the replay');
  room.message(ada, 'kick');
  assert.deepEqual(room.closed, [{ client: ada, code: 4000, reason: 'bye' }]);
  assert.deepEqual(room.clients(), []);
  assert.deepEqual(room.logs.at(-1), { level: 'info', message: 'left 1 kicked' });
});

test('the component globals: Math.random and console over the host', async () => {
  const { installGlobals, random53 } = await import('../src/globals.js');
  const lines = [];
  let next = 2 ** 64 - 1;
  const host = { random: () => next, log: (level, message) => lines.push([level, message]) };
  assert.equal(random53(host), 2 ** 53 - 1, 'the largest u64 stays below 2^53');
  next = 2 ** 63;
  assert.equal(random53(host), 2 ** 52);
  const saved = { random: Math.random, console: globalThis.console };
  try {
    globalThis.console = undefined;
    installGlobals(host);
    assert.equal(Math.random(), 0.5);
    console.warn('seen', { n: 1 }, 2);
    assert.deepEqual(lines, [['warn', 'seen {"n":1} 2']]);
  } finally {
    Math.random = saved.random;
    globalThis.console = saved.console;
  }
});
