//! An OpenWatchParty-compatible watch-party server (see `README.md` and
//! `shared/protocols/watch-party.md`).
//!
//! Friends watch the same Jellyfin item in sync: a host controls playback,
//! members follow, everyone chats. The OpenWatchParty web client connects
//! to the service root (`ws://HOST:3000/ws`) and picks parties by message,
//! so:
//!
//! - the **lobby** ([`lobby`]) greets every connection, lists the parties,
//!   and transfers a client into a party on `create_room` / `join_room`;
//! - each **party** ([`party`]) is its own room, named by a UUID, holding a
//!   host and up to 19 members; it applies the synchronization rules
//!   ([`sync`]): host-only control, the ready protocol with a pending
//!   play, scheduled commands, the command cooldown and the `state_update`
//!   filter;
//! - both run every frame through the same checks ([`common`]: rate limit,
//!   size, format, `ping`, `auth`, `client_log`, the silence sweep) and
//!   speak the same envelope ([`envelope`]);
//! - a client's state travels with it between rooms ([`profile`]), and the
//!   lobby learns the parties and their members from the listing metadata
//!   they publish ([`directory`]), which it needs to push `room_list` to
//!   every client of the service.
//!
//! Authentication is on when the host has a token key (`roomhost serve
//! --jwt-secret ...`): the token arrives in the `auth` message and the
//! host verifies it ([`Room::verify_token`]); the secret never enters the
//! plugin.
//!
//! Configuration: see [`config::Config`]; every field defaults to the
//! protocol's value.

#![warn(missing_docs)]

pub mod common;
pub mod config;
pub mod directory;
pub mod envelope;
pub mod lobby;
pub mod party;
pub mod profile;
pub mod sync;

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, Message, Room, RoomChange, RoomService,
    TimerId, room_service,
};

use crate::config::Config;
use crate::lobby::Lobby;
use crate::party::Party;

/// The watch-party service: the lobby or one party, decided in `init`.
#[derive(Debug, Default)]
#[room_service]
pub struct WatchParty {
    role: Role,
}

/// What this instance is.
#[derive(Debug, Default)]
enum Role {
    /// Before `init` (never seen by clients).
    #[default]
    Starting,
    /// The service's lobby.
    Lobby(Box<Lobby>),
    /// One party.
    Party(Box<Party>),
}

impl WatchParty {
    /// The lobby state, if this instance is the lobby.
    pub fn lobby(&self) -> Option<&Lobby> {
        match &self.role {
            Role::Lobby(lobby) => Some(lobby),
            _ => None,
        }
    }

    /// The party state, if this instance is a party.
    pub fn party(&self) -> Option<&Party> {
        match &self.role {
            Role::Party(party) => Some(party),
            _ => None,
        }
    }
}

impl RoomService for WatchParty {
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) {
        let (config, warning) = Config::parse(&info.config);
        if let Some(warning) = warning {
            room.warn(&warning);
        }
        self.role = if info.lobby {
            Role::Lobby(Box::new(Lobby::new(room, config)))
        } else {
            Role::Party(Box::new(Party::new(room, config)))
        };
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), String> {
        match &mut self.role {
            Role::Starting => Err("the service is starting".to_owned()),
            Role::Lobby(lobby) => {
                lobby.connect(room, client);
                Ok(())
            }
            Role::Party(party) => party.connect(room, client),
        }
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        match &mut self.role {
            Role::Starting => {}
            Role::Lobby(lobby) => lobby.message(room, client, message),
            Role::Party(party) => party.message(room, client, message),
        }
    }

    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        match &mut self.role {
            Role::Starting => {}
            Role::Lobby(lobby) => lobby.disconnect(room, client, reason),
            Role::Party(party) => party.disconnect(room, client, reason),
        }
    }

    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        match &mut self.role {
            Role::Starting => {}
            Role::Lobby(lobby) => lobby.timer(room, timer),
            Role::Party(party) => party.timer(room, timer),
        }
    }

    fn room_changed(&mut self, room: &mut Room<'_>, change: RoomChange) {
        if let Role::Lobby(lobby) = &mut self.role {
            lobby.room_changed(room, change);
        }
    }
}

#[cfg(test)]
mod tests;
