import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTypes } from '../src/gen-types.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

test('the contract types match guest-sdk/wit/room.wit (npm run gen-types)', async () => {
  assert.deepEqual(await generateTypes({ check: true }), []);
});

test('the SDK, its harness and the TypeScript plugins type-check', () => {
  const tsc = join(root, 'node_modules', '.bin', 'tsc');
  for (const project of [join(root, 'test', 'typecheck'), join(root, '..', 'plugins', 'counter-ts'), join(root, '..', 'plugins', 'chat-ts'), join(root, '..', 'tests', 'fixtures', 'lobby-ts'), join(root, '..', 'tests', 'fixtures', 'durable-ts')]) {
    const run = spawnSync(tsc, ['-p', project], { encoding: 'utf8' });
    assert.equal(run.status, 0, `tsc -p ${project}:\n${run.stdout}${run.stderr}`);
  }
});
