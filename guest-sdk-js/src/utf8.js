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

/**
 * @param {Uint8Array} bytes @returns {string}
 * Malformed input decodes as the WHATWG decoder does: each maximal invalid
 * subpart becomes one U+FFFD.
 */
export function utf8Decode(bytes) {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b0 = bytes[i++];
    if (b0 < 0x80) {
      out += String.fromCharCode(b0);
      continue;
    }
    let need = 0;
    let lower = 0x80;
    let upper = 0xbf;
    let code = 0;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      need = 1;
      code = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      need = 2;
      code = b0 & 0x0f;
      if (b0 === 0xe0) lower = 0xa0;
      if (b0 === 0xed) upper = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      need = 3;
      code = b0 & 0x07;
      if (b0 === 0xf0) lower = 0x90;
      if (b0 === 0xf4) upper = 0x8f;
    } else {
      out += '\ufffd';
      continue;
    }
    let complete = true;
    for (let k = 0; k < need; k++) {
      const b = bytes[i];
      if (b === undefined || b < lower || b > upper) {
        complete = false;
        break;
      }
      code = (code << 6) | (b & 0x3f);
      lower = 0x80;
      upper = 0xbf;
      i++;
    }
    out += complete ? String.fromCodePoint(code) : '\ufffd';
  }
  return out;
}
