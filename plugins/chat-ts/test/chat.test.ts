import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_START_MS, TestRoom } from '@roomhost/sdk/testing';
import Chat from '../src/index.ts';

const join = (room: TestRoom<Chat>, name: string) => room.connect(`name=${name}`);

test('welcome and joined', () => {
  const room = new TestRoom<Chat>(Chat);
  const alice = join(room, 'alice');
  assert.deepEqual(room.takeSentJson(alice), [{ type: 'welcome', you: 'alice', members: ['alice'] }]);
  const bob = join(room, '%20Bob+');
  assert.deepEqual(room.takeSentJson(bob), [{ type: 'welcome', you: 'Bob', members: ['alice', 'Bob'] }]);
  assert.deepEqual(room.takeSentJson(alice), [{ type: 'joined', name: 'Bob' }]);
  assert.deepEqual(room.info, { members: 2 });
});

test('invalid names are rejected with 1008', () => {
  const room = new TestRoom<Chat>(Chat);
  join(room, 'alice');
  const reject = (query: string) => {
    const result = room.tryConnect(query);
    assert.equal(result.rejection?.code, null, query);
    return result.rejection?.reason ?? '';
  };
  assert.match(reject(''), /name is required/);
  assert.match(reject('name='), /1 to 32/);
  assert.match(reject('name=+++'), /1 to 32/);
  assert.match(reject(`name=${'x'.repeat(33)}`), /1 to 32/);
  assert.match(reject('name=a%0Ab'), /control/);
  assert.match(reject('name=ALICE'), /already taken/);
  assert.ok(room.tryConnect(`name=${'é'.repeat(32)}`).id);
  assert.equal(room.clients().length, 2);
});

test('say reaches everyone, within the configured length', () => {
  const room = new TestRoom<Chat>(Chat, { config: { max_message_len: 5 } });
  const alice = join(room, 'alice');
  const bob = join(room, 'bob');
  room.takeAll();
  room.message(alice, '{"type":"say","text":"ééééé"}');
  room.message(alice, '{"type":"say","text":"toolong"}');
  room.message(alice, '{"type":"say","text":"  "}');
  const said = { type: 'said', from: 'alice', text: 'ééééé', ts: DEFAULT_START_MS };
  assert.deepEqual(room.takeSentJson(bob), [said]);
  assert.deepEqual(room.takeSentJson(alice), [
    said,
    { type: 'error', message: 'text is 7 characters; the limit is 5' },
    { type: 'error', message: 'text must not be empty' },
  ]);
});

test('typing starts, times out and is cleared by saying', () => {
  const room = new TestRoom<Chat>(Chat, { config: { typing_timeout_ms: 1000 } });
  const alice = join(room, 'alice');
  const bob = join(room, 'bob');
  room.takeAll();
  room.message(alice, '{"type":"typing"}');
  room.message(alice, '{"type":"typing"}');
  assert.deepEqual(room.takeSentJson(bob), [{ type: 'typing', name: 'alice' }]);
  assert.deepEqual(room.takeSentJson(alice), []);
  room.advance(999);
  assert.deepEqual(room.takeSentJson(bob), []);
  room.advance(1);
  assert.deepEqual(room.takeSentJson(bob), [{ type: 'stopped_typing', name: 'alice' }]);
  room.message(alice, '{"type":"typing"}');
  room.message(alice, '{"type":"say","text":"hi"}');
  assert.deepEqual(room.pendingTimers(), []);
});

test('leaving is announced and the state survives a reload', () => {
  const room = new TestRoom<Chat>(Chat);
  const alice = join(room, 'alice');
  const bob = join(room, 'bob');
  room.takeAll();
  assert.deepEqual(room.reload(), { restored: true });
  assert.deepEqual(room.service.names(), ['alice', 'bob']);
  room.disconnect(bob);
  assert.deepEqual(room.takeSentJson(alice), [{ type: 'left', name: 'bob' }]);
  assert.deepEqual(room.info, { members: 1 });
});

test('invalid configuration is warned about and the defaults kept', () => {
  const room = new TestRoom<Chat>(Chat, { config: { typing_timeout_ms: 'soon' } });
  assert.equal(room.service.config.typing_timeout_ms, 3000);
  assert.equal(room.logs.length, 1);
  assert.equal(room.logs[0].level, 'warn');
});

test('binary and malformed frames get an error back', () => {
  const room = new TestRoom<Chat>(Chat);
  const alice = join(room, 'alice');
  room.takeAll();
  room.message(alice, new Uint8Array([1, 2]));
  room.message(alice, 'not json');
  room.message(alice, '{"type":"shout"}');
  const replies = room.takeSentJson(alice);
  assert.equal(replies.length, 3);
  assert.deepEqual(replies[0], { type: 'error', message: 'binary frames are not supported' });
  for (const reply of replies.slice(1)) assert.match(reply.message, /^invalid message/);
});
