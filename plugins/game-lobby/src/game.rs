//! One game room (room key `"{room_id}#{game_id}"`): its host, its players,
//! the relaying between them, and the host grace period.
//!
//! # Handshake (in `connect`, from the lobby's hand-off)
//!
//! The hand-off data is the client's [`JoinRequest`]. A room with no game
//! (fresh, or ended and not yet disposed) accepts only a creator; a room
//! with a game accepts joins and reconnects. Success is the 13-byte
//! [`handshake_reply`] (5 bytes for a four-field request,
//! [`handshake_reply_for`]); failure is `Err(text)`, and the client goes back to
//! the lobby, which sends `[05]text` and closes it.
//!
//! - **create**: the creator becomes the host, player 0, and fixes the
//!   rule variation. A second creator → `Room {room_id} already exists for
//!   game {game_id}.`
//! - **join**: refused when the room holds `max_players` (the host, whether
//!   connected or in its grace period, plus the connected clients; 0 =
//!   unlimited), or when the next id would be over 65435. Ids count up from
//!   1 and are never reused. Joining while the host is away is allowed: the
//!   host learns of the player when it reconnects.
//! - **reconnect**: the token finds the player. The host may reconnect only
//!   while disconnected. A client reconnects whether or not its old
//!   connection is still open (a reload often beats the old socket's
//!   timeout): the old connection gets `[05]"Reconnected from another
//!   connection."` and is closed, and the host gets `01 id` then `00 id`.
//!   Reconnects are not subject to `max_players`.
//! - Tokens are from the host's secure generator, unique within the room,
//!   and valid while the room's game lasts, except that a kicked player's
//!   token is revoked (so a kick is not undone by a reconnect).
//!
//! # Relaying
//!
//! See the protocol page: host `02`/`03`/`04` go through each client's sync
//! gate; host `01 id` kicks; host `00` ends the game; client `02` reaches
//! the host with the client's id inserted; client `03` closes that client.
//! Unknown types close the sender with `[05]`. Text frames are ignored (the
//! protocol is binary). Client `02` while the host is away is dropped.
//!
//! # Host grace period
//!
//! When the host's connection ends (for any reason but its own `00`), a
//! timer of `host_grace_ms` starts. A host reconnecting in time gets its
//! reply, then `00 id` for every connected client and `01 id` for every
//! client that left while it was away (ascending ids). Otherwise every
//! client gets `[05]"Server has left the game."` and is closed, and the
//! game ends. The clients' sync state survives a host reconnect (as in the
//! original relay); a host that lost its state should send `RESET`.
//!
//! # Storage
//!
//! The game's settings, counters and tokens are kept in the room's storage
//! ([`persist`]), written in the event that changes them. A room that
//! starts again after a host restart finds its game with nobody connected:
//! the host counts as away since the restart (or since it left, if it had),
//! the grace timer is a durable one (pending for as long as the game
//! lasts, see [`GRACE_TIMER`]), and every player's token works, so a
//! restart inside the grace period lets everyone back in. A create or join
//! whose write storage refuses is refused (nothing changes); the game's end
//! deletes everything.
//!
//! # Listing
//!
//! `set_info` publishes `{"game", "room", "players", "max_players",
//! "host_connected"}` (players: connected players, host included); an ended
//! game adds `"ended": true` until the room is disposed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, Message, Rejection, Room, RoomService,
    TimerId, room_service,
};
use serde_json::json;

use crate::config::Config;
use crate::errors;
use crate::lobby::Lobby;
use crate::persist::{self, Stored};
use crate::wire::{
    CLIENT_DISCONNECTS, CLIENT_DISCONNECTS_SELF, CLIENT_GETS_KICKED, DELTA_UPDATE, FULL_UPDATE,
    JoinRequest, NEW_CLIENT, RESET, SERVER_DISCONNECTS, SERVER_RPC, error_frame, handshake_reply,
    handshake_reply_for, id_frame, rpc_to_host,
};

/// The timer that ends the game when the host stays away. A durable one,
/// pending as long as the game lasts: while the host is connected it fires
/// every `host_grace_ms` only to be set again. So every stored game has a
/// durable timer: the host wakes it when it starts again, and a game
/// stored when the server went down with its host connected ends one grace
/// period after the restart if nobody comes back to it.
pub const GRACE_TIMER: TimerId = 1;

/// The highest player id handed out (the protocol's `u16::MAX - 100`).
pub const MAX_PLAYER_ID: u32 = 65_435;

/// The host's player id.
pub const HOST_ID: u16 = 0;

/// How many random draws a fresh token may take before giving up (a
/// collision among 2^64 values is already unheard of).
const TOKEN_ATTEMPTS: usize = 32;

/// A player other than the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    /// Its reconnect token.
    pub token: u64,
    /// Its connection, while connected.
    pub conn: Option<ClientId>,
    /// Whether its connection has received a `FULL_UPDATE` or `RESET`.
    pub synced: bool,
}

/// A running game.
#[derive(Debug)]
pub struct Game {
    game_id: String,
    room_id: String,
    rule_variation: u16,
    max_players: u32,
    /// The host's connection, while connected.
    host: Option<ClientId>,
    /// Players by id, connected or not (not the host).
    players: BTreeMap<u16, Player>,
    /// Connected players by connection.
    conns: HashMap<ClientId, u16>,
    /// Every token in use → its player id (the host's included).
    tokens: HashMap<u64, u16>,
    /// The next id to hand out.
    pub(crate) next_id: u32,
    /// Players who left while the host was away, for its replay.
    left_while_away: BTreeSet<u16>,
    /// Since when the host is away (ms), while it is.
    host_away_since: Option<u64>,
}

impl Game {
    /// The game id.
    pub fn game_id(&self) -> &str {
        &self.game_id
    }

    /// The room id (as the players named it, without the game).
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    /// The rule variation the creator chose.
    pub fn rule_variation(&self) -> u16 {
        self.rule_variation
    }

    /// The host's connection, while connected.
    pub fn host(&self) -> Option<ClientId> {
        self.host
    }

    /// The players (not the host), connected or not, by id.
    pub fn players(&self) -> &BTreeMap<u16, Player> {
        &self.players
    }

    /// The player id of connection `client` (`0` for the host).
    pub fn player_id(&self, client: ClientId) -> Option<u16> {
        if self.host == Some(client) {
            return Some(HOST_ID);
        }
        self.conns.get(&client).copied()
    }

    /// Connected players, the host included.
    pub fn connected(&self) -> usize {
        self.conns.len() + usize::from(self.host.is_some())
    }

    fn send_to_host(&self, room: &mut Room<'_>, frame: Vec<u8>) {
        if let Some(host) = self.host {
            room.send(host, frame);
        }
    }

    /// The game's stored settings and counters.
    fn stored(&self) -> Stored {
        let host_token = self
            .tokens
            .iter()
            .find_map(|(token, id)| (*id == HOST_ID).then_some(*token))
            .unwrap_or_default();
        Stored {
            game_id: self.game_id.clone(),
            room_id: self.room_id.clone(),
            rule_variation: self.rule_variation,
            max_players: self.max_players,
            next_id: self.next_id,
            host_token,
            host_away_since: self.host_away_since,
        }
    }

    /// The game stored before a restart: nobody is connected, and every
    /// player counts as having left while the host was away (the host
    /// learns, on its return, who is not back).
    fn from_stored(stored: Stored, players: Vec<(u16, u64)>) -> Self {
        let mut tokens = HashMap::from([(stored.host_token, HOST_ID)]);
        tokens.extend(players.iter().map(|&(id, token)| (token, id)));
        Game {
            game_id: stored.game_id,
            room_id: stored.room_id,
            rule_variation: stored.rule_variation,
            max_players: stored.max_players,
            host: None,
            left_while_away: players.iter().map(|&(id, _)| id).collect(),
            players: players
                .into_iter()
                .map(|(id, token)| {
                    let player = Player {
                        token,
                        conn: None,
                        synced: false,
                    };
                    (id, player)
                })
                .collect(),
            conns: HashMap::new(),
            tokens,
            next_id: stored.next_id,
            host_away_since: stored.host_away_since,
        }
    }

    /// Stores the game's settings and counters, logging a refusal.
    fn save_settings(&self, room: &mut Room<'_>) {
        if let Err(err) = persist::save(&mut room.storage(), vec![self.stored().write()]) {
            room.warn(&format!("cannot store the game: {err}"));
        }
    }

    /// A token no player of this game holds.
    fn fresh_token(&self, room: &mut Room<'_>) -> Result<u64, String> {
        (0..TOKEN_ATTEMPTS)
            .map(|_| room.random_u64())
            .find(|token| !self.tokens.contains_key(token))
            .ok_or_else(|| "Cannot draw a reconnect token.".to_owned())
    }
}

/// A game room instance: empty until a creator arrives, then a [`Game`]
/// until the host ends it or stays away too long.
#[derive(Debug, Default)]
#[room_service(lobby = Lobby)]
pub struct GameRoom {
    config: Config,
    key: String,
    game: Option<Game>,
}

impl GameRoom {
    /// An empty room with key `key` serving the games of `config`.
    pub fn new(config: Config, key: &str) -> Self {
        Self {
            config,
            key: key.to_owned(),
            game: None,
        }
    }

    /// The running game, if any.
    pub fn game(&self) -> Option<&Game> {
        self.game.as_ref()
    }

    /// The running game, mutably (for tests).
    #[cfg(test)]
    pub(crate) fn game_mut(&mut self) -> Option<&mut Game> {
        self.game.as_mut()
    }

    fn create(
        &mut self,
        room: &mut Room<'_>,
        client: ClientId,
        request: &JoinRequest,
        max_players: u32,
    ) -> Result<(), String> {
        if self.game.is_some() {
            return Err(errors::room_exists(&request.room_id, &request.game_id));
        }
        let host_token = room.random_u64();
        let game = Game {
            game_id: request.game_id.clone(),
            room_id: request.room_id.clone(),
            rule_variation: request.rule_variation,
            max_players,
            host: Some(client),
            players: BTreeMap::new(),
            conns: HashMap::new(),
            tokens: HashMap::from([(host_token, HOST_ID)]),
            next_id: 1,
            left_while_away: BTreeSet::new(),
            host_away_since: None,
        };
        persist::save(&mut room.storage(), vec![game.stored().write()]).map_err(|err| {
            errors::cannot_create(&request.room_id, &request.game_id, &err.to_string())
        })?;
        room.send(
            client,
            handshake_reply_for(request, HOST_ID, game.rule_variation, host_token),
        );
        room.info(&format!("game created by client {client}"));
        self.game = Some(game);
        self.check_host_later(room);
        self.publish(room);
        Ok(())
    }

    fn join(
        &mut self,
        room: &mut Room<'_>,
        client: ClientId,
        request: &JoinRequest,
    ) -> Result<(), String> {
        let Some(game) = &mut self.game else {
            return Err(errors::room_missing(&request.room_id, &request.game_id));
        };
        // The host always takes a seat, even during its grace period.
        let seated = game.conns.len() + 1;
        if game.max_players != 0 && seated >= game.max_players as usize {
            return Err(errors::room_full(&game.room_id, game.max_players));
        }
        if game.next_id > MAX_PLAYER_ID {
            return Err(errors::out_of_ids(&game.room_id));
        }
        let id = u16::try_from(game.next_id).map_err(|_| errors::out_of_ids(&game.room_id))?;
        let token = game.fresh_token(room)?;
        let mut stored = game.stored();
        stored.next_id += 1;
        persist::save(
            &mut room.storage(),
            vec![stored.write(), persist::put_player(id, token)],
        )
        .map_err(|err| errors::cannot_join(&game.room_id, &game.game_id, &err.to_string()))?;
        game.next_id += 1;
        game.tokens.insert(token, id);
        game.conns.insert(client, id);
        game.players.insert(
            id,
            Player {
                token,
                conn: Some(client),
                synced: false,
            },
        );
        room.send(
            client,
            handshake_reply_for(request, id, game.rule_variation, token),
        );
        game.send_to_host(room, id_frame(NEW_CLIENT, id));
        self.publish(room);
        Ok(())
    }

    fn reconnect(
        &mut self,
        room: &mut Room<'_>,
        client: ClientId,
        request: &JoinRequest,
        token: u64,
    ) -> Result<(), String> {
        let Some(game) = &mut self.game else {
            return Err(errors::room_gone(&request.room_id, &request.game_id));
        };
        let Some(&id) = game.tokens.get(&token) else {
            return Err(errors::INVALID_TOKEN.to_owned());
        };
        if id == HOST_ID {
            if game.host.is_some() {
                return Err(errors::HOST_CONNECTED.to_owned());
            }
            game.host = Some(client);
            game.host_away_since = None;
            game.save_settings(room);
            room.send(client, handshake_reply(HOST_ID, game.rule_variation, token));
            // The replay: who is here now, and who left meanwhile.
            for (&id, player) in &game.players {
                if player.conn.is_some() {
                    room.send(client, id_frame(NEW_CLIENT, id));
                }
            }
            for id in std::mem::take(&mut game.left_while_away) {
                if game.players.get(&id).is_some_and(|p| p.conn.is_none()) {
                    room.send(client, id_frame(CLIENT_DISCONNECTS, id));
                }
            }
            room.info(&format!("host reconnected as client {client}"));
            self.check_host_later(room);
        } else {
            let host = game.host;
            let Some(player) = game.players.get_mut(&id) else {
                return Err(errors::INVALID_TOKEN.to_owned());
            };
            if let Some(old) = player.conn.replace(client) {
                game.conns.remove(&old);
                room.send(old, error_frame(errors::RECONNECTED_ELSEWHERE));
                room.close(old, 1000, errors::RECONNECTED_ELSEWHERE);
                if let Some(host) = host {
                    room.send(host, id_frame(CLIENT_DISCONNECTS, id));
                }
            }
            player.synced = false;
            game.conns.insert(client, id);
            game.left_while_away.remove(&id);
            room.send(client, handshake_reply(id, game.rule_variation, token));
            game.send_to_host(room, id_frame(NEW_CLIENT, id));
        }
        self.publish(room);
        Ok(())
    }

    fn host_frame(&mut self, room: &mut Room<'_>, host: ClientId, bytes: Vec<u8>) {
        let Some(game) = &mut self.game else {
            return;
        };
        match bytes.first().copied() {
            Some(SERVER_DISCONNECTS) => {
                room.info("the host ended the game");
                self.end(room);
            }
            Some(CLIENT_GETS_KICKED) => {
                kick(game, room, &bytes);
                self.publish(room);
            }
            Some(kind @ (DELTA_UPDATE | FULL_UPDATE | RESET)) => {
                relay(game, room, kind, &bytes);
            }
            _ => {
                room.debug(&format!("illegal frame from the host: {:?}", bytes.first()));
                crate::lobby::fail(room, host, errors::ILLEGAL_HOST);
            }
        }
    }

    /// Ends the game: every client gets `[05]"Server has left the game."`
    /// and is closed, a connected host is closed, and the room forgets the
    /// game (it is disposed once the closes are through).
    fn end(&mut self, room: &mut Room<'_>) {
        let Some(game) = self.game.take() else {
            return;
        };
        room.cancel_timer(GRACE_TIMER);
        persist::delete(&mut room.storage(), game.players.keys().copied());
        for player in game.players.values() {
            if let Some(conn) = player.conn {
                crate::lobby::fail(room, conn, errors::SERVER_LEFT);
            }
        }
        if let Some(host) = game.host {
            room.close(host, 1000, errors::HOST_ENDED);
        }
        let info = json!({
            "game": game.game_id,
            "room": game.room_id,
            "players": 0,
            "max_players": game.max_players,
            "host_connected": false,
            "ended": true,
        });
        if let Err(err) = room.set_info(&info) {
            room.warn(&err.to_string());
        }
    }

    /// Starts the grace period (a durable timer, so it also runs out after
    /// a restart), or ends the game at once when it is zero or the timer
    /// cannot be set; whether the game goes on.
    fn start_grace(&mut self, room: &mut Room<'_>, grace: std::time::Duration) -> bool {
        if self.config.host_grace().is_zero() {
            self.end(room);
            return false;
        }
        if let Err(err) = room.storage().set_durable_timer(GRACE_TIMER, grace) {
            room.warn(&format!("{err}; ending the game now"));
            self.end(room);
            return false;
        }
        true
    }

    /// Sets the grace timer to check on the connected host one grace period
    /// from now (not with a zero grace period: the game then ends with its
    /// host's departure, and a stored one when it is restored).
    fn check_host_later(&mut self, room: &mut Room<'_>) {
        let grace = self.config.host_grace();
        if grace.is_zero() {
            return;
        }
        if let Err(err) = room.storage().set_durable_timer(GRACE_TIMER, grace) {
            room.warn(&format!("cannot set the grace timer: {err}"));
        }
    }

    /// Publishes the listing metadata.
    fn publish(&self, room: &mut Room<'_>) {
        let Some(game) = &self.game else {
            return;
        };
        let info = json!({
            "game": game.game_id,
            "room": game.room_id,
            "players": game.connected(),
            "max_players": game.max_players,
            "host_connected": game.host.is_some(),
        });
        if let Err(err) = room.set_info(&info) {
            room.warn(&err.to_string());
        }
    }
}

/// A frame from connected player `id` on connection `client`.
fn client_frame(game: &Game, room: &mut Room<'_>, client: ClientId, id: u16, bytes: &[u8]) {
    match bytes.split_first() {
        Some((&SERVER_RPC, payload)) => match game.host {
            Some(host) => room.send(host, rpc_to_host(id, payload)),
            None => room.debug(&format!(
                "RPC from player {id} while the host is away; dropped"
            )),
        },
        Some((&CLIENT_DISCONNECTS_SELF, _)) => room.close(client, 1000, errors::CLIENT_LEFT),
        _ => {
            room.debug(&format!(
                "illegal frame from player {id}: {:?}",
                bytes.first()
            ));
            crate::lobby::fail(room, client, errors::ILLEGAL_CLIENT);
        }
    }
}

/// Host `01 id`: the player gets `[05]"We got rejected by server."` and is
/// closed, its token is revoked, and the host gets `01 id`. A frame too
/// short to name a player, or naming no player, is ignored.
fn kick(game: &mut Game, room: &mut Room<'_>, bytes: &[u8]) {
    let Some(&[high, low]) = bytes.get(1..3).and_then(|id| <&[u8; 2]>::try_from(id).ok()) else {
        room.warn("a kick frame without a player id; ignored");
        return;
    };
    let id = u16::from_be_bytes([high, low]);
    let Some(player) = game.players.remove(&id) else {
        room.debug(&format!("kick of unknown player {id}; ignored"));
        return;
    };
    game.tokens.remove(&player.token);
    game.left_while_away.remove(&id);
    // Deletions only shrink the room: never refused.
    let _ = persist::save(&mut room.storage(), vec![persist::delete_player(id)]);
    if let Some(conn) = player.conn {
        game.conns.remove(&conn);
        crate::lobby::fail(room, conn, errors::KICKED);
        game.send_to_host(room, id_frame(CLIENT_DISCONNECTS, id));
    }
}

/// Host `02`/`03`/`04`: forwarded unchanged through each connected player's
/// sync gate.
fn relay(game: &mut Game, room: &mut Room<'_>, kind: u8, bytes: &[u8]) {
    for player in game.players.values_mut() {
        let Some(conn) = player.conn else {
            continue;
        };
        let deliver = match kind {
            DELTA_UPDATE => player.synced,
            FULL_UPDATE => !player.synced,
            _ => true,
        };
        if deliver {
            player.synced = true;
            room.send(conn, bytes.to_vec());
        }
    }
}

impl RoomService for GameRoom {
    /// Reads the configuration; an invalid one refuses to start the room.
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        let config = Config::parse(&info.config).map_err(|err| err.to_string())?;
        *self = GameRoom::new(config, &info.room_id);
        // A game stored before a restart: its host is away.
        if let Some((stored, players)) = persist::load(&mut room.storage())? {
            let mut game = Game::from_stored(stored, players);
            let now = room.now_ms();
            let since = *game.host_away_since.get_or_insert(now);
            game.save_settings(room);
            room.info(&format!(
                "game restored with {} players; waiting for the host",
                game.players.len()
            ));
            self.game = Some(game);
            let left = self
                .config
                .host_grace_ms
                .saturating_sub(now.saturating_sub(since));
            self.start_grace(room, std::time::Duration::from_millis(left));
            self.publish(room);
        }
        Ok(())
    }

    /// A client arrives from the lobby with its request as hand-off data.
    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        let Some(handoff) = client.handoff.as_ref().filter(|h| !h.is_rejected()) else {
            // By URL: nobody sends it back to a lobby, so say it here too.
            room.send(client.id, error_frame(errors::JOIN_THROUGH_LOBBY));
            return Err(errors::JOIN_THROUGH_LOBBY.to_owned().into());
        };
        let request = JoinRequest::decode(&handoff.data)
            .ok()
            .filter(|request| request.room_key() == self.key)
            .ok_or_else(|| errors::PARSE_FAILED.to_owned())?;
        let Some(max_players) = self
            .config
            .game(&request.game_id)
            .map(|game| game.max_players)
        else {
            return Err(errors::unknown_game(&request.game_id).into());
        };
        let joined = if let Some(token) = request.reconnect_token {
            self.reconnect(room, client.id, &request, token)
        } else if request.create_room {
            self.create(room, client.id, &request, max_players)
        } else {
            self.join(room, client.id, &request)
        };
        joined.map_err(Rejection::from)
    }

    /// A frame from a connected client or the host.
    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let Message::Binary(bytes) = message else {
            return;
        };
        let Some(game) = &mut self.game else {
            return;
        };
        if game.host == Some(client) {
            self.host_frame(room, client, bytes);
        } else if let Some(&id) = game.conns.get(&client) {
            client_frame(game, room, client, id, &bytes);
        }
    }

    /// A connection left the room.
    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        let Some(game) = &mut self.game else {
            return;
        };
        if game.host == Some(client) {
            game.host = None;
            game.host_away_since = Some(room.now_ms());
            game.save_settings(room);
            room.info(&format!("the host left ({reason:?})"));
            if !self.start_grace(room, self.config.host_grace()) {
                return;
            }
        } else if let Some(id) = game.conns.remove(&client) {
            if let Some(player) = game.players.get_mut(&id) {
                player.conn = None;
                player.synced = false;
            }
            if game.host.is_some() {
                game.send_to_host(room, id_frame(CLIENT_DISCONNECTS, id));
            } else {
                game.left_while_away.insert(id);
            }
        } else {
            return;
        }
        self.publish(room);
    }

    /// A timer fired: the grace period is over, or (with the host
    /// connected) it is time to check on the host again.
    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        if timer != GRACE_TIMER {
            return;
        }
        match self.game.as_ref().map(|g| g.host.is_none()) {
            Some(true) => {
                room.info("the host did not come back in time");
                self.end(room);
            }
            Some(false) => self.check_host_later(room),
            None => {}
        }
    }
}
