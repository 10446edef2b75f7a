//! Limits the host enforces on every room, applied by the
//! [`testing`](crate::testing) harness too.
//!
//! The sizes and counts are the host's defaults; an operator may change them
//! (`roomhost serve --help` lists the flags), so treat them as guidance and
//! handle the errors the [`Room`](crate::Room) methods return. They come from
//! `roomhost-rules`, the one place the host and the harness take their rules
//! from.

pub use roomhost_rules::limits::{
    MAX_CLIENT_STATE_BYTES, MAX_FRAME_BYTES, MAX_INFO_BYTES, MAX_PLUGIN_FRAME_BYTES,
    MAX_ROOM_ID_BYTES, MAX_ROOM_STORAGE_BYTES, MAX_STORAGE_KEY_BYTES, MAX_STORAGE_LIST_BYTES,
    MAX_STORAGE_LIST_ENTRIES, MAX_STORAGE_VALUE_BYTES, MAX_TIMER_DELAY, MAX_TIMERS,
};

/// The longest close reason, in bytes; [`Room::close`](crate::Room::close)
/// truncates longer reasons (at a character boundary).
pub const MAX_CLOSE_REASON_BYTES: usize = roomhost_rules::close::MAX_REASON_BYTES;

/// Whether `code` is a close code a service may use: 1000 (normal closure)
/// or an application code in `3000..=4999`. The host replaces any other
/// code with 1000.
///
/// ```
/// use roomhost_sdk::limits::is_valid_close_code;
/// assert!(is_valid_close_code(4000));
/// assert!(!is_valid_close_code(1011));
/// ```
pub const fn is_valid_close_code(code: u16) -> bool {
    roomhost_rules::close::is_plugin_code(code)
}
