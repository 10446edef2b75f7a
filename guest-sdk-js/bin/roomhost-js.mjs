#!/usr/bin/env node
// The SDK's command line: `build` (bundle + componentize), `test` (run a
// project's tests under Node) and `gen-types` (regenerate the contract's
// TypeScript types from the WIT). `roomhost build`/`dev` call `build`.

import { build } from '../src/build.js';
import { runTests } from '../src/runner.js';
import { generateTypes } from '../src/gen-types.js';

const USAGE = `usage: roomhost-js build [DIR] [--out FILE]
       roomhost-js test [DIR]
       roomhost-js gen-types [--check]`;

async function main(argv) {
  const [command, ...rest] = argv;
  // `roomhost dev` passes cargo's colour flag to every build command.
  const args = rest.filter((arg) => !arg.startsWith('--color'));
  const option = (name) => {
    const at = args.indexOf(name);
    if (at < 0) return undefined;
    const [, value] = args.splice(at, 2);
    if (value === undefined) throw new Error(`${name} needs a value`);
    return value;
  };
  switch (command) {
    case 'build': {
      const out = option('--out');
      const started = Date.now();
      const { path, storage } = await build(args[0] ?? '.', out);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const imports = storage ? 'imports storage' : 'without storage';
      process.stderr.write(`built ${path} (${imports}) in ${seconds} s\n`);
      process.stdout.write(`${path}\n`);
      return 0;
    }
    case 'test':
      return runTests(args[0] ?? '.');
    case 'gen-types': {
      const stale = await generateTypes({ check: args.includes('--check') });
      if (stale.length > 0) {
        process.stderr.write(`out of date with the WIT: ${stale.join(', ')} (run \`npm run gen-types\`)\n`);
        return 1;
      }
      return 0;
    }
    default:
      process.stderr.write(`${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`error: ${error?.message ?? error}\n`);
    process.exit(1);
  },
);
