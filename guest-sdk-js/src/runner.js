/**
 * `roomhost-js test`: runs a project's tests (files named `*.test.ts` or `*.test.js` under `test/`) under
 * Node's test runner. TypeScript tests are bundled first with esbuild (the
 * SDK and the harness resolve to this package), into `target/roomhost-js-tests`.
 */

import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SDK_DIR } from './build.js';

/** Test files under `dir/test`. */
function testFiles(dir) {
  const root = join(dir, 'test');
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true })
    .map(String)
    .filter((file) => /\.test\.(ts|mts|js|mjs)$/.test(file))
    .map((file) => join(root, file));
}

/** Bundles and runs the tests; returns the exit code. */
export async function runTests(dir) {
  const project = resolve(dir);
  const files = testFiles(project);
  if (files.length === 0) {
    process.stderr.write(`no tests in ${join(project, 'test')} (files named *.test.ts)\n`);
    return 1;
  }
  const out = join(project, 'target', 'roomhost-js-tests');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: files,
    outdir: out,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node18',
    packages: 'external',
    alias: {
      '@roomhost/sdk/testing': join(SDK_DIR, 'src', 'testing.js'),
      '@roomhost/sdk': join(SDK_DIR, 'src', 'index.js'),
    },
    logLevel: 'warning',
  });
  const bundled = readdirSync(out, { recursive: true })
    .map(String)
    .filter((file) => file.endsWith('.mjs'))
    .map((file) => join(out, file));
  const run = spawnSync(process.execPath, ['--test', ...bundled], { stdio: 'inherit' });
  return run.status ?? 1;
}
