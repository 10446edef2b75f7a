/**
 * UTF-8 text <-> bytes. The QuickJS engine rooms run on has no
 * `TextEncoder`/`TextDecoder`, so the SDK carries its own (and uses it under
 * Node too, so tests see the same behaviour). Lone surrogates become U+FFFD.
 */

/** @param {string} text @returns {Uint8Array} */
export function utf8Encode(text) {
  const out = [];
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      } else {
        code = 0xfffd;
      }
    } else if (code >= 0xd800 && code <= 0xdfff) {
      code = 0xfffd;
    }
    if (code < 0x80) {
      out.push(code);
    } else if (code < 0x800) {
      out.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    } else {
      out.push(
        0xf0 | (code >> 18),
        0x80 | ((code >> 12) & 0x3f),
        0x80 | ((code >> 6) & 0x3f),
        0x80 | (code & 0x3f),
      );
    }
  }
  return Uint8Array.from(out);
}

/** @param {Uint8Array} bytes @returns {string} */
export function utf8Decode(bytes) {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b0 = bytes[i];
    let code = 0xfffd;
    let width = 1;
    if (b0 < 0x80) {
      code = b0;
    } else if (b0 >= 0xc2 && b0 < 0xe0 && continuation(bytes, i, 1)) {
      code = ((b0 & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
      width = 2;
    } else if (b0 >= 0xe0 && b0 < 0xf0 && continuation(bytes, i, 2)) {
      const c = ((b0 & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
      if (c >= 0x800 && (c < 0xd800 || c > 0xdfff)) {
        code = c;
        width = 3;
      }
    } else if (b0 >= 0xf0 && b0 < 0xf5 && continuation(bytes, i, 3)) {
      const c =
        ((b0 & 0x07) << 18) |
        ((bytes[i + 1] & 0x3f) << 12) |
        ((bytes[i + 2] & 0x3f) << 6) |
        (bytes[i + 3] & 0x3f);
      if (c >= 0x10000 && c <= 0x10ffff) {
        code = c;
        width = 4;
      }
    }
    out += String.fromCodePoint(code);
    i += width;
  }
  return out;
}

function continuation(bytes, at, count) {
  for (let k = 1; k <= count; k++) {
    const b = bytes[at + k];
    if (b === undefined || (b & 0xc0) !== 0x80) return false;
  }
  return true;
}
