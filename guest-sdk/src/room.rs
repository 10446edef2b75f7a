//! The room context handed to every callback: [`Room`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::{ClientId, Message};

/// Identifies a timer. Ids are chosen by the service; setting an id that is
/// already pending replaces that timer.
pub type TimerId = u64;

/// Severity of a [`Room::log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the service handled.
    Warn,
    /// Something failed.
    Error,
}

/// Where a [`Room`]'s effects go: the `host` imports in wasm, a recorder in
/// the test harness.
pub(crate) trait Backend {
    fn send(&mut self, client: ClientId, msg: Message);
    fn broadcast(&mut self, msg: Message, except: &[ClientId]);
    fn close(&mut self, client: ClientId, code: u16, reason: &str);
    fn set_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String>;
    fn cancel_timer(&mut self, id: TimerId);
    fn now_ms(&self) -> u64;
    fn random_u64(&mut self) -> u64;
    fn log(&mut self, level: LogLevel, message: &str);
    fn set_info(&mut self, json: &str) -> Result<(), String>;
}

/// The room a callback runs in: send frames, close clients, set timers, read
/// the clock, log, and publish listing metadata.
///
/// A `Room` only exists for the duration of one callback. Everything it does
/// is queued by the host and takes effect in call order; nothing blocks on a
/// socket. Outside wasm (in [`testing::TestRoom`](crate::testing::TestRoom))
/// the same calls are recorded instead.
pub struct Room<'a> {
    room_id: &'a str,
    backend: &'a mut dyn Backend,
}

impl<'a> Room<'a> {
    pub(crate) fn new(room_id: &'a str, backend: &'a mut dyn Backend) -> Self {
        Self { room_id, backend }
    }

    /// The room's id as it appears in the URL.
    pub fn room_id(&self) -> &str {
        self.room_id
    }

    /// Sends a frame to one client of this room. A client that is not (or no
    /// longer) connected is silently ignored, and so is a frame larger than
    /// [`MAX_FRAME_BYTES`](crate::limits::MAX_FRAME_BYTES).
    pub fn send(&mut self, client: ClientId, msg: impl Into<Message>) {
        self.backend.send(client, msg.into());
    }

    /// Sends a frame to every connected client of this room except those in
    /// `except` (pass `&[]` to reach everyone).
    pub fn broadcast(&mut self, msg: impl Into<Message>, except: &[ClientId]) {
        self.backend.broadcast(msg.into(), except);
    }

    /// Closes a client's connection with a WebSocket close `code` and a
    /// `reason`.
    ///
    /// `code` must be 1000 or in `3000..=4999` (see
    /// [`limits::is_valid_close_code`](crate::limits::is_valid_close_code));
    /// the host replaces any other code with 1000. `reason` is truncated to
    /// [`MAX_CLOSE_REASON_BYTES`](crate::limits::MAX_CLOSE_REASON_BYTES).
    /// Frames already sent to the client are delivered before the close; it
    /// receives nothing sent after this call, and the room receives
    /// [`disconnect(client, Kicked)`](crate::RoomService::disconnect) after the
    /// current callback returns. Unknown clients are ignored.
    pub fn close(&mut self, client: ClientId, code: u16, reason: &str) {
        self.backend.close(
            client,
            code,
            truncate(reason, crate::limits::MAX_CLOSE_REASON_BYTES),
        );
    }

    /// Schedules [`RoomService::timer(id)`](crate::RoomService::timer) after
    /// `delay` (rounded up to whole milliseconds, at most
    /// [`MAX_TIMER_DELAY`](crate::limits::MAX_TIMER_DELAY)), replacing a
    /// pending timer with the same id.
    ///
    /// Fails when the room already holds
    /// [`MAX_TIMERS`](crate::limits::MAX_TIMERS) other pending timers. A room
    /// with pending timers stays alive without clients.
    pub fn set_timer(&mut self, id: TimerId, delay: Duration) -> Result<(), TimerError> {
        self.backend
            .set_timer(id, duration_to_ms(delay))
            .map_err(|message| TimerError { message })
    }

    /// Cancels a pending timer; unknown ids are ignored.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.backend.cancel_timer(id);
    }

    /// Wall-clock time in milliseconds since the Unix epoch (a fake clock in
    /// the test harness).
    pub fn now_ms(&self) -> u64 {
        self.backend.now_ms()
    }

    /// 64 random bits from the host's cryptographically secure generator
    /// (a seeded, deterministic generator in the test harness).
    pub fn random_u64(&mut self) -> u64 {
        self.backend.random_u64()
    }

    /// Writes a line to the host's log, tagged with the room.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.backend.log(level, message);
    }

    /// Logs at [`LogLevel::Debug`].
    pub fn debug(&mut self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    /// Logs at [`LogLevel::Info`].
    pub fn info(&mut self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at [`LogLevel::Warn`].
    pub fn warn(&mut self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at [`LogLevel::Error`].
    pub fn error(&mut self, message: &str) {
        self.log(LogLevel::Error, message);
    }

    /// Sets this room's listing metadata, shown by the host's `GET /rooms`.
    ///
    /// `info` is serialized to JSON; the host rejects text larger than
    /// [`MAX_INFO_BYTES`](crate::limits::MAX_INFO_BYTES).
    ///
    /// ```
    /// # use roomhost_sdk::{Room, InfoError};
    /// fn publish(room: &mut Room<'_>, players: usize) -> Result<(), InfoError> {
    ///     room.set_info(&serde_json::json!({ "players": players }))
    /// }
    /// ```
    pub fn set_info<T: Serialize + ?Sized>(&mut self, info: &T) -> Result<(), InfoError> {
        let json = serde_json::to_string(info).map_err(InfoError::Serialize)?;
        self.backend.set_info(&json).map_err(InfoError::Rejected)
    }
}

impl fmt::Debug for Room<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Room")
            .field("room_id", &self.room_id)
            .finish_non_exhaustive()
    }
}

/// `delay` in whole milliseconds, rounded up and saturating.
pub(crate) fn duration_to_ms(delay: Duration) -> u64 {
    let millis = delay.as_millis() + u128::from(!delay.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(millis).unwrap_or(u64::MAX)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// [`Room::set_timer`] failed: the room holds its maximum number of timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerError {
    message: String,
}

impl TimerError {
    /// The host's explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TimerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot set timer: {}", self.message)
    }
}

impl Error for TimerError {}

/// [`Room::set_info`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InfoError {
    /// The value could not be serialized to JSON.
    Serialize(serde_json::Error),
    /// The host rejected the metadata (for example, it is too large).
    Rejected(String),
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serialize(err) => write!(f, "cannot serialize room info: {err}"),
            Self::Rejected(reason) => write!(f, "room info rejected: {reason}"),
        }
    }
}

impl Error for InfoError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Serialize(err) => Some(err),
            Self::Rejected(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up() {
        assert_eq!(duration_to_ms(Duration::ZERO), 0);
        assert_eq!(duration_to_ms(Duration::from_micros(1)), 1);
        assert_eq!(duration_to_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(duration_to_ms(Duration::from_nanos(1_000_001)), 2);
        assert_eq!(duration_to_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("", 0), "");
    }
}
