import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestRoom } from '@roomhost/sdk/testing';
import Counter from '../src/index.ts';

test('counts and broadcasts to everyone', () => {
  const room = new TestRoom<Counter>(Counter);
  const alice = room.connect();
  const bob = room.connect();
  assert.deepEqual(room.takeSentJson(alice), [{ count: 0 }]);
  room.message(alice, 'increment');
  room.message(bob, '{"op":"increment","by":5}');
  room.message(bob, 'decrement');
  assert.deepEqual(room.takeSentJson(alice), [{ count: 1 }, { count: 6 }, { count: 5 }]);
  assert.deepEqual(room.info, { count: 5 });
});

test('bad commands get an error back and change nothing', () => {
  const room = new TestRoom<Counter>(Counter);
  const alice = room.connect();
  room.takeAll();
  room.message(alice, 'nope');
  room.message(alice, '{"op":"increment","by":0}');
  room.message(alice, new Uint8Array([1]));
  assert.deepEqual(room.takeSentJson(alice), [
    { error: 'unknown command "nope"' },
    { error: '"by" must be an integer from 1 to 1000000' },
    { error: 'unknown command: binary frames are not supported' },
  ]);
  assert.equal(room.service.count, 0);
});

test('starts from the configured count', () => {
  const room = new TestRoom<Counter>(Counter, { config: { start: 41 } });
  assert.deepEqual(room.takeSentJson(room.connect()), [{ count: 41 }]);
});

test('the count survives a hot reload', () => {
  const room = new TestRoom<Counter>(Counter);
  const alice = room.connect();
  room.message(alice, 'increment');
  room.takeAll();
  assert.deepEqual(room.reload(), { restored: true });
  room.message(alice, 'increment');
  assert.deepEqual(room.takeSentJson(alice), [{ count: 2 }]);
});
