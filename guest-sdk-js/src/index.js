/**
 * @roomhost/sdk: room services for roomhost in JavaScript and TypeScript.
 * A service is a class whose methods are the contract's callbacks (`init`,
 * `connect`, `message`, `disconnect`, `timer`, `reconnect`, `roomChanged`,
 * `request`, `snapshot` and `static restore`); `exportService` binds it to
 * the host, and `roomhost build` does that for you.
 */

export { ClientInfo } from './client.js';
export { HostError, Rejection, StorageError } from './errors.js';
export { exportService } from './export.js';
export { InitInfo, Snapshot } from './init.js';
export { lobbyAndRooms } from './lobby.js';
export { Message } from './message.js';
export { Room } from './room.js';
export { Storage, StorageEntry } from './storage.js';
export { utf8Decode, utf8Encode } from './utf8.js';
