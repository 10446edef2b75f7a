//! Limits the host enforces on every room, mirrored by the
//! [`testing`](crate::testing) harness.
//!
//! The sizes and counts are the host's defaults; an operator may change them
//! (`roomhost serve --help` lists the flags), so treat them as guidance and
//! handle the errors the [`Room`](crate::Room) methods return.

use std::time::Duration;

/// The most timers a room may have pending at once (host default). Setting a
/// new timer id beyond this fails with a [`TimerError`](crate::TimerError);
/// re-setting a pending id replaces it and always succeeds.
pub const MAX_TIMERS: usize = 1024;

/// The longest timer delay; longer delays are clamped to it.
pub const MAX_TIMER_DELAY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The largest listing metadata [`Room::set_info`](crate::Room::set_info)
/// accepts, in bytes of JSON text (host default).
pub const MAX_INFO_BYTES: usize = 4 * 1024;

/// The largest frame, in bytes, a client may send (host default,
/// `max_frame_bytes`). A client sending more is disconnected (1009), so no
/// [`RoomService::message`](crate::RoomService::message) carries more.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The largest frame, in bytes, the service may send (host default,
/// `max_plugin_frame_bytes`). [`Room::try_send`](crate::Room::try_send) and
/// [`Room::try_broadcast`](crate::Room::try_broadcast) fail with a
/// [`SendError`](crate::SendError) for a larger frame, and send nothing;
/// [`Room::send`](crate::Room::send) and [`Room::broadcast`](crate::Room::broadcast)
/// log that error instead.
pub const MAX_PLUGIN_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The longest close reason, in bytes; [`Room::close`](crate::Room::close)
/// truncates longer reasons (at a character boundary).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The longest room id, in bytes, that [`Room::transfer`](crate::Room::transfer)
/// accepts (room ids must also be non-empty).
pub const MAX_ROOM_ID_BYTES: usize = 128;

/// Whether `code` is a close code a service may use: 1000 (normal closure)
/// or an application code in `3000..=4999`. The host replaces any other
/// code with 1000.
pub const fn is_valid_close_code(code: u16) -> bool {
    code == 1000 || (code >= 3000 && code <= 4999)
}
