/**
 * `ClientInfo`: the contract's `client-info` record as a service reads it,
 * with the query string and token claims parsed on demand.
 */

import { utf8Decode } from './utf8.js';

/** Wraps the contract's `client-info` record. */
export function clientInfo(raw) {
  return new ClientInfo(raw);
}

export class ClientInfo {
  constructor(raw) {
    this.id = raw.id;
    this.path = raw.path;
    this.query = raw.query;
    this.identity = raw.identity ?? null;
    this.handoff = raw.handoff
      ? {
          fromRoom: raw.handoff.fromRoom ?? null,
          data: raw.handoff.data,
          rejected: raw.handoff.rejected ?? null,
          text() {
            return utf8Decode(this.data);
          },
        }
      : null;
    this.claims = raw.claims ?? null;
    this.readOnly = raw.readOnly;
    this.resumeToken = raw.resumeToken ?? null;
  }

  /** The first value of query parameter `name`, decoded; `null` if absent. */
  queryParam(name) {
    for (const pair of this.query.split('&')) {
      if (pair === '') continue;
      const at = pair.indexOf('=');
      const key = decode(at < 0 ? pair : pair.slice(0, at));
      if (key === name) return decode(at < 0 ? '' : pair.slice(at + 1));
    }
    return null;
  }

  /** The verified token's claims, parsed; `null` when there are none. */
  claimsJson() {
    return this.claims === null ? null : JSON.parse(this.claims);
  }

  /** The record as the contract carries it (for a restart's replay). */
  toRecord() {
    return {
      id: this.id,
      path: this.path,
      query: this.query,
      identity: this.identity,
      handoff: this.handoff && {
        fromRoom: this.handoff.fromRoom,
        data: this.handoff.data,
        rejected: this.handoff.rejected,
      },
      claims: this.claims,
      readOnly: this.readOnly,
      resumeToken: this.resumeToken,
    };
  }
}

/** Form-urlencoded decoding (`+` is a space); malformed escapes stay as they are. */
function decode(text) {
  const spaced = text.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}
