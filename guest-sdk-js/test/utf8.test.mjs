import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utf8Decode, utf8Encode } from '../src/utf8.js';

test('encodes and decodes like the platform codec', () => {
  for (const text of ['', 'hello', 'é', '€uro', '𝄞 clef', 'mixed é € 𝄞 ascii']) {
    const bytes = utf8Encode(text);
    assert.deepEqual(bytes, new TextEncoder().encode(text), text);
    assert.equal(utf8Decode(bytes), text);
  }
});

test('lone surrogates and malformed bytes become U+FFFD', () => {
  assert.deepEqual(utf8Encode('a\ud800b'), new TextEncoder().encode('a\ud800b'));
  for (const bytes of [[0xff], [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]) {
    const input = Uint8Array.from(bytes);
    assert.equal(utf8Decode(input), new TextDecoder().decode(input), String(bytes));
  }
});

test('every short byte sequence decodes as TextDecoder does', () => {
  const decoder = new TextDecoder();
  const interesting = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff];
  for (const a of interesting) {
    for (const b of interesting) {
      for (const c of interesting) {
        const input = Uint8Array.of(a, b, c, 0x80);
        assert.equal(utf8Decode(input), decoder.decode(input), String(input));
      }
    }
  }
});
