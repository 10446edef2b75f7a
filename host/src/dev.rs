//! The dev tap: a live stream of what happens in rooms (frames in and out,
//! joins, leaves) and in the dev loop (builds, reloads), for `roomhost dev`'s
//! dashboard. Off in production: a server without it pays one branch per
//! frame.
//!
//! The stream is a bounded broadcast channel, so a slow dashboard misses
//! events (it is told how many) instead of slowing rooms down. Frame
//! payloads are cut to a short preview. Build and reload events are also kept
//! in a short history, so a dashboard opened later still shows them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::room::ReloadReport;
use crate::wasm::unix_millis;

/// Events the live stream buffers per subscriber before it drops the oldest.
const STREAM_CAPACITY: usize = 4096;

/// Build and reload events kept for dashboards that connect later.
const HISTORY: usize = 100;

/// Longest frame preview, in bytes of text (binary frames show hex).
const PREVIEW_BYTES: usize = 200;

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Direction {
    /// From a client to its room.
    In,
    /// From a room to one client.
    Out,
    /// From a room to all its clients (minus exceptions).
    Broadcast,
}

/// Where the dev loop's build stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BuildState {
    /// A build started.
    Building,
    /// The build succeeded (a reload follows).
    Succeeded,
    /// The build failed; the last good version keeps serving.
    Failed,
}

/// One event of the dev stream, serialized as JSON with a `type` tag.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DevEvent {
    /// A frame.
    Frame {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The service.
        service: String,
        /// The room (empty: the lobby).
        room: String,
        /// The client it came from or went to (`None` for a broadcast).
        client: Option<u64>,
        /// Which way it went.
        direction: Direction,
        /// Whether it was a binary frame.
        binary: bool,
        /// Its length in bytes.
        len: usize,
        /// The start of its text, or of its bytes in hex.
        preview: String,
    },
    /// A client joined a room.
    Join {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The service.
        service: String,
        /// The room (empty: the lobby).
        room: String,
        /// The client.
        client: u64,
    },
    /// A client left a room.
    Leave {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The service.
        service: String,
        /// The room (empty: the lobby).
        room: String,
        /// The client.
        client: u64,
        /// Why (`closed`, `lost`, `kicked`, `transferred`).
        reason: String,
    },
    /// The dev loop's build changed state.
    Build {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Where the build stands.
        state: BuildState,
        /// Compiler output on failure, a summary otherwise.
        message: String,
    },
    /// A service was hot-reloaded.
    Reload {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// What happened to each room.
        report: ReloadReport,
    },
}

impl DevEvent {
    /// A build event stamped now.
    pub fn build(state: BuildState, message: impl Into<String>) -> DevEvent {
        DevEvent::Build {
            at_ms: now_ms(),
            state,
            message: message.into(),
        }
    }

    /// A reload event stamped now.
    pub fn reload(report: ReloadReport) -> DevEvent {
        DevEvent::Reload {
            at_ms: now_ms(),
            report,
        }
    }

    /// Whether the event belongs in the history dashboards get on connect.
    fn is_milestone(&self) -> bool {
        matches!(self, DevEvent::Build { .. } | DevEvent::Reload { .. })
    }
}

/// The dev event stream. Cloning gives another handle to the same stream.
///
/// ```
/// use roomhost_host::dev::{BuildState, DevEvent, DevTap};
///
/// let tap = DevTap::new();
/// let mut events = tap.subscribe();
/// tap.publish(DevEvent::build(BuildState::Building, "cargo build"));
/// assert!(matches!(events.try_recv(), Ok(DevEvent::Build { .. })));
/// assert_eq!(tap.history().len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct DevTap {
    events: broadcast::Sender<DevEvent>,
    history: Arc<Mutex<VecDeque<DevEvent>>>,
}

impl Default for DevTap {
    fn default() -> Self {
        Self::new()
    }
}

impl DevTap {
    /// An empty stream.
    pub fn new() -> DevTap {
        DevTap {
            events: broadcast::channel(STREAM_CAPACITY).0,
            history: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// Sends `event` to every subscriber (none listening is fine).
    pub fn publish(&self, event: DevEvent) {
        if event.is_milestone() {
            let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(event.clone());
        }
        let _ = self.events.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DevEvent> {
        self.events.subscribe()
    }

    /// The last build and reload events, oldest first.
    pub fn history(&self) -> Vec<DevEvent> {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Records a frame.
    pub(crate) fn frame(
        &self,
        service: &str,
        room: &str,
        client: Option<u64>,
        direction: Direction,
        payload: Payload<'_>,
    ) {
        // Nobody watching: skip the copy.
        if self.events.receiver_count() == 0 {
            return;
        }
        let (binary, len, preview) = match payload {
            Payload::Text(text) => (false, text.len(), preview_text(text)),
            Payload::Binary(bytes) => (true, bytes.len(), preview_hex(bytes)),
        };
        self.publish(DevEvent::Frame {
            at_ms: now_ms(),
            service: service.to_owned(),
            room: room.to_owned(),
            client,
            direction,
            binary,
            len,
            preview,
        });
    }

    /// Records a join or a leave (`reason: None` for a join).
    pub(crate) fn membership(&self, service: &str, room: &str, client: u64, reason: Option<&str>) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let (at_ms, service, room) = (now_ms(), service.to_owned(), room.to_owned());
        self.publish(match reason {
            None => DevEvent::Join {
                at_ms,
                service,
                room,
                client,
            },
            Some(reason) => DevEvent::Leave {
                at_ms,
                service,
                room,
                client,
                reason: reason.to_owned(),
            },
        });
    }
}

/// A frame's payload, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

fn preview_text(text: &str) -> String {
    let mut end = text.len().min(PREVIEW_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn preview_hex(bytes: &[u8]) -> String {
    hex::encode(&bytes[..bytes.len().min(PREVIEW_BYTES / 2)])
}

fn now_ms() -> u64 {
    unix_millis(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_bounded_and_cut_on_char_boundaries() {
        let text = "é".repeat(PREVIEW_BYTES);
        let preview = preview_text(&text);
        assert!(preview.len() <= PREVIEW_BYTES);
        assert!(preview.chars().all(|c| c == 'é'));
        assert_eq!(preview_hex(&[0xab; 1000]).len(), PREVIEW_BYTES);
    }

    #[test]
    fn frames_are_skipped_without_subscribers_and_history_is_bounded() {
        let tap = DevTap::new();
        tap.frame("s", "r", Some(1), Direction::In, Payload::Text("hi"));
        let mut events = tap.subscribe();
        assert!(events.try_recv().is_err());
        tap.frame("s", "r", Some(1), Direction::In, Payload::Binary(&[1, 2]));
        match events.try_recv() {
            Ok(DevEvent::Frame {
                preview,
                binary,
                len,
                ..
            }) => {
                assert_eq!((preview.as_str(), binary, len), ("0102", true, 2));
            }
            other => panic!("expected a frame, got {other:?}"),
        }
        for _ in 0..HISTORY + 10 {
            tap.publish(DevEvent::build(BuildState::Building, "x"));
        }
        assert_eq!(tap.history().len(), HISTORY);
        assert!(tap.history().iter().all(DevEvent::is_milestone));
    }
}
