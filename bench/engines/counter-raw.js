// A minimal counter written straight against the contract, without the SDK,
// so the same source componentizes with either JavaScript engine (the
// engines disagree only on values this file passes through unchanged).
// `bench/engines/build.mjs` builds it; the languages bench measures it.
import { broadcast, send, setInfo } from 'roomhost:room/host@0.4.0';

let count = 0;
const text = (val) => ({ tag: 'text', val });

export const service = {
  describe: () => ({ lobby: false, reconnectGraceMs: 0 }),
  init() {
    setInfo(JSON.stringify({ count }));
  },
  connect(client) {
    send(client.id, text(JSON.stringify({ count })));
  },
  message(_client, frame) {
    if (frame.tag === 'text' && frame.val.trim() === 'increment') count += 1;
    broadcast(text(JSON.stringify({ count })), []);
    setInfo(JSON.stringify({ count }));
  },
  disconnect() {},
  timer() {},
  reconnect() {},
  roomChanged() {},
  snapshot: () => null,
  request: () => ({ status: 404, headers: [], body: new Uint8Array(0) }),
};
