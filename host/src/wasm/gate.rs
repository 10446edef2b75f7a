//! The output gate of a room that uses storage: what the room sends while
//! it handles an event (frames, closes, transfers) waits here until the
//! event's writes are durable, so no client sees state a crash could still
//! take back. Rooms of plugins that do not import `storage` send at once.
//!
//! What is held is bounded by `max_held_output_bytes` (frame bytes, counted
//! per recipient, plus [`ENTRY_BYTES`] per held effect so that empty frames
//! count too): a `send` or `broadcast` beyond it fails for the plugin.

use axum::extract::ws::Message as WsMessage;

use crate::client::{ClientSender, Move};

/// What one held effect costs besides its payload (the recipient's handle,
/// the frame's envelope), in the gate's accounting.
pub(crate) const ENTRY_BYTES: usize = 64;

/// One held effect, in the order the plugin asked for it.
pub(crate) enum Held {
    /// A frame (with its payload length) for a client.
    Frame(ClientSender, WsMessage, usize),
    /// A close with code and reason.
    Close(ClientSender, u16, String),
    /// A transfer to another room.
    Relocate(ClientSender, Move),
}

/// Output held until the current event commits.
pub(crate) struct OutputGate {
    on: bool,
    held: Vec<Held>,
    bytes: usize,
    max_bytes: usize,
}

/// The gate's bound was reached; nothing was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this event's output waiting for its storage commit would pass {limit} bytes \
     (max_held_output_bytes)"
)]
pub(crate) struct GateFull {
    pub(crate) limit: usize,
}

impl OutputGate {
    /// A gate that holds output when `on` (the plugin uses storage).
    pub(crate) fn new(on: bool, max_bytes: usize) -> OutputGate {
        OutputGate {
            on,
            held: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Whether output waits for commits.
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// Checks that `bytes` more frame bytes (all recipients together) fit.
    pub(crate) fn fits(&self, bytes: usize) -> Result<(), GateFull> {
        if self.on && self.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(GateFull {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Holds an effect (frames must have passed [`OutputGate::fits`]).
    pub(crate) fn hold(&mut self, effect: Held) {
        let len = match &effect {
            Held::Frame(_, _, len) => *len,
            Held::Close(..) | Held::Relocate(..) => 0,
        };
        self.bytes = self.bytes.saturating_add(len + ENTRY_BYTES);
        self.held.push(effect);
    }

    /// Takes what is held, in order, emptying the gate.
    pub(crate) fn take(&mut self) -> Vec<Held> {
        self.bytes = 0;
        std::mem::take(&mut self.held)
    }
}
