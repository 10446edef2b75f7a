// Storage in the JavaScript SDK: `room.storage` over the contract's import
// (errors as the engine reports them), the harness's model of the host's
// store (caps, batches, paging, the pending-changes bound, durable timers,
// `restart`), and the build's choice of world.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostError, Room, StorageError, utf8Decode, utf8Encode } from '../src/index.js';
import { TestRoom } from '../src/testing.js';
import { bundle } from '../src/build.js';

/** A service whose messages are storage commands, answering each. */
class Notes {
  seen = null;
  init(room) {
    this.seen = room.storage.getJson('count');
  }
  message(room, client, message) {
    const [command, key, ...rest] = message.text.split(' ');
    const value = rest.join(' ');
    const answer = (reply) => room.sendJson(client, reply);
    try {
      switch (command) {
        case 'put':
          room.storage.put(key, value);
          return answer('ok');
        case 'fill':
          room.storage.put(key, 'x'.repeat(Number(value)));
          return answer('ok');
        case 'get':
          return answer(room.storage.getText(key));
        case 'del':
          return answer(room.storage.delete(key));
        case 'churn':
          // Puts and deletes distinct 1,000-byte keys: the room stores
          // nothing, but each deleted key awaits the commit.
          for (let i = 0; i < Number(value); i += 1) {
            const long = `${key}${i}`.padEnd(1000, '.');
            room.storage.put(long, 'y');
            room.storage.delete(long);
          }
          return answer('ok');
        case 'batch-fail':
          room.storage.batch([
            { op: 'put', key: 'first', value: '1' },
            { op: 'put', key: 'second', value: 'z'.repeat(Number(key)) },
          ]);
          return answer('ok');
        case 'durable':
          room.storage.setDurableTimer(Number(key), Number(value));
          return answer('ok');
        case 'plain':
          room.setTimer(Number(key), Number(value));
          return answer('ok');
        case 'cancel':
          room.cancelTimer(Number(key));
          return answer('ok');
        default:
          return answer('unknown');
      }
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      return answer({ kind: error.kind, size: error.size, limit: error.limit, call: error.call, message: error.message });
    }
  }
  timer(room, id) {
    room.storage.putJson(`fired/${id}`, room.nowMs());
  }
}

const ask = (room, client, text) => {
  room.message(client, text);
  return room.takeSentJson(client).at(-1);
};

test('reads see writes; text, JSON and bytes keys and values round-trip', () => {
  const room = new TestRoom(Notes);
  const ada = room.connect();
  assert.equal(ask(room, ada, 'put a hello world'), 'ok');
  assert.equal(ask(room, ada, 'get a'), 'hello world');
  assert.equal(ask(room, ada, 'get missing'), null);
  assert.equal(ask(room, ada, 'del a'), true);
  assert.equal(ask(room, ada, 'del a'), false);
  assert.equal(room.storage.size, 0);

  class Bytes {
    init(room) {
      room.storage.put(new Uint8Array([0, 255]), new Uint8Array([1, 2, 3]));
      room.storage.putJson('j', { a: [1, 'b'] });
      room.storage.put('text', 'é');
    }
  }
  const bytes = new TestRoom(Bytes);
  assert.deepEqual(bytes.storage.get(new Uint8Array([0, 255])), new Uint8Array([1, 2, 3]));
  assert.deepEqual(bytes.storage.getJson('j'), { a: [1, 'b'] });
  assert.deepEqual(bytes.storage.get('text'), utf8Encode('é'));
  // Keys plus values: 2 + 3, 1 + 13, 4 + 2.
  assert.equal(bytes.storage.size, 25);
  // Stored bytes are copies, as the host's are.
  const aliasing = new TestRoom(class {
    init(room) {
      const value = new Uint8Array([1]);
      room.storage.put('v', value);
      value[0] = 9;
      room.storage.get('v')[0] = 8;
    }
  });
  assert.deepEqual(aliasing.storage.get('v'), new Uint8Array([1]));
  // `init` failures reach the harness as the contract's error string.
  assert.throws(() => new TestRoom(class { init(room) { room.storage.putJson('u', undefined); } }), /undefined is not a JSON value/);
  assert.throws(() => new TestRoom(class { init(room) { room.storage.put('n', 5); } }), /a storage value is a string or a Uint8Array/);
});

test('writes over a cap are refused whole, typed, and keep what was stored', () => {
  const room = new TestRoom(Notes, { maxRoomStorageBytes: 1000, maxStorageKeyBytes: 8, maxStorageValueBytes: 600 });
  const ada = room.connect();
  assert.equal(ask(room, ada, 'fill doc 500'), 'ok');
  const full = ask(room, ada, 'fill other 590');
  assert.deepEqual(
    { ...full, message: undefined },
    { kind: 'room-full', size: 503 + 595, limit: 1000, call: 'put', message: undefined },
  );
  assert.equal(full.message, 'put: the room would store 1098 bytes; the limit is 1000 (max_room_storage_bytes); nothing was written');
  assert.equal(ask(room, ada, 'fill doc 601').kind, 'value-too-large');
  assert.deepEqual(ask(room, ada, 'put a-long-key x'), {
    kind: 'key-too-large',
    size: 10,
    limit: 8,
    call: 'put',
    message: 'put: storage key is 10 bytes; the limit is 8 (max_storage_key_bytes)',
  });
  assert.equal(room.storage.getText('doc').length, 500, 'the old value is intact');
  // A batch is checked whole before anything applies.
  assert.equal(ask(room, ada, 'batch-fail 700').kind, 'value-too-large');
  assert.equal(room.storage.get('first'), null);
  assert.equal(ask(room, ada, 'batch-fail 10'), 'ok');
  assert.equal(room.storage.getText('second'), 'z'.repeat(10));
  // Replacing a value with a smaller one is allowed even over a full room.
  assert.equal(ask(room, ada, 'fill doc 10'), 'ok');
});

test('the Rust harness example: room-full reports what the room would store', () => {
  class Empty {}
  const room = new TestRoom(Empty, { maxRoomStorageBytes: 8 });
  // The same case as the Rust SDK's `max_room_storage_bytes` doc test.
  const attempt = new TestRoom(class { init(r) { try { r.storage.put('key', 'too long'); } catch (e) { this.e = e; } } }, { maxRoomStorageBytes: 8 });
  assert.ok(attempt.service.e instanceof StorageError);
  assert.ok(attempt.service.e instanceof HostError);
  assert.deepEqual([attempt.service.e.kind, attempt.service.e.size, attempt.service.e.limit], ['room-full', 11, 8]);
  assert.equal(attempt.storage.size, 0);
  assert.equal(room.storage.size, 0);
});

test("one event cannot pile up changes; the commit after each callback resets the bound", () => {
  const room = new TestRoom(Notes, { maxRoomStorageBytes: 10_000 });
  const ada = room.connect();
  // Each round leaves 1,000 bytes awaiting the commit: 19 rounds fit twice the cap.
  assert.equal(ask(room, ada, 'churn k 19'), 'ok');
  const refused = ask(room, ada, 'churn k 30');
  assert.deepEqual([refused.kind, refused.size, refused.limit], ['room-full', 19_000 + 1001, 20_000]);
  // The next event starts over: its changes are bounded on their own.
  assert.equal(ask(room, ada, 'churn k 19'), 'ok');
  assert.equal(room.storage.size, 0);
});

test('list pages in byte order with a prefix, startAfter and limit; listAll reads them all', () => {
  const stored = [];
  for (let i = 0; i < 2500; i += 1) stored.push([`item/${String(i).padStart(5, '0')}`, String(i)]);
  stored.push(['itemz', 'not in the prefix'], ['a', 'before'], [new Uint8Array([0x69, 0x74, 0x65, 0x6d, 0x2f, 0xff]), 'last']);
  class Lister {
    pages = [];
    all = [];
    init(room) {
      const first = room.storage.list('item/', { limit: 3 });
      this.pages.push(first.map((entry) => entry.keyText()));
      this.pages.push(room.storage.list('item/', { startAfter: first[2].key, limit: 2 }).map((e) => e.text()));
      // A startAfter below the prefix starts at the prefix.
      this.pages.push(room.storage.list('item/', { startAfter: 'a', limit: 1 }).map((e) => e.keyText()));
      this.defaultPage = room.storage.list('item/').length;
      this.all = room.storage.listAll('item/');
      this.none = room.storage.list('item/', { startAfter: 'item0' });
    }
  }
  const room = new TestRoom(Lister, { stored });
  const { pages, defaultPage, all, none } = room.service;
  assert.deepEqual(pages, [['item/00000', 'item/00001', 'item/00002'], ['3', '4'], ['item/00000']]);
  assert.equal(defaultPage, 1000, 'a page holds at most 1,000 entries');
  assert.equal(all.length, 2501);
  assert.deepEqual(all.at(-1).key, new Uint8Array([0x69, 0x74, 0x65, 0x6d, 0x2f, 0xff]), 'byte order: 0xff sorts last');
  assert.equal(all.at(-2).json(), 2499);
  assert.deepEqual(none, []);
});

test('a list page stops at about 4 MiB', () => {
  const big = 'v'.repeat(1024 * 1024);
  const stored = [0, 1, 2, 3, 4, 5].map((i) => [`big/${i}`, big]);
  const room = new TestRoom(class { init(r) { this.sizes = [r.storage.list('big/').length, r.storage.listAll('big/').length]; } }, { stored });
  assert.deepEqual(room.service.sizes, [3, 6]);
});

test('restart keeps the stored data and durable timers; clients and ordinary timers are gone', () => {
  const room = new TestRoom(Notes, { stored: { count: '41' } });
  assert.equal(room.service.seen, 41, 'init reads the builder\'s stored data');
  const ada = room.connect();
  assert.equal(ask(room, ada, 'put count 42'), 'ok');
  ask(room, ada, 'durable 1 60000');
  ask(room, ada, 'durable 2 5000');
  ask(room, ada, 'plain 3 1000');
  ask(room, ada, 'durable 4 1000');
  ask(room, ada, 'plain 4 1000'); // an ordinary timer replaces a durable one
  ask(room, ada, 'durable 5 1000');
  ask(room, ada, 'cancel 5');
  assert.deepEqual(room.storage.timers(), [
    [1, room.nowMs + 60000],
    [2, room.nowMs + 5000],
  ]);
  const before = room.nowMs;
  room.advance(10_000); // timer 2 fires (and is no longer stored), as do 3 and 4
  assert.deepEqual(room.storage.keys(), ['count', 'fired/2', 'fired/3', 'fired/4']);
  assert.deepEqual(room.storage.timers(), [[1, before + 60000]]);

  ask(room, ada, 'plain 6 1000');
  room.restart();
  assert.deepEqual(room.clients(), []);
  assert.equal(room.service.seen, 42);
  assert.deepEqual(room.pendingTimers(), [[1, 50000]], 'only the durable timer survives');
  // A durable timer whose time passed while the host was down fires at once.
  room.advance(60_000);
  room.restart();
  assert.deepEqual(room.pendingTimers(), []);
  assert.equal(room.storage.getJson('fired/1'), before + 60000);
});

test('an overdue durable timer fires on advance(0) after a restart', () => {
  class Alarm {
    init(room) {
      if (room.storage.get('armed') === null) {
        room.storage.put('armed', '1');
        room.storage.setDurableTimer(7, 100);
      }
    }
    timer(room, id) {
      room.storage.putJson('fired', id);
    }
  }
  const room = new TestRoom(Alarm);
  room.restart();
  assert.deepEqual(room.pendingTimers(), [[7, 100]]);
  // Time passes with the host down: the clock moves without firing.
  room.restart();
  assert.equal(room.storage.get('fired'), null);
  room.advance(0);
  assert.equal(room.storage.get('fired'), null);
  room.advance(100);
  assert.equal(room.storage.getJson('fired'), 7);
});

test('engine refusals become StorageErrors; setDurableTimer refusals HostErrors', () => {
  const refuse = (payload) => Object.assign(new Error('refused'), { payload });
  const storage = {
    put: () => {
      throw refuse({ tag: 'value-too-large', val: { size: 2_000_000, limit: 1_048_576 } });
    },
    batch: () => {
      throw refuse({ tag: 'key-too-large', val: { size: 3000, limit: 2048 } });
    },
    setDurableTimer: () => {
      throw refuse('the room holds 1024 timers');
    },
    get: () => null,
    listPrefix: (prefix, after, limit) => [{ key: prefix, value: utf8Encode(`${after === null} ${limit}`) }],
  };
  const room = new Room({ host: {}, directory: {}, auth: {}, storage }, { roomId: 'r', lobby: false });
  assert.throws(
    () => room.storage.put('k', 'v'),
    (error) =>
      error instanceof StorageError &&
      error.kind === 'value-too-large' &&
      error.size === 2_000_000 &&
      error.limit === 1_048_576 &&
      error.message === 'put: storage value is 2000000 bytes; the limit is 1048576 (max_storage_value_bytes)',
  );
  assert.throws(() => room.storage.batch([{ op: 'delete', key: 'k' }]), { name: 'StorageError', kind: 'key-too-large', call: 'batch' });
  assert.throws(() => room.storage.batch([{ op: 'move', key: 'k' }]), TypeError);
  assert.throws(() => room.storage.setDurableTimer(1, 10), (error) => error instanceof HostError && error.kind === 'too-many-timers' && /1024 timers/.test(error.message));
  assert.equal(room.storage.get('k'), null);
  // `list` passes null for no startAfter and clamps the limit.
  assert.equal(room.storage.list('p', { limit: -5 })[0].text(), 'true 0');
  assert.equal(utf8Decode(room.storage.list('p', { limit: 2 ** 40 })[0].value), `true ${0xffffffff}`);
  // A failure that is not a refusal is not dressed up as one.
  const broken = new Room({ host: {}, directory: {}, auth: {}, storage: { put: () => { throw new RangeError('engine'); } } }, { roomId: 'r', lobby: false });
  assert.throws(() => broken.storage.put('k', 'v'), RangeError);
});

test('a service built without the storage import is told so when it uses room.storage', () => {
  const room = new Room({ host: {}, directory: {}, auth: {} }, { roomId: 'r', lobby: false });
  assert.throws(() => room.storage.get('k'), /built without storage/);
});

/** A throwaway service project: `files` under its directory. */
function project(files) {
  const dir = mkdtempSync(join(tmpdir(), 'roomhost-sdk-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

test('the build imports storage only for services whose code mentions it', async () => {
  const plain = project({
    'package.json': '{"name":"plain"}',
    'src/index.ts': "import { Room } from '@roomhost/sdk';\nexport default class { message(room: Room) { room.broadcast('x'); } }\n",
  });
  const durable = project({
    'package.json': '{"name":"durable"}',
    'src/index.ts': "import { keep } from './keep.ts';\nexport default class { message(room: any) { keep(room); } }\n",
    'src/keep.ts': "export function keep(room: any) { room.storage.put('k', 'v'); }\n",
  });
  const forced = project({
    'package.json': '{"name":"forced","roomhost":{"storage":true}}',
    'src/index.js': 'export default class {}\n',
  });
  const plainBundle = await bundle(plain);
  assert.equal(plainBundle.storage, false);
  assert.doesNotMatch(plainBundle.source, /roomhost:room\/storage/);
  const durableBundle = await bundle(durable);
  assert.equal(durableBundle.storage, true, 'a module the entry imports counts');
  assert.match(durableBundle.source, /from "roomhost:room\/storage@0\.4\.0"/);
  assert.equal((await bundle(forced)).storage, true);
  const refused = project({ 'package.json': '{"name":"x","roomhost":{"storage":"yes"}}', 'index.js': 'export default class {}\n' });
  await assert.rejects(bundle(refused), /must be true or false/);
});
