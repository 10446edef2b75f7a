/**
 * `exportService`: turns a service class (or a `lobbyAndRooms` pair) into
 * the contract's `service` export. It owns the one instance per room, the
 * `Room` handed to every callback, and the mapping of the service's
 * results onto the contract's (rejections, errors, snapshots, responses).
 */

import { Rejection } from './errors.js';
import { clientInfo } from './client.js';
import { InitInfo, Snapshot, snapshotBytes } from './init.js';
import { Message } from './message.js';
import { Room } from './room.js';
import { toResponse } from './http.js';

/** Reads the service instance behind an export (the test harness's `service`). */
export const INSTANCE = Symbol('roomhost service instance');

/**
 * The contract's `service` export for `service`, calling the host through
 * `imports` (`{ host, directory, auth }`).
 */
export function exportService(service, imports) {
  const { lobby: lobbyClass, room: roomClass } = roles(service);
  let instance = null;
  let room = null;

  const call = (name, ...args) => {
    const method = instance?.[name];
    return typeof method === 'function' ? method.call(instance, room, ...args) : undefined;
  };

  return {
    [INSTANCE]: () => instance,

    describe() {
      return {
        lobby: lobbyClass !== null,
        reconnectGraceMs: Math.max(grace(lobbyClass), grace(roomClass)),
      };
    },

    init(raw) {
      const Class = raw.lobby && lobbyClass !== null ? lobbyClass : roomClass;
      room = new Room(imports, raw);
      const info = new InitInfo(raw);
      try {
        if (raw.restored !== null && raw.restored !== undefined) {
          if (typeof Class.restore !== 'function') {
            throw new Error('this service does not restore snapshots');
          }
          instance = Class.restore(room, info, new Snapshot(raw.restored));
          if (!(instance instanceof Class)) {
            throw new Error(`${Class.name}.restore must return a ${Class.name}`);
          }
        } else {
          instance = new Class();
          call('init', info);
        }
      } catch (error) {
        throw reason(error);
      }
    },

    connect(raw) {
      let outcome;
      try {
        outcome = call('connect', clientInfo(raw));
      } catch (error) {
        if (error instanceof Rejection) throw rejection(error);
        // Anything else is a failure of the service, as a Rust panic: the
        // room is disposed (never read as a rejection record).
        throw error instanceof Error ? error : new Error(String(error));
      }
      if (outcome instanceof Rejection) throw rejection(outcome);
    },

    message(client, frame) {
      call('message', client, Message.fromFrame(frame));
    },

    disconnect(client, why) {
      call('disconnect', client, why);
    },

    timer(id) {
      call('timer', id);
    },

    reconnect(client, token) {
      call('reconnect', client, token);
    },

    roomChanged(change) {
      const value =
        change.tag === 'updated'
          ? { kind: 'updated', roomId: change.val.roomId, clients: change.val.clients, info: JSON.parse(change.val.info) }
          : { kind: 'closed', roomId: change.val };
      call('roomChanged', value);
    },

    snapshot() {
      if (typeof instance?.snapshot !== 'function') return null;
      try {
        return snapshotBytes(instance.snapshot());
      } catch (error) {
        throw reason(error);
      }
    },

    request(req) {
      if (typeof instance?.request !== 'function') return toResponse({ status: 404, body: 'not found' });
      return toResponse(call('request', req));
    },
  };
}

/** The lobby and room classes of `service`. */
function roles(service) {
  if (typeof service === 'function') return { lobby: null, room: service };
  if (service && typeof service.lobby === 'function' && typeof service.room === 'function') {
    return { lobby: service.lobby, room: service.room };
  }
  throw new TypeError('a service is a class, or lobbyAndRooms(Lobby, Room)');
}

/** A class's reconnection grace period (`static reconnectGraceMs`). */
function grace(Class) {
  const ms = Class?.reconnectGraceMs ?? 0;
  return Number.isFinite(ms) && ms > 0 ? Math.min(Math.floor(ms), 0xffffffff) : 0;
}

/** A thrown value as an error message for the contract's `result<_, string>`. */
function reason(error) {
  return error instanceof Error ? error.message : String(error);
}

/** The contract's `rejection` record. */
function rejection(value) {
  const code = Number.isInteger(value.code) ? value.code : null;
  return { code, reason: value.reason };
}
