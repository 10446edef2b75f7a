//! A board-game relay compatible with the "backbone" game clients (see
//! `README.md` and `shared/protocols/game-lobby.md`).
//!
//! One player **hosts** a game: its client runs the game logic, and the
//! relay forwards state between it and the other players. Every client
//! connects to the service root and sends a binary, postcard-encoded join
//! request first; each game room is its own room instance, keyed
//! `"{room_id}#{game_id}"`.
//!
//! - The **lobby** ([`lobby`]) receives every client, decodes its request
//!   ([`wire`]), checks the game against the [`config`] and transfers the
//!   client to the game room, handing the request over.
//! - A **game room** ([`game`]) runs the rest of the handshake in its
//!   `connect` (create / join / reconnect, caps, ids, tokens), relays
//!   between host and players with the per-player sync gate, carries out
//!   kicks and the end of the game, and keeps the game for a grace period
//!   when the host drops.
//!
//! Every frame is binary; failures are `[05]` + UTF-8 text ([`errors`])
//! followed by a close with code 1000.
//!
//! Configuration: `{"games": [{"name": "tic-tac-toe", "max_players": 10},
//! {"name": "Ternio", "max_players": 3}], "host_grace_ms": 30000}` (these
//! are the defaults). An invalid configuration makes `init` panic, so the
//! server refuses to start.

#![warn(missing_docs)]

pub mod config;
pub mod errors;
pub mod game;
pub mod lobby;
pub mod wire;

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, Message, Room, RoomService, TimerId,
    room_service,
};

use crate::config::Config;
use crate::game::GameRoom;
use crate::lobby::Lobby;

/// The game-lobby service: the lobby or one game room, decided in `init`.
#[derive(Debug, Default)]
#[room_service]
pub struct GameLobby {
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
    /// One game room.
    Game(Box<GameRoom>),
}

impl GameLobby {
    /// The lobby state, if this instance is the lobby.
    pub fn lobby(&self) -> Option<&Lobby> {
        match &self.role {
            Role::Lobby(lobby) => Some(lobby),
            _ => None,
        }
    }

    /// The game room state, if this instance is a game room.
    pub fn game_room(&self) -> Option<&GameRoom> {
        match &self.role {
            Role::Game(game) => Some(game),
            _ => None,
        }
    }

    /// The game room state, mutably (for tests).
    #[cfg(test)]
    pub(crate) fn game_room_mut(&mut self) -> Option<&mut GameRoom> {
        match &mut self.role {
            Role::Game(game) => Some(game),
            _ => None,
        }
    }
}

impl RoomService for GameLobby {
    /// # Panics
    ///
    /// Panics with `invalid game-lobby config: ...` when the configuration
    /// is invalid: in the lobby this makes the server refuse to start.
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) {
        let config = match Config::parse(&info.config) {
            Ok(config) => config,
            Err(err) => panic!("{err}"),
        };
        self.role = if info.lobby {
            let games: Vec<&str> = config.games.iter().map(|g| g.name.as_str()).collect();
            room.info(&format!(
                "serving {games:?}, host grace {} ms",
                config.host_grace_ms
            ));
            Role::Lobby(Lobby::new(config))
        } else {
            Role::Game(Box::new(GameRoom::new(config, &info.room_id)))
        };
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), String> {
        match &mut self.role {
            Role::Starting => Err("the game lobby is starting".to_owned()),
            Role::Lobby(lobby) => {
                lobby.connect(room, client);
                Ok(())
            }
            Role::Game(game) => game.connect(room, client),
        }
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        match &mut self.role {
            Role::Starting => {}
            Role::Lobby(lobby) => lobby.message(room, client, message),
            Role::Game(game) => game.message(room, client, message),
        }
    }

    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        if let Role::Game(game) = &mut self.role {
            game.disconnect(room, client, reason);
        }
    }

    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        if let Role::Game(game) = &mut self.role {
            game.timer(room, timer);
        }
    }
}

#[cfg(test)]
mod tests;
