//! The lobby: the clients at the service root, before they host or join a
//! session.
//!
//! - `{"type":"create"}` → a fresh code (six upper-case hex digits from the
//!   host's random generator, unused by any live room and by any code this
//!   lobby handed out whose room has not been reported closed), then the
//!   client is transferred to the new room with hand-off data `host`. The
//!   room greets it with `created`.
//! - `{"type":"join","code":C}` → `C` upper-cased; if it is a valid code of
//!   a live room the client is transferred there with hand-off data
//!   `viewer` (the room greets it with `joined`); otherwise, or if the
//!   transfer fails, the client gets
//!   `{"type":"error","message":"Unknown room code"}` and stays here.
//! - A client coming back because the room rejected it (the room ended
//!   meanwhile) gets the same error; a host whose new room rejected it gets
//!   `{"type":"error","message":"Could not create a room"}`.
//! - Anything else (other types, invalid JSON, binary frames) is ignored:
//!   codemol clients send `history_request` right after `join`, and when the
//!   join fails that frame lands here.

use std::collections::{BTreeMap, HashSet};

use roomhost_sdk::{
    ClientId, ClientInfo, InitInfo, Message, Rejection, Room, RoomChange, RoomService,
};
use serde_json::Value;

use crate::{Config, Frame, HANDOFF_HOST, HANDOFF_VIEWER, Out, UNKNOWN_ROOM_CODE, is_room_code};

/// The error text when no room could be created.
pub const CREATE_FAILED: &str = "Could not create a room";

/// How long a handed-out code stays reserved without a `Closed` report
/// (a transfer completes long before; this only bounds the reservations of
/// rooms that never started).
pub const PENDING_CODE_TTL_MS: u64 = 60_000;

/// How many random codes `create` tries before giving up (with 16.7 million
/// codes, needing a second try is already rare).
const CODE_ATTEMPTS: usize = 64;

/// The lobby's state.
#[derive(Debug, Default)]
pub struct Lobby {
    /// Codes handed out and not yet reported closed, with when (ms).
    pending: BTreeMap<String, u64>,
}

impl Lobby {
    /// The codes reserved by this lobby: handed out, not yet reported
    /// closed.
    pub fn pending_codes(&self) -> impl Iterator<Item = &str> {
        self.pending.keys().map(String::as_str)
    }

    fn create(&mut self, room: &mut Room<'_>, client: ClientId) {
        let Some(code) = self.fresh_code(room) else {
            room.warn("no free room code found");
            return room.send(
                client,
                Out::Error {
                    message: CREATE_FAILED,
                }
                .to_message(),
            );
        };
        match room.transfer(client, Some(&code), HANDOFF_HOST, true) {
            Ok(()) => {
                self.pending.insert(code, room.now_ms());
            }
            Err(err) => {
                room.warn(&format!("cannot create room {code}: {err}"));
                room.send(
                    client,
                    Out::Error {
                        message: CREATE_FAILED,
                    }
                    .to_message(),
                );
            }
        }
    }

    /// A random code unused by live rooms and reservations.
    fn fresh_code(&mut self, room: &mut Room<'_>) -> Option<String> {
        let now = room.now_ms();
        let live: HashSet<String> = room.rooms().into_iter().map(|r| r.room_id).collect();
        self.pick_code(now, &live, || room.random_u64())
    }

    /// Drops reservations older than [`PENDING_CODE_TTL_MS`], then draws
    /// codes from `random` until one is neither `live` nor reserved.
    fn pick_code(
        &mut self,
        now: u64,
        live: &HashSet<String>,
        mut random: impl FnMut() -> u64,
    ) -> Option<String> {
        self.pending
            .retain(|_, at| now.saturating_sub(*at) < PENDING_CODE_TTL_MS);
        (0..CODE_ATTEMPTS)
            .map(|_| format!("{:06X}", random() & 0xFF_FFFF))
            .find(|code| !live.contains(code) && !self.pending.contains_key(code))
    }
}

/// `join`: transfers the client to the room named by `code`, or tells it
/// the code is unknown.
fn join(room: &mut Room<'_>, client: ClientId, code: Option<&Value>) {
    let code = code
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .filter(|code| is_room_code(code));
    let live = code.filter(|code| room.rooms().iter().any(|r| r.room_id == *code));
    let joined = match &live {
        Some(code) => room
            .transfer(client, Some(code), HANDOFF_VIEWER, false)
            .map_err(|err| room.debug(&format!("cannot join {code}: {err}")))
            .is_ok(),
        None => false,
    };
    if !joined {
        room.send(
            client,
            Out::Error {
                message: UNKNOWN_ROOM_CODE,
            }
            .to_message(),
        );
    }
}

impl RoomService for Lobby {
    /// Claims the server root, so `ws://HOST:PORT/` reaches the lobby; the
    /// configuration is checked here too, so a bad one stops the server.
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        Config::from_init(info)?;
        if let Err(err) = room.serve_root() {
            room.warn(&format!(
                "{err}; clients must connect to the service's own root"
            ));
        }
        Ok(())
    }

    /// A client arrived: by URL (nothing to say yet), a host back from its
    /// closed room (nothing either), or bounced by a room.
    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        let Some(handoff) = &client.handoff else {
            return Ok(());
        };
        let Some(reason) = &handoff.rejected else {
            return Ok(());
        };
        let from = handoff.from_room.as_deref().unwrap_or("");
        room.debug(&format!(
            "client {} came back from {from}: {reason}",
            client.id
        ));
        let message = if handoff.data == HANDOFF_HOST {
            self.pending.remove(from);
            CREATE_FAILED
        } else {
            UNKNOWN_ROOM_CODE
        };
        room.send(client.id, Out::Error { message }.to_message());
        Ok(())
    }

    /// `create` and `join` frames; anything else is ignored.
    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let Some(frame) = Frame::parse(message) else {
            return;
        };
        match frame.kind.as_str() {
            "create" => self.create(room, client),
            "join" => join(room, client, frame.value.get("code")),
            _ => {}
        }
    }

    /// A room changed: a closed room's code is free again.
    fn room_changed(&mut self, _room: &mut Room<'_>, change: RoomChange) {
        if let RoomChange::Closed(code) = change {
            self.pending.remove(&code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_avoid_live_rooms_and_reservations() {
        let mut lobby = Lobby::default();
        lobby.pending.insert("00000A".to_owned(), 1_000);
        let live: HashSet<String> = ["00000B".to_owned()].into();
        let mut draws = [0x0A, 0x0B, 0xFF00_0000_00AB_CDEF].into_iter();
        let code = lobby.pick_code(2_000, &live, || draws.next().unwrap_or(0));
        assert_eq!(code.as_deref(), Some("ABCDEF"));
    }

    #[test]
    fn reservations_expire() {
        let mut lobby = Lobby::default();
        lobby.pending.insert("00000A".to_owned(), 1_000);
        let code = lobby.pick_code(1_000 + PENDING_CODE_TTL_MS, &HashSet::new(), || 0x0A);
        assert_eq!(code.as_deref(), Some("00000A"));
    }

    #[test]
    fn gives_up_when_every_draw_is_taken() {
        let mut lobby = Lobby::default();
        let live: HashSet<String> = ["000001".to_owned()].into();
        assert_eq!(lobby.pick_code(0, &live, || 1), None);
    }
}
