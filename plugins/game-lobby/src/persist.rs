//! A game's copy in the room's storage: what a restart inside the host
//! grace period needs to let the players back in.
//!
//! ```text
//! game          JSON: game id, room id, rule variation, max_players, the
//!               next player id, the host's token, and since when the host
//!               is away (absent while it is connected)
//! p/{id:04x}    one player's reconnect token, 8 bytes big-endian
//! ```
//!
//! The game room writes them in the event that changes them (a create, a
//! join, a kick, the host leaving or coming back) and deletes them all when
//! the game ends, so the host commits them before the reply reaches the
//! client: a player that received a token can use it after a restart.
//! Connections, sync state and who is connected are not stored: after a
//! restart nobody is connected.

use roomhost_sdk::{Storage, StorageError, Write};
use serde::{Deserialize, Serialize};

/// The key of the game's settings.
pub const GAME_KEY: &str = "game";
/// The prefix of the players' tokens.
pub const PLAYER_PREFIX: &str = "p/";

/// The game's settings and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The game id.
    pub game_id: String,
    /// The room id, as the players named it.
    pub room_id: String,
    /// The creator's rule variation.
    pub rule_variation: u16,
    /// The game's player cap (0: unlimited).
    pub max_players: u32,
    /// The next player id to hand out.
    pub next_id: u32,
    /// The host's reconnect token.
    pub host_token: u64,
    /// Since when the host is away (ms), while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_away_since: Option<u64>,
}

impl Stored {
    /// The write that stores these settings.
    pub fn write(&self) -> Write {
        // Strings and integers always serialize.
        let json = serde_json::to_vec(self).unwrap_or_default();
        Write::Put(GAME_KEY.as_bytes().to_vec(), json)
    }
}

fn player_key(id: u16) -> Vec<u8> {
    format!("{PLAYER_PREFIX}{id:04x}").into_bytes()
}

/// The write that stores player `id`'s token.
pub fn put_player(id: u16, token: u64) -> Write {
    Write::Put(player_key(id), token.to_be_bytes().to_vec())
}

/// The write that forgets player `id`.
pub fn delete_player(id: u16) -> Write {
    Write::Delete(player_key(id))
}

/// Applies `writes` in one batch.
pub fn save(storage: &mut Storage<'_>, writes: Vec<Write>) -> Result<(), StorageError> {
    storage.batch(writes)
}

/// Each player's id and token.
pub type Tokens = Vec<(u16, u64)>;

/// The stored game with its players' tokens by id, or `None`.
pub fn load(storage: &mut Storage<'_>) -> Result<Option<(Stored, Tokens)>, String> {
    let Some(game) = storage
        .get_json::<Stored>(GAME_KEY)
        .map_err(|err| format!("the stored game cannot be read: {err}"))?
    else {
        return Ok(None);
    };
    let mut players = Vec::new();
    for (key, value) in storage.list_all(PLAYER_PREFIX) {
        let id = key
            .strip_prefix(PLAYER_PREFIX.as_bytes())
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u16::from_str_radix(hex, 16).ok());
        let token = <[u8; 8]>::try_from(value.as_slice()).ok();
        match (id, token) {
            (Some(id), Some(token)) => players.push((id, u64::from_be_bytes(token))),
            _ => return Err(format!("a stored player cannot be read: {key:?}")),
        }
    }
    Ok(Some((game, players)))
}

/// Deletes the game and the tokens of `players`.
pub fn delete(storage: &mut Storage<'_>, players: impl IntoIterator<Item = u16>) {
    let mut writes: Vec<Write> = players.into_iter().map(delete_player).collect();
    writes.push(Write::Delete(GAME_KEY.as_bytes().to_vec()));
    // Deletions only shrink the room: never refused.
    let _ = storage.batch(writes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_keys_sort_by_id() {
        assert!(player_key(9) < player_key(10));
        assert!(player_key(0xff) < player_key(0x100));
        assert_eq!(player_key(0xffff), b"p/ffff");
    }
}
