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

use roomhost_sdk::{InitInfo, LobbyAndRooms, Room};

use crate::config::Config;
pub use crate::lobby::Lobby;
pub use crate::party::Party;

/// The watch-party service: the lobby ([`Lobby`]) and one room per party
/// ([`Party`]).
pub type WatchParty = LobbyAndRooms<Lobby, Party>;

/// The service's configuration. Fields with invalid values fall back to the
/// protocol's defaults, with a warning: the OpenWatchParty values are the
/// right ones for most deployments.
pub(crate) fn config_from(room: &mut Room<'_>, info: &InitInfo) -> Config {
    let (config, warning) = Config::parse(&info.config);
    if let Some(warning) = warning {
        room.warn(&warning);
    }
    config
}

#[cfg(test)]
mod tests;
