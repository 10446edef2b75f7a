//! A codemol-compatible share relay (see `README.md` and
//! `shared/protocols/relay.md`).
//!
//! A host streams visualization commands to viewers; late joiners get the
//! history replayed. Every client connects to the service root and picks a
//! session by message; each session is its own room.
//!
//! - The **lobby** ([`lobby`]) receives the clients at the root (it claims
//!   the server root `/` in `init`, so `ws://HOST:PORT/` works). `create`
//!   moves the client into a new room named by a fresh 6-hex-digit code as
//!   its host; `join` moves it into an existing room as a viewer.
//! - A **session** ([`session`]) relays `command`/`activate` from the host
//!   to the viewers, routes `history_request`/`history` between them, keeps
//!   a bounded [`record`] to answer history requests itself when the host is
//!   slow or absent, and ends on the host's `close` or departure.
//!
//! Configuration (all optional):
//! `{"history_timeout_ms": 2000, "max_record_entries": 10000,
//! "max_record_bytes": 8388608}`.

#![warn(missing_docs)]

pub mod lobby;
pub mod record;
pub mod session;

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, Message, Room, RoomChange, RoomService,
    TimerId, room_service,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lobby::Lobby;
use crate::session::Session;

/// Hand-off data of a client sent by the lobby to create a room.
pub const HANDOFF_HOST: &[u8] = b"host";
/// Hand-off data of a client sent by the lobby to join a room.
pub const HANDOFF_VIEWER: &[u8] = b"viewer";
/// Hand-off data of a host sent back to the lobby after it closed its room.
pub const HANDOFF_CLOSED: &[u8] = b"closed";

/// The error text for a `join` the relay cannot honour.
pub const UNKNOWN_ROOM_CODE: &str = "Unknown room code";

/// The relay's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How long a session waits for the host's `history` before answering a
    /// viewer's `history_request` from its record, in milliseconds.
    pub history_timeout_ms: u64,
    /// The most `command`/`activate` frames a session records.
    pub max_record_entries: usize,
    /// The most bytes (of `data` JSON text) a session records.
    pub max_record_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history_timeout_ms: 2000,
            max_record_entries: 10_000,
            max_record_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The relay service: the lobby or one session, decided in `init`.
#[derive(Debug, Default)]
#[room_service]
pub struct Relay {
    role: Role,
}

/// What this instance is.
#[derive(Debug, Default)]
enum Role {
    /// Before `init` (never seen by clients).
    #[default]
    Starting,
    /// The service's lobby.
    Lobby(Lobby),
    /// One share session.
    Session(Box<Session>),
}

impl Relay {
    /// The lobby state, if this instance is the lobby.
    pub fn lobby(&self) -> Option<&Lobby> {
        match &self.role {
            Role::Lobby(lobby) => Some(lobby),
            _ => None,
        }
    }

    /// The session state, if this instance is a session.
    pub fn session(&self) -> Option<&Session> {
        match &self.role {
            Role::Session(session) => Some(session),
            _ => None,
        }
    }
}

impl RoomService for Relay {
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) {
        let config = info.config::<Config>().unwrap_or_else(|err| {
            room.warn(&format!("invalid config ({err}); using the defaults"));
            Config::default()
        });
        self.role = if info.lobby {
            if let Err(err) = room.serve_root() {
                room.warn(&format!(
                    "{err}; clients must connect to the service's own root"
                ));
            }
            Role::Lobby(Lobby::default())
        } else {
            Role::Session(Box::new(Session::new(room, &config)))
        };
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), String> {
        match &mut self.role {
            Role::Starting => Err("the relay is starting".to_owned()),
            Role::Lobby(lobby) => {
                lobby.connect(room, client);
                Ok(())
            }
            Role::Session(session) => session.connect(room, client),
        }
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        // The protocol is JSON text; anything else is ignored.
        let Message::Text(text) = message else {
            return;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            return;
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        match &mut self.role {
            Role::Starting => {}
            Role::Lobby(lobby) => lobby.message(room, client, kind, &value),
            Role::Session(session) => session.message(room, client, kind, &value, &text),
        }
    }

    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        if let Role::Session(session) = &mut self.role {
            session.disconnect(room, client, reason);
        }
    }

    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        if let Role::Session(session) = &mut self.role {
            session.timer(room, timer);
        }
    }

    fn room_changed(&mut self, _room: &mut Room<'_>, change: RoomChange) {
        if let Role::Lobby(lobby) = &mut self.role {
            lobby.room_changed(&change);
        }
    }
}

/// A frame the relay itself sends (frames from the host are forwarded
/// unchanged instead). `type` comes first on the wire.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Out<'a> {
    Created { code: &'a str },
    Joined { code: &'a str },
    Error { message: &'a str },
    Closed { reason: &'a str },
    History { commands: Vec<Value> },
}

impl Out<'_> {
    /// The frame as JSON text.
    pub(crate) fn to_message(&self) -> Message {
        // Strings and JSON values always serialize.
        Message::json(self)
    }
}

/// Whether `code` is a room code: six upper-case hexadecimal digits.
pub fn is_room_code(code: &str) -> bool {
    code.len() == 6
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

#[cfg(test)]
mod tests;
