/**
 * What a room's engine lacks and the SDK supplies inside the component:
 * `console` (QuickJS has none; lines go to the host log, tagged with the
 * room) and a `Math.random` drawn from the host's secure generator (the
 * engine's own generator is seeded when the build snapshots the engine, so
 * it would give every room, in every run, the same sequence). Installed by
 * the build's entry module only; under Node nothing is replaced.
 */

/** A number in [0, 2^53) from the host's 64 random bits. */
export function random53(host) {
  // The u64 arrives as a double; its top 53 bits survive the conversion.
  return Math.min(Math.floor(host.random() / 2 ** 11), 2 ** 53 - 1);
}

/** One console argument as text. */
function show(value) {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.stack ? `${value.message}\n${value.stack}` : value.message;
  try {
    const json = JSON.stringify(value);
    return json === undefined ? String(value) : json;
  } catch {
    return String(value);
  }
}

/** Installs `console` (when missing) and `Math.random` over the host imports. */
export function installGlobals(host) {
  Math.random = () => random53(host) / 2 ** 53;
  if (typeof globalThis.console === 'undefined') {
    const line = (level) => (...args) => host.log(level, args.map(show).join(' '));
    globalThis.console = {
      log: line('info'),
      info: line('info'),
      debug: line('debug'),
      trace: line('trace'),
      warn: line('warn'),
      error: line('error'),
    };
  }
}
