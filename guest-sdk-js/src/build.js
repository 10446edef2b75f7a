/**
 * The build of a JavaScript/TypeScript room service: bundle the service and
 * the SDK into one ES module (esbuild; TypeScript is stripped, not
 * type-checked), then componentize it against the contract's WIT with the
 * QuickJS engine (componentize-qjs, synchronous ABI). Both come from npm.
 */

import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The SDK package's directory. */
export const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The contract: the WIT the Rust SDK builds against (one source). */
export const WIT_DIR = resolve(SDK_DIR, '..', 'guest-sdk', 'wit');

/** The world every room plugin targets. */
export const WORLD = 'room';

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
  return { name, entry: resolve(dir, entry) };
}

/** The component's default path: `DIR/target/roomhost/NAME.wasm`. */
export function defaultOutput(dir, name) {
  return join(resolve(dir), 'target', 'roomhost', `${name.replace(/-/g, '_')}.wasm`);
}

/** The module that binds the service's default export to the host. */
function wrapper(entry) {
  return [
    "import * as host from 'roomhost:room/host@0.4.0';",
    "import * as directory from 'roomhost:room/directory@0.4.0';",
    "import * as auth from 'roomhost:room/auth@0.4.0';",
    "import { exportService } from '@roomhost/sdk';",
    `import { installGlobals } from ${JSON.stringify(join(SDK_DIR, 'src', 'globals.js'))};`,
    'installGlobals(host);',
    `import Service from ${JSON.stringify(entry)};`,
    'export const service = exportService(Service, { host, directory, auth });',
    '',
  ].join('\n');
}

/** Bundles the service in `dir` into one ES module's source. */
export async function bundle(dir) {
  const { entry } = readProject(dir);
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    stdin: { contents: wrapper(entry), resolveDir: resolve(dir), loader: 'js', sourcefile: 'roomhost-entry.js' },
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    external: ['roomhost:*'],
    alias: { '@roomhost/sdk': join(SDK_DIR, 'src', 'index.js') },
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

/**
 * Builds the service in `dir` to a component at `out` (default: under
 * `DIR/target/roomhost/`); returns the component's path.
 */
export async function build(dir, out) {
  const { name } = readProject(dir);
  const output = out ? resolve(out) : defaultOutput(dir, name);
  const source = await bundle(dir);
  const { componentize } = require('componentize-qjs');
  const { component } = await componentize({ witPath: WIT_DIR, jsSource: source, world: WORLD, sync: true });
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, component);
  return output;
}
