/**
 * `lobbyAndRooms`: a service with a lobby. The lobby instance (clients that
 * connect to the service root) runs `Lobby`; every room runs `Room`.
 */

/** A service whose lobby runs `Lobby` and whose rooms run `Room`. */
export function lobbyAndRooms(Lobby, Room) {
  if (typeof Lobby !== 'function' || typeof Room !== 'function') {
    throw new TypeError('lobbyAndRooms takes two classes: the lobby and the room');
  }
  return { lobby: Lobby, room: Room };
}
