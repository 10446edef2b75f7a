// Builds the engine comparison's components into target/plugins/engines/:
//   raw-spidermonkey.wasm  counter-raw.js with componentize-js 0.23 (StarlingMonkey;
//                          wasi:http and fetch-event disabled: the host does not link them)
//   raw-quickjs.wasm       counter-raw.js with componentize-qjs 0.4.5 (the SDK's engine)
//   ts-optsize.wasm        plugins/counter-ts with componentize-qjs's size-optimised runtime
//   ts-minified.wasm       plugins/counter-ts, bundle minified by esbuild
// Run from the repository root after `npm ci` in guest-sdk-js:
//   node bench/engines/build.mjs
// then pass them to the languages bench (see BENCHMARKS.md).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const sdk = join(root, 'guest-sdk-js');
const require = createRequire(join(sdk, 'package.json'));
const { bundle, WIT_DIR, WORLD } = await import(join(sdk, 'src', 'build.js'));
const qjs = require('componentize-qjs');
const { componentize: spidermonkey } = await import(
  join(sdk, 'node_modules', '@bytecodealliance', 'componentize-js', 'src', 'componentize.js')
);
const esbuild = require('esbuild');

const out = join(root, 'target', 'plugins', 'engines');
mkdirSync(out, { recursive: true });
const raw = join(root, 'bench', 'engines', 'counter-raw.js');
const write = (name, bytes) => {
  writeFileSync(join(out, name), bytes);
  console.log(`${join(out, name)}  ${(bytes.length / 1e6).toFixed(2)} MB`);
};

const { readFileSync } = await import('node:fs');
const rawSource = readFileSync(raw, 'utf8');
write(
  'raw-spidermonkey.wasm',
  (await spidermonkey({ sourcePath: raw, witPath: WIT_DIR, worldName: WORLD, disableFeatures: ['http', 'fetch-event'] })).component,
);
write('raw-quickjs.wasm', (await qjs.componentize({ witPath: WIT_DIR, jsSource: rawSource, world: WORLD, sync: true })).component);
const counter = await bundle(join(root, 'plugins', 'counter-ts'));
write('ts-optsize.wasm', (await qjs.componentize({ witPath: WIT_DIR, jsSource: counter, world: WORLD, sync: true, optSize: true })).component);
const minified = (await esbuild.transform(counter, { minify: true, format: 'esm', target: 'es2022' })).code;
write('ts-minified.wasm', (await qjs.componentize({ witPath: WIT_DIR, jsSource: minified, world: WORLD, sync: true })).component);
