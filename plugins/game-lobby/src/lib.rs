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
//!   when the host drops. Its settings and tokens are kept in the room's
//!   storage ([`persist`]), so a host restart inside the grace period lets
//!   the players back in.
//!
//! Every frame is binary; failures are `[05]` + UTF-8 text ([`errors`])
//! followed by a close with code 1000.
//!
//! Configuration: `{"games": [{"name": "tic-tac-toe", "max_players": 10},
//! {"name": "Ternio", "max_players": 3}], "host_grace_ms": 30000}` (these
//! are the defaults). An invalid configuration refuses to start: `init`
//! fails with the reason, so the server does not start.

#![warn(missing_docs)]

pub mod config;
pub mod errors;
pub mod game;
pub mod lobby;
pub mod persist;
pub mod wire;

use roomhost_sdk::LobbyAndRooms;

pub use crate::game::GameRoom;
pub use crate::lobby::Lobby;

/// The game-lobby service: the lobby ([`Lobby`]) and one room per game
/// ([`GameRoom`]).
pub type GameLobby = LobbyAndRooms<Lobby, GameRoom>;

#[cfg(test)]
mod tests;
