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
//! A client whose token grants read-only access (`ClientInfo::read_only`)
//! gets the document and awareness like any other, and its awareness is
//! relayed, but its sync step 2 and updates are dropped (logged like other
//! refusals) and never reach the document or the other clients.
//!
//! Only bytes that are not y-protocols messages close the client that sent
//! them, with [`CLOSE_MALFORMED`] (4400): a text frame, a frame that does
//! not decode, an awareness state that is not JSON, an update that is not
//! well formed. Content that is well formed but refused (an update beyond
//! `max_doc_bytes`, an awareness state beyond the caps, an update that
//! depends on changes the room lacks) is dropped and the connection kept:
//! y-websocket reconnects 100 ms after any close and sends the same content
//! again, so a close would only start a reconnect loop. Drops are logged as
//! warnings, at most one per connection every [`REFUSAL_LOG_INTERVAL_MS`]
//! (the others are counted in the next one). For an update that depends on
//! changes the room lacks, the room also sends the client its sync step 1
//! (at most once per [`RESYNC_INTERVAL_MS`]): a y-websocket client answers
//! with step 2, everything the room lacks, which fills the gap.
//!
//! Nothing is applied from a frame that closes its client; the room and the
//! other clients carry on.

use roomhost_sdk::{ClientId, Message, Room};
use yrs::StateVector;

use crate::document::DocError;
use crate::presence;
use crate::protocol::{self, Incoming};
use crate::split;
use crate::{CLOSE_MALFORMED, Collab};

/// How often a connection's dropped frames are logged at most: the first
/// drop at once, then one warning per interval that counts the others.
pub const REFUSAL_LOG_INTERVAL_MS: u64 = 10_000;

/// How often the room asks one client to resync at most.
pub const RESYNC_INTERVAL_MS: u64 = 10_000;

/// What the room remembers about the refusals of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Refusals {
    /// When a drop was last logged.
    logged_at: Option<u64>,
    /// Drops since then that were not logged.
    suppressed: u64,
    /// When the room last asked the client to resync.
    resync_at: Option<u64>,
}

/// Why a read-only client's update is dropped.
pub const READ_ONLY_REASON: &str = "read-only client: document update refused";

/// Whether `update` is the encoding of "no changes" (no structs, empty
/// delete set).
fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}

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
                self.send_step2(room, client, &state_vector);
            }
            Incoming::SyncStep2(update) | Incoming::Update(update) => {
                if self.read_only.contains(&client) {
                    // An empty step 2 (a client with nothing to add) is
                    // what every read-only client sends on joining.
                    if !is_empty_update(&update) {
                        self.drop_refused(room, client, READ_ONLY_REASON);
                    }
                    return;
                }
                self.apply_update(room, client, &update);
            }
            Incoming::Awareness(update) => {
                let checked = match presence::check(&update, self.config.max_awareness_bytes) {
                    Ok(checked) => checked,
                    Err(reason) => return refuse(room, client, CLOSE_MALFORMED, &reason),
                };
                for reason in &checked.dropped {
                    self.drop_refused(room, client, reason);
                }
                let applied = self.presence.apply(client, checked.changes, room.now_ms());
                for reason in &applied.dropped {
                    self.drop_refused(room, client, reason);
                }
                self.broadcast_awareness(room, &applied.changed);
                self.schedule_awareness(room);
            }
            Incoming::QueryAwareness => {
                self.send_live_awareness(room, client);
            }
            Incoming::Other(tag) => {
                room.debug(&format!("client {client}: ignoring message type {tag}"));
            }
        }
    }

    /// Answers `client`'s sync step 1 with what it lacks, cut into frames of
    /// at most `max_frame_bytes`: every part but the last as a sync update,
    /// the last as sync step 2, so that a y-websocket client counts as
    /// synced (`provider.synced`) once it holds the whole document.
    fn send_step2(&mut self, room: &mut Room<'_>, client: ClientId, state_vector: &StateVector) {
        let update = self.doc.diff(state_vector);
        // The message header takes at most 7 bytes: tag, kind, length.
        let max = self.config.max_frame_bytes.saturating_sub(16);
        let parts = match split::split(&update, max) {
            Ok(parts) => parts,
            Err(err) => {
                // Not for the room's own encoding; one frame still works.
                room.warn(&format!("client {client}: {err}; sending one frame"));
                vec![update]
            }
        };
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.into_iter().enumerate() {
            let frame = if i == last {
                protocol::sync_step2(part)
            } else {
                protocol::sync_update(part)
            };
            if let Err(err) = room.try_send(client, Message::binary(frame)) {
                // Only when the host's --max-plugin-frame-bytes is below
                // max_frame_bytes, or for a struct that cannot be cut.
                room.warn(&format!(
                    "client {client}: part of the document does not reach it ({err}); set \
                     collab's max_frame_bytes to at most the host's --max-plugin-frame-bytes"
                ));
                return;
            }
        }
    }

    /// Applies a document update from `client` and fans out what was new.
    fn apply_update(&mut self, room: &mut Room<'_>, client: ClientId, update: &[u8]) {
        let Err(err) = self.apply_and_fan_out(room, update, Some(client)) else {
            return;
        };
        if let Some(code) = err.close_code() {
            return refuse(room, client, code, &err.to_string());
        }
        self.drop_refused(room, client, &err.to_string());
        if matches!(err, DocError::Incomplete(_)) {
            self.ask_to_resync(room, client);
        }
    }

    /// Applies an update (from connection `from`, or over HTTP), stores what
    /// was integrated and fans it out to every other client, also when the
    /// update failed part way. Returns whether the document changed.
    pub(crate) fn apply_and_fan_out(
        &mut self,
        room: &mut Room<'_>,
        update: &[u8],
        from: Option<ClientId>,
    ) -> Result<bool, DocError> {
        let except: &[ClientId] = match &from {
            Some(client) => std::slice::from_ref(client),
            None => &[],
        };
        let (updates, result) = match self.doc.apply(update) {
            Ok(updates) => (updates, Ok(())),
            Err(err) => (self.doc.take_updates(), Err(err)),
        };
        let changed = self.commit(room, updates, except);
        result.and(changed)
    }

    /// Logs that a frame of `client` was dropped for `reason`: the first
    /// drop at once, then at most one warning per
    /// [`REFUSAL_LOG_INTERVAL_MS`], counting the drops in between.
    pub(crate) fn drop_refused(&mut self, room: &mut Room<'_>, client: ClientId, reason: &str) {
        let now = room.now_ms();
        let refusals = self.refusals.entry(client).or_default();
        if refusals
            .logged_at
            .is_some_and(|at| now.saturating_sub(at) < REFUSAL_LOG_INTERVAL_MS)
        {
            refusals.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut refusals.suppressed);
        refusals.logged_at = Some(now);
        let more = match suppressed {
            0 => String::new(),
            n => format!(" ({n} more dropped since the last warning)"),
        };
        room.warn(&format!(
            "client {client}: {reason}; dropped, the connection stays open{more}"
        ));
    }

    /// Sends `client` the room's sync step 1, so that it answers with
    /// everything the room lacks; at most once per [`RESYNC_INTERVAL_MS`].
    fn ask_to_resync(&mut self, room: &mut Room<'_>, client: ClientId) {
        let now = room.now_ms();
        let refusals = self.refusals.entry(client).or_default();
        if refusals
            .resync_at
            .is_some_and(|at| now.saturating_sub(at) < RESYNC_INTERVAL_MS)
        {
            return;
        }
        refusals.resync_at = Some(now);
        let step1 = protocol::sync_step1(self.doc.state_vector());
        room.send(client, Message::binary(step1));
    }

    /// Forgets the refusals of a client that left, logging the drops no
    /// warning counted yet.
    pub(crate) fn forget_refusals(&mut self, room: &mut Room<'_>, client: ClientId) {
        if let Some(refusals) = self.refusals.remove(&client)
            && refusals.suppressed > 0
        {
            room.warn(&format!(
                "client {client} left; {} more of its frames were dropped since the last warning",
                refusals.suppressed
            ));
        }
    }
}

/// Logs why `client` is refused and closes it with `code`.
fn refuse(room: &mut Room<'_>, client: ClientId, code: u16, reason: &str) {
    room.warn(&format!("client {client}: {reason}; closing with {code}"));
    room.close(client, code, reason);
}
