//! A Yjs sync server (see `README.md`): each room is one shared document,
//! and `y-websocket` clients work with it unchanged.
//!
//! - [`protocol`] decodes and encodes the y-protocols frames (sync step 1,
//!   step 2, update, awareness, query-awareness).
//! - [`sync`] is what the room does with each frame, following the
//!   reference server (`@y/websocket-server`): answer step 1 with step 2,
//!   apply updates and fan them out to the other clients, apply awareness
//!   and broadcast it to everyone.
//! - [`document`] holds the yrs document with its size cap, and [`guard`]
//!   checks every incoming update before yrs sees it; [`roots`] tells
//!   the kinds of its root types and renders it as JSON; [`edits`] changes
//!   it without a Yjs client; [`split`] cuts the document into updates of
//!   bounded size for a joining client.
//! - [`presence`] is the awareness table and who controls which entry.
//! - [`persist`] keeps the document in the room's storage (a log of
//!   updates, compacted into the document's state), so a room that starts
//!   again, after it ended or after a host restart, has every change any
//!   client saw.
//! - [`http`] is the REST face (`/rooms/collab/{doc}/...`), [`snapshot`]
//!   what survives a hot reload, [`config`] the configuration.
//!
//! Configuration (all optional): see [`config::Config`]. A joining client
//! gets the document in frames of at most `max_frame_bytes` (1 MiB), which
//! must not exceed the host's `--max-plugin-frame-bytes` (16 MiB by
//! default); what clients may send (`--max-frame-bytes`) does not bound the
//! document. An invalid configuration makes `init` panic, so `roomhost
//! serve` refuses to start.

#![warn(missing_docs)]

pub mod config;
pub mod document;
pub mod edits;
pub mod guard;
pub mod http;
pub mod json;
pub mod persist;
pub mod presence;
pub mod protocol;
pub mod roots;
pub mod snapshot;
pub mod split;
pub mod sync;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, HttpRequest, HttpResponse, InitInfo, Message,
    Rejection, Room, RoomService, TimerId, room_service,
};

use crate::config::Config;
use crate::document::{DocError, Document};
use crate::persist::{Log, Stored};
use crate::presence::{AwarenessId, Presence};
use crate::snapshot::Snapshot;

/// Fires `keep_empty_ms` after the last client left; until then the room
/// (and its document, in memory) stays alive.
pub const KEEP_EMPTY_TIMER: TimerId = 1;
/// Fires when the oldest awareness state expires.
pub const AWARENESS_TIMER: TimerId = 2;

/// Close code for a frame that is not a valid y-protocols message (or a
/// text frame). Content that is well formed but refused is dropped instead
/// (see [`sync`]).
pub const CLOSE_MALFORMED: u16 = 4400;

/// The collab service: one shared document per room.
#[derive(Debug, Default)]
#[room_service]
pub struct Collab {
    config: Config,
    doc: Document,
    /// Where the stored copy of the document stands.
    log: Log,
    presence: Presence,
    clients: BTreeSet<ClientId>,
    /// Clients whose token grants read-only access: their document updates
    /// are dropped, their awareness is relayed.
    read_only: BTreeSet<ClientId>,
    /// Rate limits of the warnings and resync requests, per connection.
    refusals: BTreeMap<ClientId, sync::Refusals>,
}

impl Collab {
    /// The document.
    #[cfg(test)]
    pub(crate) fn document(&self) -> &Document {
        &self.doc
    }

    /// The awareness table.
    #[cfg(test)]
    pub(crate) fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Stores the updates a change integrated (see [`persist`]), then sends
    /// each as a sync `update` frame to every client but `except`; returns
    /// whether the document changed. When storage refuses them, the
    /// document goes back to what is stored and nobody receives them.
    pub(crate) fn commit(
        &mut self,
        room: &mut Room<'_>,
        updates: Vec<Vec<u8>>,
        except: &[ClientId],
    ) -> Result<bool, DocError> {
        self.save(room, &updates)?;
        let changed = !updates.is_empty();
        self.fan_out(room, updates, except);
        Ok(changed)
    }

    /// Sends each update as a sync `update` frame to every client but
    /// `except`.
    fn fan_out(&self, room: &mut Room<'_>, updates: Vec<Vec<u8>>, except: &[ClientId]) {
        for update in updates {
            room.broadcast(Message::binary(protocol::sync_update(update)), except);
        }
    }

    /// Broadcasts the current entries of `ids` to every client (the sender
    /// included, as the reference server does).
    fn broadcast_awareness(&self, room: &mut Room<'_>, ids: &[AwarenessId]) {
        for update in self.presence.updates_for(ids, self.config.max_frame_bytes) {
            room.broadcast(Message::binary(protocol::awareness(update)), &[]);
        }
    }

    /// Sends `client` every live awareness state (in as many frames as the
    /// frame limit needs).
    fn send_live_awareness(&self, room: &mut Room<'_>, client: ClientId) {
        for update in self.presence.live_updates(self.config.max_frame_bytes) {
            room.send(client, Message::binary(protocol::awareness(update)));
        }
    }

    /// Sets the awareness timer to the next expiry, or cancels it.
    fn schedule_awareness(&self, room: &mut Room<'_>) {
        match self.presence.next_expiry() {
            Some(at) => {
                let delay = Duration::from_millis(at.saturating_sub(room.now_ms()));
                if let Err(err) = room.set_timer(AWARENESS_TIMER, delay) {
                    room.warn(&format!("cannot set the awareness timer: {err}"));
                }
            }
            None => room.cancel_timer(AWARENESS_TIMER),
        }
    }

    /// Keeps an empty room (and so its document) alive for `keep_empty_ms`.
    fn keep_if_empty(&self, room: &mut Room<'_>) {
        if !self.clients.is_empty() || self.config.keep_empty_ms == 0 {
            return;
        }
        let delay = Duration::from_millis(self.config.keep_empty_ms);
        if let Err(err) = room.set_timer(KEEP_EMPTY_TIMER, delay) {
            room.warn(&format!("cannot keep the empty document: {err}"));
        }
    }

    /// Compacts the stored log, if there is one.
    fn compact_log(&mut self, room: &mut Room<'_>) {
        if self.log.entries() > 0 {
            self.compact(room);
        }
    }

    /// Publishes the listing metadata shown by `GET /rooms`.
    fn publish_info(&self, room: &mut Room<'_>) {
        let info = serde_json::json!({ "clients": self.clients.len() });
        if let Err(err) = room.set_info(&info) {
            room.warn(&format!("cannot publish room info: {err}"));
        }
    }
}

impl RoomService for Collab {
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        self.config = Config::from_init(info)?;
        // Yjs client ids are random 32-bit numbers.
        let client_id = room.random_u64() & u64::from(u32::MAX);
        // A room that starts again finds its document in storage.
        let stored = Stored::read(&mut room.storage()).map_err(|err| err.to_string())?;
        self.doc = stored
            .document(self.config.doc_settings(client_id))
            .map_err(|err| err.to_string())?;
        self.log = stored.log;
        self.presence = Presence::new(self.config.presence_limits());
        Ok(())
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        self.clients.insert(client.id);
        if client.read_only {
            self.read_only.insert(client.id);
        }
        room.cancel_timer(KEEP_EMPTY_TIMER);
        let step1 = protocol::sync_step1(self.doc.state_vector());
        room.send(client.id, Message::binary(step1));
        self.send_live_awareness(room, client.id);
        self.publish_info(room);
        Ok(())
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        self.on_frame(room, client, message);
    }

    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, _reason: DisconnectReason) {
        if !self.clients.remove(&client) {
            return;
        }
        self.read_only.remove(&client);
        self.forget_refusals(room, client);
        let removed = self.presence.remove_client(client, room.now_ms());
        self.broadcast_awareness(room, &removed);
        self.schedule_awareness(room);
        self.keep_if_empty(room);
        if self.clients.is_empty() && self.config.keep_empty_ms == 0 {
            // The room ends now: the next start reads one record.
            self.compact_log(room);
        }
        self.publish_info(room);
    }

    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        match timer {
            KEEP_EMPTY_TIMER if self.clients.is_empty() => {
                // With no clients and no timers the host ends the room; the
                // document stays in storage, compacted so that the next start
                // reads one record. (No awareness timer is left:
                // every live state belongs to a connection, and the last
                // one's departure removed them and cancelled it.)
                room.debug("no client came back: the room ends, its document stays stored");
                self.compact_log(room);
            }
            AWARENESS_TIMER => {
                let expired = self.presence.expire(room.now_ms());
                self.broadcast_awareness(room, &expired);
                self.schedule_awareness(room);
            }
            _ => {}
        }
    }

    fn request(&mut self, room: &mut Room<'_>, request: HttpRequest) -> HttpResponse {
        self.on_request(room, request)
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        let txn = yrs::Transact::transact(self.doc.doc());
        let snapshot = Snapshot {
            client_id: self.doc.client_id(),
            doc: self.doc.encode(),
            kinds: roots::kinds(&txn),
            presence: self
                .presence
                .entries()
                .map(|(id, entry)| (id, entry.clone()))
                .collect(),
            owners: self.presence.owners().collect(),
            clients: self.clients.iter().copied().collect(),
            read_only: self.read_only.iter().copied().collect(),
        };
        Ok(Some(snapshot.encode()))
    }

    fn restore(room: &mut Room<'_>, info: &InitInfo, snapshot: &[u8]) -> Result<Self, String> {
        let config = Config::from_init(info)?;
        let snapshot = Snapshot::decode(snapshot)?;
        let doc = Document::restore(
            config.doc_settings(snapshot.client_id),
            &snapshot.doc,
            &snapshot.kinds,
        )
        .map_err(|err| format!("cannot restore the document: {err}"))?;
        // The stored copy is the same document: only where its log stands
        // is needed.
        let log = Stored::read(&mut room.storage())
            .map_err(|err| err.to_string())?
            .log;
        let presence =
            Presence::from_parts(snapshot.presence, snapshot.owners, config.presence_limits());
        let mut restored = Self {
            config,
            doc,
            log,
            presence,
            clients: snapshot.clients.into_iter().collect(),
            read_only: snapshot.read_only.into_iter().collect(),
            refusals: BTreeMap::new(),
        };
        if restored.log.is_empty() && !restored.doc.state_vector().is_empty() {
            // From a version that did not store the document.
            restored.compact(room);
        }
        Ok(restored)
    }
}
