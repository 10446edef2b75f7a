//! What a room does with each frame a client sends, following the reference
//! server (`@y/websocket-server` 0.1.1, `utils.js`):
//!
//! - **sync step 1** → answer the sender with step 2: what it lacks;
//! - **sync step 2 / update** → apply to the document and send what was new
//!   to every *other* client as a sync `update` (the reference also echoes
//!   it to the sender, which the sender ignores);
//! - **awareness** → apply, remember which connection controls which
//!   awareness id, and broadcast the changed entries to *every* client, the
//!   sender included (as the reference does);
//! - **query-awareness** → answer the sender with every live state (the
//!   reference ignores it);
//! - other message types (auth, extensions) → ignored, like the reference.
//!
//! Failures close only the client that caused them: a frame that is not a
//! y-protocols message (or a text frame) with [`CLOSE_MALFORMED`] (4400); an
//! update that would grow the document beyond `max_doc_bytes`, or an
//! awareness state beyond `max_awareness_bytes`, with [`CLOSE_TOO_LARGE`]
//! (4413). Nothing is applied from a refused frame, the room and the other
//! clients carry on, and the reason is logged as a warning.

use roomhost_sdk::{ClientId, Message, Room};

use crate::document::DocError;
use crate::presence::{self, Refusal};
use crate::protocol::{self, Incoming};
use crate::{CLOSE_MALFORMED, CLOSE_TOO_LARGE, Collab};

/// The close reason for text frames.
pub const TEXT_FRAME_REASON: &str = "collab speaks binary y-protocols frames; text is not accepted";

impl Collab {
    /// Handles one frame from `client`.
    pub(crate) fn on_frame(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let frame = match message {
            Message::Binary(frame) => frame,
            Message::Text(_) => return refuse(room, client, CLOSE_MALFORMED, TEXT_FRAME_REASON),
        };
        let incoming = match protocol::decode(&frame) {
            Ok(incoming) => incoming,
            Err(err) => {
                let reason = format!("malformed message: {err}");
                return refuse(room, client, CLOSE_MALFORMED, &reason);
            }
        };
        match incoming {
            Incoming::SyncStep1(state_vector) => {
                let step2 = protocol::sync_step2(self.doc.diff(&state_vector));
                room.send(client, Message::binary(step2));
            }
            Incoming::SyncStep2(update) | Incoming::Update(update) => {
                self.apply_update(room, client, &update);
            }
            Incoming::Awareness(update) => {
                match presence::check(&update, self.config.max_awareness_bytes) {
                    Ok(changes) => {
                        let changed = self.presence.apply(client, changes, room.now_ms());
                        self.broadcast_awareness(room, &changed);
                        self.schedule_awareness(room);
                    }
                    Err(Refusal::Malformed(reason)) => {
                        refuse(room, client, CLOSE_MALFORMED, &reason);
                    }
                    Err(Refusal::TooLarge { id, bytes }) => {
                        let reason = format!(
                            "awareness state of {id} is {bytes} bytes; the limit is {}",
                            self.config.max_awareness_bytes
                        );
                        refuse(room, client, CLOSE_TOO_LARGE, &reason);
                    }
                }
            }
            Incoming::QueryAwareness => {
                if let Some(states) = self.presence.live_update() {
                    room.send(client, Message::binary(protocol::awareness(states)));
                }
            }
            Incoming::Other(tag) => {
                room.debug(&format!("client {client}: ignoring message type {tag}"));
            }
        }
    }

    /// Applies a document update from `client` and fans out what was new.
    fn apply_update(&mut self, room: &mut Room<'_>, client: ClientId, update: &[u8]) {
        match self.doc.apply(update) {
            Ok(updates) => self.fan_out(room, updates, &[client]),
            Err(err @ DocError::TooLarge { .. }) => {
                refuse(room, client, CLOSE_TOO_LARGE, &err.to_string());
            }
            Err(err @ (DocError::Malformed(_) | DocError::Incomplete(_))) => {
                let partial = self.doc.take_updates();
                self.fan_out(room, partial, &[client]);
                refuse(room, client, CLOSE_MALFORMED, &err.to_string());
            }
        }
    }
}

/// Logs why `client` is refused and closes it with `code`.
fn refuse(room: &mut Room<'_>, client: ClientId, code: u16, reason: &str) {
    room.warn(&format!("client {client}: {reason}; closing with {code}"));
    room.close(client, code, reason);
}
