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
//!   slow or absent, and ends on the host's `close` or departure. The
//!   record is kept in the room's storage ([`persist`]), so it survives a
//!   host restart.
//!
//! Configuration (all optional):
//! `{"history_timeout_ms": 2000, "max_record_entries": 10000,
//! "max_record_bytes": 8388608, "stored_record_ms": 3600000}`.

#![warn(missing_docs)]

pub mod lobby;
pub mod persist;
pub mod record;
pub mod session;

use roomhost_sdk::{InitInfo, LobbyAndRooms, Message};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::lobby::Lobby;
pub use crate::session::Session;

/// Hand-off data of a client sent by the lobby to create a room.
pub const HANDOFF_HOST: &[u8] = b"host";
/// Hand-off data of a client sent by the lobby to join a room.
pub const HANDOFF_VIEWER: &[u8] = b"viewer";
/// Hand-off data of a host sent back to the lobby after it closed its room.
pub const HANDOFF_CLOSED: &[u8] = b"closed";

/// The error text for a `join` the relay cannot honour.
pub const UNKNOWN_ROOM_CODE: &str = "Unknown room code";

/// How long a stored record outlives its host by default (1 h).
pub const DEFAULT_STORED_RECORD_MS: u64 = 60 * 60 * 1000;

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
    /// How long a session's stored record outlives its host's last sign of
    /// life, in milliseconds: a session that came back from storage after
    /// a restart (without its host) ends then and deletes its record.
    pub stored_record_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history_timeout_ms: 2000,
            max_record_entries: 10_000,
            max_record_bytes: 8 * 1024 * 1024,
            stored_record_ms: DEFAULT_STORED_RECORD_MS,
        }
    }
}

/// The relay service: the lobby ([`Lobby`]) and one room per session
/// ([`Session`]).
pub type Relay = LobbyAndRooms<Lobby, Session>;

impl Config {
    /// The service's configuration; a bad one refuses to start the room
    /// (for the lobby, the server) with the reason.
    pub fn from_init(info: &InitInfo) -> Result<Self, String> {
        let config: Self = info
            .config()
            .map_err(|err| format!("invalid relay config: {err}"))?;
        if config.stored_record_ms == 0 {
            return Err("invalid relay config: stored_record_ms must be positive".to_owned());
        }
        Ok(config)
    }
}

/// A protocol frame: JSON text with a `type`. Anything else is ignored.
pub(crate) struct Frame {
    /// The `type` field (empty when missing).
    pub(crate) kind: String,
    /// The whole frame, parsed.
    pub(crate) value: Value,
    /// The frame as received.
    pub(crate) text: String,
}

impl Frame {
    /// Parses `message`; `None` for binary frames and non-JSON text.
    pub(crate) fn parse(message: Message) -> Option<Frame> {
        let Message::Text(text) = message else {
            return None;
        };
        let value = serde_json::from_str::<Value>(&text).ok()?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Some(Frame { kind, value, text })
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
