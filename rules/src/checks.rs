//! The checks on what a plugin asks the host for, in the host's order, with
//! the errors the plugin sees.
//!
//! Each check is a function of plain values, so the host and the SDK's test
//! harness, which keep rooms in different structures, run the same code.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::limits::MAX_TIMER_DELAY;

/// A frame larger than the plugin frame limit (`max_plugin_frame_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge {
    /// The frame's size in bytes.
    pub len: usize,
    /// The limit in bytes.
    pub limit: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame is {} bytes; the limit is {} (max_plugin_frame_bytes)",
            self.len, self.limit
        )
    }
}

impl Error for FrameTooLarge {}

/// Whether a plugin may send a frame of `len` bytes under `limit`.
pub fn frame_fits(len: usize, limit: usize) -> Result<(), FrameTooLarge> {
    if len > limit {
        return Err(FrameTooLarge { len, limit });
    }
    Ok(())
}

/// Why `set-info` refused the room's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoRefusal {
    /// The JSON text is larger than `max_info_bytes`.
    TooLarge {
        /// The text's size in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The text is not valid JSON; the parser's explanation.
    NotJson(String),
}

impl fmt::Display for InfoRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, limit } => {
                write!(f, "info is {len} bytes; the limit is {limit}")
            }
            Self::NotJson(error) => write!(f, "info is not valid JSON: {error}"),
        }
    }
}

impl Error for InfoRefusal {}

/// The size check of `set-info`, made before parsing (the JSON check is the
/// caller's, with its own parser, as [`InfoRefusal::NotJson`]).
pub fn info_fits(len: usize, limit: usize) -> Result<(), InfoRefusal> {
    if len > limit {
        return Err(InfoRefusal::TooLarge { len, limit });
    }
    Ok(())
}

/// A new timer id when the room already holds `max_timers_per_room`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyTimers {
    /// The per-room limit.
    pub limit: usize,
}

impl fmt::Display for TooManyTimers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many pending timers (the limit is {} per room)",
            self.limit
        )
    }
}

impl Error for TooManyTimers {}

/// Whether a timer may be set: re-setting a pending id always may; a new id
/// only while fewer than `limit` are pending.
pub fn timer_fits(
    already_pending: bool,
    pending: usize,
    limit: usize,
) -> Result<(), TooManyTimers> {
    if !already_pending && pending >= limit {
        return Err(TooManyTimers { limit });
    }
    Ok(())
}

/// A timer delay as the host applies it: at most [`MAX_TIMER_DELAY`].
///
/// ```
/// use std::time::Duration;
/// use roomhost_rules::checks::timer_delay;
/// assert_eq!(timer_delay(5), Duration::from_millis(5));
/// assert_eq!(timer_delay(u64::MAX), roomhost_rules::limits::MAX_TIMER_DELAY);
/// ```
pub fn timer_delay(delay_ms: u64) -> Duration {
    Duration::from_millis(delay_ms).min(MAX_TIMER_DELAY)
}

/// Why `set-client-state` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientStateRefusal {
    /// The client is not a member of this room.
    NotAMember,
    /// The state is larger than `max_client_state_bytes`.
    TooLarge {
        /// The state's size in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for ClientStateRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAMember => f.write_str("the client is not in this room"),
            Self::TooLarge { len, limit } => write!(
                f,
                "client state is {len} bytes; the limit is {limit} (max_client_state_bytes)"
            ),
        }
    }
}

impl Error for ClientStateRefusal {}

/// Whether state of `len` bytes may be attached to a client.
pub fn client_state_fits(
    is_member: bool,
    len: usize,
    limit: usize,
) -> Result<(), ClientStateRefusal> {
    if !is_member {
        return Err(ClientStateRefusal::NotAMember);
    }
    if len > limit {
        return Err(ClientStateRefusal::TooLarge { len, limit });
    }
    Ok(())
}

/// Why a transfer was refused; nothing happened. Mirrors the contract's
/// `transfer-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferRefusal {
    /// The client is not a member of this room.
    NotAMember,
    /// The target is the room the client is in (or the lobby, from the lobby).
    SameRoom,
    /// The target room id is empty or longer than `max` bytes.
    InvalidRoomId {
        /// The longest room id the host accepts, in bytes.
        max: usize,
    },
    /// `create` was false and no such room is live.
    NoSuchRoom,
    /// The service has no lobby.
    NoLobby,
    /// The instance is not attached to a room table (a benchmark).
    Unavailable,
}

impl fmt::Display for TransferRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAMember => f.write_str("the client is not in this room"),
            Self::SameRoom => f.write_str("the client is already in that room"),
            Self::InvalidRoomId { max } => write!(f, "a room id must be 1 to {max} bytes"),
            Self::NoSuchRoom => f.write_str("no such room"),
            Self::NoLobby => f.write_str("the service has no lobby"),
            Self::Unavailable => f.write_str("this instance is not attached to a room table"),
        }
    }
}

impl Error for TransferRefusal {}

/// Where a transfer starts from.
#[derive(Debug, Clone, Copy)]
pub struct TransferSource<'a> {
    /// The room the client is in (empty for the lobby).
    pub room_id: &'a str,
    /// Whether that room is the service's lobby.
    pub lobby: bool,
    /// Whether the service has a lobby.
    pub service_has_lobby: bool,
    /// `max_room_id_bytes`.
    pub max_room_id_bytes: usize,
}

/// The checks of `transfer`, in the host's order: membership, the target's
/// shape, then (without `create`) whether the target is live, asked through
/// `is_live` only when needed.
pub fn transfer(
    source: TransferSource<'_>,
    is_member: bool,
    to: Option<&str>,
    create: bool,
    is_live: impl FnOnce(&str) -> bool,
) -> Result<(), TransferRefusal> {
    if !is_member {
        return Err(TransferRefusal::NotAMember);
    }
    match to {
        None if source.lobby => Err(TransferRefusal::SameRoom),
        None if !source.service_has_lobby => Err(TransferRefusal::NoLobby),
        None => Ok(()),
        Some(id) if id.is_empty() || id.len() > source.max_room_id_bytes => {
            Err(TransferRefusal::InvalidRoomId {
                max: source.max_room_id_bytes,
            })
        }
        Some(id) if !source.lobby && id == source.room_id => Err(TransferRefusal::SameRoom),
        Some(id) if !create && !is_live(id) => Err(TransferRefusal::NoSuchRoom),
        Some(_) => Ok(()),
    }
}

/// Why `serve-root` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeRootRefusal {
    /// Only the lobby may claim the root, and only during `init`.
    NotLobbyInit,
    /// Another service's lobby holds the root.
    Taken,
}

impl fmt::Display for ServeRootRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLobbyInit => f.write_str("only the lobby may claim the root, during init"),
            Self::Taken => f.write_str("another service already serves the root"),
        }
    }
}

impl Error for ServeRootRefusal {}

/// The first check of `serve-root`: who may ask, and when.
pub fn may_serve_root(lobby: bool, in_init: bool) -> Result<(), ServeRootRefusal> {
    if !lobby || !in_init {
        return Err(ServeRootRefusal::NotLobbyInit);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: TransferSource<'static> = TransferSource {
        room_id: "a",
        lobby: false,
        service_has_lobby: true,
        max_room_id_bytes: 4,
    };

    #[test]
    fn transfer_checks_run_in_order() {
        let live = |_: &str| false;
        assert_eq!(
            transfer(ROOM, false, Some(""), false, live),
            Err(TransferRefusal::NotAMember)
        );
        assert_eq!(
            transfer(ROOM, true, Some("toolong"), false, live),
            Err(TransferRefusal::InvalidRoomId { max: 4 })
        );
        assert_eq!(
            transfer(ROOM, true, Some("a"), true, live),
            Err(TransferRefusal::SameRoom)
        );
        assert_eq!(
            transfer(ROOM, true, Some("b"), false, live),
            Err(TransferRefusal::NoSuchRoom)
        );
        assert_eq!(transfer(ROOM, true, Some("b"), true, live), Ok(()));
        assert_eq!(transfer(ROOM, true, None, false, live), Ok(()));
        let no_lobby = TransferSource {
            service_has_lobby: false,
            ..ROOM
        };
        assert_eq!(
            transfer(no_lobby, true, None, true, live),
            Err(TransferRefusal::NoLobby)
        );
        let lobby = TransferSource {
            lobby: true,
            room_id: "",
            ..ROOM
        };
        assert_eq!(
            transfer(lobby, true, None, true, live),
            Err(TransferRefusal::SameRoom)
        );
        // The lobby's empty id is not a target: "a" from the lobby is fine.
        assert_eq!(transfer(lobby, true, Some("a"), true, live), Ok(()));
    }

    #[test]
    fn is_live_is_asked_only_without_create() {
        let asked = std::cell::Cell::new(false);
        let live = |_: &str| {
            asked.set(true);
            true
        };
        assert_eq!(transfer(ROOM, true, Some("b"), true, live), Ok(()));
        assert!(!asked.get());
    }

    #[test]
    fn limits_and_messages() {
        assert_eq!(
            timer_fits(false, 2, 2).unwrap_err().to_string(),
            "too many pending timers (the limit is 2 per room)"
        );
        assert!(timer_fits(true, 2, 2).is_ok());
        assert_eq!(
            info_fits(5, 4).unwrap_err().to_string(),
            "info is 5 bytes; the limit is 4"
        );
        assert_eq!(
            client_state_fits(true, 5, 4).unwrap_err(),
            ClientStateRefusal::TooLarge { len: 5, limit: 4 }
        );
        assert_eq!(
            client_state_fits(false, 0, 4).unwrap_err(),
            ClientStateRefusal::NotAMember
        );
        assert_eq!(
            may_serve_root(true, false),
            Err(ServeRootRefusal::NotLobbyInit)
        );
    }
}
