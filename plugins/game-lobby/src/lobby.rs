//! The lobby: the service root, where every client sends its join request.
//!
//! - Text frames are ignored. The first binary frame is decoded as a
//!   [`JoinRequest`]; failure → `[05]"Failed to parse join request."`.
//! - An unconfigured game → `[05]"Unknown game {game_id}."`; a room key
//!   `"{room_id}#{game_id}"` over the host's 256-byte room id limit →
//!   [`errors::room_id_too_long`].
//! - **create**: if the directory lists a live game under the key →
//!   `[05]"Room {room_id} already exists for game {game_id}."`; otherwise the
//!   client is transferred to the key with `create: true`.
//! - **join** and **reconnect**: the client is transferred with
//!   `create: false`; when the host reports that the room does not exist →
//!   `[05]"Room {room_id} does not exist for game {game_id}."` (join) or
//!   `[05]"Room {room_id} no longer exists for game {game_id}."` (reconnect).
//!   A reconnect to a room that is not running goes with `create: true`
//!   instead, so a game stored before a host restart wakes; a room with
//!   nothing stored rejects the token with the same text.
//! - The hand-off data is the request re-encoded in the form it came in; the
//!   [game room](crate::game) runs every other check in its `connect`.
//! - A client the game room rejected comes back here with the reason, and
//!   gets `[05]` + that reason. (A "no such room" from the host, when the
//!   room ended during the transfer, becomes the protocol's text.)
//!
//! Every failure is `[05]` + text followed by a close with code 1000 and
//! the text as the reason (truncated by the host to 123 bytes). The lobby
//! keeps no per-client state: a client leaves it on its first binary frame,
//! by transfer or by close.

use roomhost_sdk::limits::MAX_ROOM_ID_BYTES;
use roomhost_sdk::{
    ClientId, ClientInfo, Handoff, InitInfo, Message, Rejection, Room, RoomEntry, RoomService,
    TransferError,
};
use serde_json::Value;

use crate::config::Config;
use crate::errors;
use crate::wire::{JoinRequest, error_frame};

/// The lobby's state: only the configuration.
#[derive(Debug, Default)]
pub struct Lobby {
    config: Config,
}

impl Lobby {
    /// A lobby serving the games of `config`.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sends the client where its request says, or explains why not.
    fn route(&self, room: &mut Room<'_>, client: ClientId, bytes: &[u8]) -> Result<(), String> {
        let request = JoinRequest::decode(bytes).map_err(|err| {
            room.debug(&format!("client {client}: malformed join request: {err}"));
            errors::PARSE_FAILED.to_owned()
        })?;
        let JoinRequest {
            game_id, room_id, ..
        } = &request;
        if self.config.game(game_id).is_none() {
            return Err(errors::unknown_game(game_id));
        }
        let key = request.room_key();
        if key.len() > MAX_ROOM_ID_BYTES {
            return Err(errors::room_id_too_long(game_id));
        }
        let data = request.encode();
        let create = request.create_room && request.reconnect_token.is_none();
        if create {
            if is_live_game(&room.rooms(), &key) {
                return Err(errors::room_exists(room_id, game_id));
            }
            room.transfer_to_room(client, &key, &data, true)
                .map_err(|err| errors::cannot_create(room_id, game_id, &err.to_string()))
        } else {
            // A reconnect to a room that is not running starts it: a game
            // stored before a host restart comes back from storage (a room
            // with nothing stored refuses the token as "no longer exists",
            // and ends).
            let wake = request.reconnect_token.is_some() && !is_live_game(&room.rooms(), &key);
            room.transfer_to_room(client, &key, &data, wake)
                .map_err(|err| match err {
                    TransferError::NoSuchRoom => missing_text(&request),
                    other => errors::cannot_join(room_id, game_id, &other.to_string()),
                })
        }
    }
}

/// Sends `[05]text` to `client` and closes it (code 1000, `text` as the
/// reason).
pub fn fail(room: &mut Room<'_>, client: ClientId, text: &str) {
    room.send(client, error_frame(text));
    room.close(client, 1000, text);
}

/// Whether the directory lists a game under `key` that has not ended (an
/// ended room lingers until its last client is gone, and accepts a new
/// creator meanwhile).
fn is_live_game(rooms: &[RoomEntry], key: &str) -> bool {
    rooms
        .iter()
        .any(|entry| entry.room_id == key && entry.info.get("ended") != Some(&Value::Bool(true)))
}

/// Whether a bounce's `reason` is the host's "no such room": the room
/// ended while the client was on its way. The host words it as the rules'
/// [`TransferError::NoSuchRoom`], the one text both share.
fn is_no_such_room(reason: &str) -> bool {
    reason == TransferError::NoSuchRoom.to_string()
}

/// The protocol's text for a missing room: join and reconnect differ.
fn missing_text(request: &JoinRequest) -> String {
    if request.reconnect_token.is_some() {
        errors::room_gone(&request.room_id, &request.game_id)
    } else {
        errors::room_missing(&request.room_id, &request.game_id)
    }
}

/// What a bounced client is told: the game room's reason, or the missing
/// room text when the host reports that the room no longer exists.
fn bounce_text(handoff: &Handoff, reason: &str) -> String {
    match JoinRequest::decode(&handoff.data) {
        Ok(request) if is_no_such_room(reason) => missing_text(&request),
        _ => reason.to_owned(),
    }
}

impl RoomService for Lobby {
    /// Reads the configuration; an invalid one refuses to start the
    /// lobby, so the server does not start.
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        self.config = Config::parse(&info.config).map_err(|err| err.to_string())?;
        let games: Vec<&str> = self.config.games.iter().map(|g| g.name.as_str()).collect();
        room.info(&format!(
            "serving {games:?}, host grace {} ms",
            self.config.host_grace_ms
        ));
        Ok(())
    }

    /// A client arrived: by URL (it will send its request), or bounced back
    /// by the game room it was sent to (it gets the reason and is closed).
    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        let Some(handoff) = &client.handoff else {
            return Ok(());
        };
        let Some(reason) = &handoff.rejected else {
            return Ok(());
        };
        room.debug(&format!(
            "client {} came back from {:?}: {reason}",
            client.id, handoff.from_room
        ));
        fail(room, client.id, &bounce_text(handoff, reason));
        Ok(())
    }

    /// A frame from a client in the lobby: the join request, if binary.
    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let Message::Binary(bytes) = message else {
            return;
        };
        if let Err(text) = self.route(room, client, &bytes) {
            fail(room, client, &text);
        }
    }
}
