/**
 * The build of a JavaScript/TypeScript room service: bundle the service and
 * the SDK into one ES module (esbuild; TypeScript is stripped, not
 * type-checked), then componentize it against the contract's WIT with the
 * QuickJS engine (componentize-qjs, synchronous ABI). Both come from npm.
 *
 * A component imports everything its world imports (componentize-qjs
 * cannot drop unused imports, as the Rust linker does), and the host holds
 * every room of a component that imports `storage` behind its output gate.
 * So the build picks the world: `room` for a service whose own code
 * mentions `storage`, otherwise `room-without-storage`, the same contract
 * minus that import, written next to the component (the contract's WIT is
 * the only ABI and stays untouched).
 */

import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The SDK package's directory. */
export const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The contract: the WIT the Rust SDK builds against (one source). */
export const WIT_DIR = resolve(SDK_DIR, '..', 'guest-sdk', 'wit');

/** The world every room plugin targets (its imports include `storage`). */
export const WORLD = 'room';

/** The contract's world minus `storage`, for services that never use it. */
export const WORLD_WITHOUT_STORAGE = 'room-without-storage';

/** Entry points tried, in order, when package.json names none. */
const ENTRIES = ['src/index.ts', 'src/index.js', 'index.ts', 'index.js'];

/** What `package.json` says about a service project. */
export function readProject(dir) {
  const manifest = join(dir, 'package.json');
  if (!existsSync(manifest)) throw new Error(`${dir} is not a service project: it has no package.json`);
  const pkg = JSON.parse(readFileSync(manifest, 'utf8'));
  const name = String(pkg.name ?? basename(resolve(dir))).replace(/^@[^/]*\//, '');
  const configured = pkg.roomhost?.entry;
  const entry = configured ?? ENTRIES.find((candidate) => existsSync(join(dir, candidate)));
  if (!entry || !existsSync(join(dir, entry))) {
    throw new Error(`${dir} has no service entry: add src/index.ts or set "roomhost": { "entry": ... } in package.json`);
  }
  const storage = pkg.roomhost?.storage;
  if (storage !== undefined && typeof storage !== 'boolean') {
    throw new Error(`"roomhost": { "storage": ... } in ${manifest} must be true or false`);
  }
  return { name, entry: resolve(dir, entry), storage: storage ?? null };
}

/** The component's default path: `DIR/target/roomhost/NAME.wasm`. */
export function defaultOutput(dir, name) {
  return join(resolve(dir), 'target', 'roomhost', `${name.replace(/-/g, '_')}.wasm`);
}

/** The name the entry module has in esbuild's metafile. */
const ENTRY_NAME = 'roomhost-entry.js';

/** The module that binds the service's default export to the host (with `storage` or not). */
function wrapper(entry, storage) {
  return [
    "import * as host from 'roomhost:room/host@0.4.0';",
    "import * as directory from 'roomhost:room/directory@0.4.0';",
    "import * as auth from 'roomhost:room/auth@0.4.0';",
    ...(storage ? ["import * as storage from 'roomhost:room/storage@0.4.0';"] : []),
    "import { exportService } from '@roomhost/sdk';",
    `import { installGlobals } from ${JSON.stringify(join(SDK_DIR, 'src', 'globals.js'))};`,
    'installGlobals(host);',
    `import Service from ${JSON.stringify(entry)};`,
    `export const service = exportService(Service, { host, directory, auth${storage ? ', storage' : ''} });`,
    '',
  ].join('\n');
}

/**
 * Whether the bundled service's own modules (everything in the bundle but
 * the SDK and the entry: the service and the packages it uses) mention
 * `storage`. `room.storage` is a property, so no module marks its use; a
 * word search over what esbuild kept (a module tree-shaken away does not
 * count) errs only towards importing `storage` (a comment saying it costs
 * the room the output gate, nothing else), never towards a service whose
 * `room.storage` throws.
 */
function mentionsStorage(metafile, dir) {
  const sdk = join(SDK_DIR, 'src') + sep;
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      if (bytesInOutput === 0 || input === ENTRY_NAME || input.startsWith('<stdin>')) continue;
      const path = resolve(dir, input);
      if (path.startsWith(sdk)) continue;
      if (/\bstorage\b/.test(readFileSync(path, 'utf8'))) return true;
    }
  }
  return false;
}

/** One esbuild run over the service in `dir`, its entry importing `storage` or not. */
async function bundleWith(dir, entry, storage) {
  const esbuild = await import('esbuild');
  return esbuild.build({
    stdin: { contents: wrapper(entry, storage), resolveDir: resolve(dir), loader: 'js', sourcefile: ENTRY_NAME },
    absWorkingDir: resolve(dir),
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    external: ['roomhost:*'],
    alias: { '@roomhost/sdk': join(SDK_DIR, 'src', 'index.js') },
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
}

/**
 * Bundles the service in `dir` into one ES module: `{ source, storage }`,
 * `storage` saying whether it imports the contract's `storage` interface
 * (package.json's `"roomhost": { "storage": true | false }` decides when
 * set; otherwise whether the service's code mentions `storage`).
 */
export async function bundle(dir) {
  const { entry, storage: configured } = readProject(dir);
  const without = await bundleWith(dir, entry, false);
  const storage = configured ?? mentionsStorage(without.metafile, resolve(dir));
  const result = storage ? await bundleWith(dir, entry, true) : without;
  return { source: result.outputFiles[0].text, storage };
}

/**
 * The contract's WIT plus a world like `room` without its `storage` import,
 * written under `dir`; its path. Derived from `room` itself, so an
 * interface a later contract adds reaches both worlds.
 */
function witWithoutStorage(dir) {
  const contract = readFileSync(join(WIT_DIR, 'room.wit'), 'utf8');
  const room = contract.match(new RegExp(`^world ${WORLD} \\{[^}]*\\}`, 'm'));
  const storage = /^\s*import storage;\n/m;
  if (room === null || !storage.test(room[0])) {
    throw new Error(`${WIT_DIR}/room.wit has no \`world ${WORLD}\` importing storage: the SDK does not match the contract`);
  }
  const world = room[0].replace(`world ${WORLD} {`, `world ${WORLD_WITHOUT_STORAGE} {`).replace(storage, '');
  const note = [
    '',
    "/// Written by the JavaScript SDK's build: `room` without `storage`, for",
    "/// services that never use it (their rooms skip the host's output gate).",
    '',
  ].join('\n');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'room.wit');
  writeFileSync(path, `${contract}${note}${world}\n`);
  return path;
}

/**
 * Builds the service in `dir` to a component at `out` (default: under
 * `DIR/target/roomhost/`); returns `{ path, storage }`: the component's
 * path and whether it imports `storage`.
 */
export async function build(dir, out) {
  const { name } = readProject(dir);
  const output = out ? resolve(out) : defaultOutput(dir, name);
  const { source, storage } = await bundle(dir);
  const { componentize } = require('componentize-qjs');
  const witPath = storage ? WIT_DIR : witWithoutStorage(join(dirname(output), `${basename(output, '.wasm')}-wit`));
  const world = storage ? WORLD : WORLD_WITHOUT_STORAGE;
  const { component } = await componentize({ witPath, jsSource: source, world, sync: true });
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, component);
  return { path: output, storage };
}
