/**
 * WebSocket frames as the service sees them: `Message` (text or binary),
 * and the conversion between messages and the contract's `frame` variant.
 */

import { utf8Decode, utf8Encode } from './utf8.js';

/** One WebSocket data frame: text or binary. */
export class Message {
  /** @param {'text' | 'binary'} kind @param {string | Uint8Array} data */
  constructor(kind, data) {
    this.kind = kind;
    this.data = data;
  }

  /** A text frame. */
  static text(text) {
    return new Message('text', String(text));
  }

  /** A binary frame. */
  static binary(bytes) {
    return new Message('binary', bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes));
  }

  /** A text frame holding `value` as JSON. */
  static json(value) {
    return new Message('text', JSON.stringify(value));
  }

  /** Whether this is a text frame. */
  get isText() {
    return this.kind === 'text';
  }

  /** Whether this is a binary frame. */
  get isBinary() {
    return this.kind === 'binary';
  }

  /** The text of a text frame; `null` for a binary one. */
  get text() {
    return this.kind === 'text' ? this.data : null;
  }

  /** The frame's bytes (a text frame's UTF-8). */
  get bytes() {
    return this.kind === 'binary' ? this.data : utf8Encode(this.data);
  }

  /** The frame parsed as JSON (text or UTF-8 bytes); throws `SyntaxError`. */
  json() {
    return JSON.parse(this.kind === 'text' ? this.data : utf8Decode(this.data));
  }

  /** From the contract's `frame` variant. */
  static fromFrame(frame) {
    return new Message(frame.tag, frame.val);
  }
}

/**
 * The contract's `frame` for what a service sends: a `Message`, a string
 * (text) or bytes (binary).
 */
export function toFrame(message) {
  if (message instanceof Message) return { tag: message.kind, val: message.data };
  if (typeof message === 'string') return { tag: 'text', val: message };
  if (message instanceof Uint8Array) return { tag: 'binary', val: message };
  throw new TypeError('a frame is a Message, a string (text) or a Uint8Array (binary)');
}
