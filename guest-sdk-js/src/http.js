/**
 * HTTP requests to a room: what `request` may return (a response object with
 * a string, bytes or JSON body) as the contract's `http-response`.
 */

import { utf8Encode } from './utf8.js';

/**
 * `{ status?, headers?, body?, json? }` as the contract's record: `json` is
 * sent as `application/json`, a string body as UTF-8.
 */
export function toResponse(response) {
  const value = response ?? {};
  const headers = Object.entries(value.headers ?? {}).map(([name, v]) => [name, String(v)]);
  let body = value.body ?? new Uint8Array(0);
  if ('json' in value) {
    body = JSON.stringify(value.json);
    if (!headers.some(([name]) => name.toLowerCase() === 'content-type')) {
      headers.push(['content-type', 'application/json']);
    }
  }
  return {
    status: Number.isInteger(value.status) ? value.status : 200,
    headers,
    body: typeof body === 'string' ? utf8Encode(body) : body,
  };
}
