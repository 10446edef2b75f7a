//! The error texts the relay sends after `[05]`, exactly as the protocol
//! page words them (clients may match on them), plus the few this
//! implementation adds for cases the page does not cover.

use roomhost_sdk::limits::MAX_ROOM_ID_BYTES;

/// The join request could not be decoded.
pub const PARSE_FAILED: &str = "Failed to parse join request.";
/// A reconnect token matches no player of the room.
pub const INVALID_TOKEN: &str = "Invalid reconnect token.";
/// The host's token was used while the host is connected.
pub const HOST_CONNECTED: &str = "Host is already connected.";
/// To a client the host kicked.
pub const KICKED: &str = "We got rejected by server.";
/// To every client when the game ends (host's `00`, or host gone for good).
pub const SERVER_LEFT: &str = "Server has left the game.";
/// To a host that sent a frame of an unknown type.
pub const ILLEGAL_HOST: &str = "Illegal Server -> Client command.";
/// To a client that sent a frame of an unknown type.
pub const ILLEGAL_CLIENT: &str = "Illegal Command from client";

/// Added: to a client that connected to a game room by URL instead of
/// through the service root.
pub const JOIN_THROUGH_LOBBY: &str = "Connect to the service root and send a join request.";
/// Added: to a player's old connection when the same player reconnected
/// with its token on a new one.
pub const RECONNECTED_ELSEWHERE: &str = "Reconnected from another connection.";
/// Added: the close reason (no `[05]` frame) for a client that sent `03`.
pub const CLIENT_LEFT: &str = "Client disconnected intentionally";
/// Added: the close reason (no `[05]` frame) for a host that sent `00`.
pub const HOST_ENDED: &str = "Server disconnected intentionally";

/// The game is not configured.
pub fn unknown_game(game_id: &str) -> String {
    format!("Unknown game {game_id}.")
}

/// `create` for a room that exists.
pub fn room_exists(room_id: &str, game_id: &str) -> String {
    format!("Room {room_id} already exists for game {game_id}.")
}

/// `join` for a room that does not exist.
pub fn room_missing(room_id: &str, game_id: &str) -> String {
    format!("Room {room_id} does not exist for game {game_id}.")
}

/// A reconnect to a room that does not exist (any more).
pub fn room_gone(room_id: &str, game_id: &str) -> String {
    format!("Room {room_id} no longer exists for game {game_id}.")
}

/// `join` for a full room; `max` counts the host.
pub fn room_full(room_id: &str, max: u32) -> String {
    format!("Room {room_id} exceeded max amount of players {max}.")
}

/// `join` for a room that has handed out every player id.
pub fn out_of_ids(room_id: &str) -> String {
    format!("Room {room_id} run out of client ids.")
}

/// Added: the room key `"{room_id}#{game_id}"` is over the host's room id
/// limit.
pub fn room_id_too_long(game_id: &str) -> String {
    format!(
        "Room id too long for game {game_id}: room and game id may have at most {} bytes together.",
        MAX_ROOM_ID_BYTES - 1
    )
}

/// Added: the host refused to create the room (e.g. its room limit).
pub fn cannot_create(room_id: &str, game_id: &str, why: &str) -> String {
    format!("Cannot create room {room_id} for game {game_id}: {why}")
}

/// Added: the host refused a transfer for a reason other than a missing
/// room.
pub fn cannot_join(room_id: &str, game_id: &str, why: &str) -> String {
    format!("Cannot join room {room_id} for game {game_id}: {why}")
}
