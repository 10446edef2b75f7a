/**
 * A chat room per room id, in TypeScript: the protocol of the Rust `chat`
 * plugin.
 *
 * Clients connect with `?name=NAME` (1 to 32 characters, no control
 * characters, unique per room ignoring case). They get
 * `{"type":"welcome","you":NAME,"members":[...]}`, the others
 * `{"type":"joined","name":NAME}`. Clients send `{"type":"say","text":...}`
 * (everyone gets `{"type":"said","from":NAME,"text":...,"ts":MS}`) and
 * `{"type":"typing"}` (the others get `typing`, then `stopped_typing` after
 * `typing_timeout_ms` without another). Leaving broadcasts `left`. Errors
 * come back as `{"type":"error","message":...}`. Configuration:
 * `{"typing_timeout_ms": 3000, "max_message_len": 1000}`; invalid fields
 * are warned about and keep their defaults. The room's listing metadata is
 * `{"members": n}`. State survives hot reloads (a JSON snapshot).
 */

import {
  type ClientId,
  type ClientInfo,
  type TimerId,
  InitInfo,
  Message,
  Rejection,
  Room,
  Snapshot,
} from '@roomhost/sdk';

/** The longest name, in characters. */
export const MAX_NAME_CHARS = 32;

export interface Config {
  typing_timeout_ms: number;
  max_message_len: number;
}

export const DEFAULT_CONFIG: Config = { typing_timeout_ms: 3000, max_message_len: 1000 };

/** Parses the configuration, with a warning for each field it ignores. */
export function parseConfig(text: string): { config: Config; warnings: string[] } {
  const config = { ...DEFAULT_CONFIG };
  const warnings: string[] = [];
  if (text.trim() === '' || text.trim() === 'null') return { config, warnings };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    warnings.push(`config is not valid JSON (${(error as Error).message}); using defaults`);
    return { config, warnings };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    warnings.push('config is not a JSON object; using defaults');
    return { config, warnings };
  }
  for (const name of ['typing_timeout_ms', 'max_message_len'] as const) {
    const field = (value as Record<string, unknown>)[name];
    if (field === undefined) continue;
    if (typeof field === 'number' && Number.isSafeInteger(field) && field >= 0) {
      config[name] = field;
    } else {
      warnings.push(`config field "${name}" is invalid (expected a non-negative integer); using ${config[name]}`);
    }
  }
  return { config, warnings };
}

interface Member {
  name: string;
  typing: boolean;
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export default class Chat {
  config: Config = { ...DEFAULT_CONFIG };
  members = new Map<ClientId, Member>();

  /** The members' names, in client id order. */
  names(): string[] {
    return [...this.members].sort(([a], [b]) => a - b).map(([, member]) => member.name);
  }

  init(room: Room, info: InitInfo): void {
    const { config, warnings } = parseConfig(info.config);
    for (const warning of warnings) room.warn(warning);
    this.config = config;
    this.updateInfo(room);
  }

  connect(room: Room, client: ClientInfo): Rejection | void {
    const raw = client.queryParam('name');
    if (raw === null) return new Rejection('a name is required: connect with ?name=YOUR_NAME');
    const name = raw.trim();
    const chars = Array.from(name).length;
    if (chars === 0 || chars > MAX_NAME_CHARS) {
      return new Rejection(`names must be 1 to ${MAX_NAME_CHARS} characters`);
    }
    if (CONTROL.test(name)) return new Rejection('names cannot contain control characters');
    const lower = name.toLowerCase();
    if ([...this.members.values()].some((member) => member.name.toLowerCase() === lower)) {
      return new Rejection(`the name ${JSON.stringify(name)} is already taken in this room`);
    }
    room.sendJson(client.id, { type: 'welcome', you: name, members: [...this.names(), name] });
    room.broadcastJson({ type: 'joined', name }, [client.id]);
    this.members.set(client.id, { name, typing: false });
    this.updateInfo(room);
  }

  message(room: Room, client: ClientId, message: Message): void {
    if (message.isBinary) return error(room, client, 'binary frames are not supported');
    let incoming: { type?: unknown; text?: unknown };
    try {
      incoming = message.json() as typeof incoming;
    } catch (err) {
      return error(room, client, `invalid message: ${(err as Error).message}`);
    }
    if (incoming?.type === 'say' && typeof incoming.text === 'string') return this.say(room, client, incoming.text);
    if (incoming?.type === 'typing') return this.typing(room, client);
    error(room, client, 'invalid message: expected {"type":"say","text":...} or {"type":"typing"}');
  }

  disconnect(room: Room, client: ClientId): void {
    const member = this.members.get(client);
    if (!member) return;
    this.members.delete(client);
    if (member.typing) room.cancelTimer(client);
    room.broadcastJson({ type: 'left', name: member.name });
    this.updateInfo(room);
  }

  timer(room: Room, timer: TimerId): void {
    const member = this.members.get(timer);
    if (member?.typing) {
      member.typing = false;
      room.broadcastJson({ type: 'stopped_typing', name: member.name }, [timer]);
    }
  }

  snapshot(): string {
    return JSON.stringify({ config: this.config, members: [...this.members] });
  }

  static restore(_room: Room, _info: InitInfo, snapshot: Snapshot): Chat {
    const saved = snapshot.json() as { config: Config; members: Array<[ClientId, Member]> };
    const chat = new Chat();
    chat.config = saved.config;
    chat.members = new Map(saved.members);
    return chat;
  }

  private say(room: Room, client: ClientId, text: string): void {
    const length = Array.from(text).length;
    if (text.trim() === '') return error(room, client, 'text must not be empty');
    if (length > this.config.max_message_len) {
      return error(room, client, `text is ${length} characters; the limit is ${this.config.max_message_len}`);
    }
    const member = this.members.get(client);
    if (!member) return;
    if (member.typing) {
      member.typing = false;
      room.cancelTimer(client);
    }
    room.broadcastJson({ type: 'said', from: member.name, text, ts: room.nowMs() });
  }

  private typing(room: Room, client: ClientId): void {
    const member = this.members.get(client);
    if (!member) return;
    try {
      room.setTimer(client, this.config.typing_timeout_ms);
    } catch (err) {
      room.warn(`cannot track typing of ${JSON.stringify(member.name)}: ${(err as Error).message}`);
      return;
    }
    if (!member.typing) {
      member.typing = true;
      room.broadcastJson({ type: 'typing', name: member.name }, [client]);
    }
  }

  private updateInfo(room: Room): void {
    room.setInfo({ members: this.members.size });
  }
}

function error(room: Room, client: ClientId, message: string): void {
  room.sendJson(client, { type: 'error', message });
}
