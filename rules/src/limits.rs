//! The host's default limits on what one room and its plugin may use.
//!
//! An operator may change each of them (`roomhost serve --help` names the
//! flags); these are the values a fresh host starts with, and the values the
//! SDK's test harness applies.

use std::time::Duration;

/// The most timers a room may have pending at once (`max_timers_per_room`).
pub const MAX_TIMERS: usize = 1024;

/// The longest timer delay; longer delays are clamped to it.
pub const MAX_TIMER_DELAY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The largest listing metadata (`set-info`), in bytes of JSON text
/// (`max_info_bytes`).
pub const MAX_INFO_BYTES: usize = 4 * 1024;

/// The largest frame, in bytes, a client may send (`max_frame_bytes`).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The largest frame, in bytes, a plugin may send (`max_plugin_frame_bytes`).
pub const MAX_PLUGIN_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The longest room id, in bytes (`max_room_id_bytes`). Room ids are also
/// never empty.
pub const MAX_ROOM_ID_BYTES: usize = 256;

/// The most state, in bytes, a plugin may attach to one client
/// (`max_client_state_bytes`).
pub const MAX_CLIENT_STATE_BYTES: usize = 4 * 1024;

/// The longest storage key, in bytes (`max_storage_key_bytes`).
pub const MAX_STORAGE_KEY_BYTES: usize = 2 * 1024;

/// The largest stored value, in bytes (`max_storage_value_bytes`).
pub const MAX_STORAGE_VALUE_BYTES: usize = 1024 * 1024;

/// The most a room may store, in bytes of keys plus values
/// (`max_room_storage_bytes`). A live room holds its stored data in memory,
/// so this also bounds what storage adds to a room's footprint.
pub const MAX_ROOM_STORAGE_BYTES: usize = 32 * 1024 * 1024;

/// The most entries one storage `list` call returns; a caller pages on with
/// `start-after`.
pub const MAX_STORAGE_LIST_ENTRIES: usize = 1000;

/// The most bytes (keys plus values) one storage `list` call returns (at
/// least one entry is always returned when one matches).
pub const MAX_STORAGE_LIST_BYTES: usize = 4 * 1024 * 1024;
