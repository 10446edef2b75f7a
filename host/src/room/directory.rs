//! The room table: finds or creates a room for a connection, lists rooms for
//! `/rooms`, and removes rooms that ended.
//!
//! Creation and retirement race safely: a room retires only under the table
//! lock and only with an empty inbox, and a connect whose room retired anyway
//! sees its reply dropped and retries on a fresh room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::actor::RoomActor;
use super::{ConnectRequest, RoomEvent};
use crate::limits::Limits;
use crate::service::Service;
use crate::wasm::WasmEngine;

/// How many times a connect retries when its room ends under it.
const JOIN_ATTEMPTS: usize = 4;

/// Why a client could not join a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The plugin's `connect` rejected the client with this reason.
    #[error("{0}")]
    Rejected(String),
    /// The process holds `max_rooms` rooms already.
    #[error("room limit reached ({0} rooms)")]
    RoomLimit(usize),
    /// The room failed while starting or while handling the connect.
    #[error("{0}")]
    RoomFailed(String),
}

/// A room as `/rooms` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoomListing {
    /// The service the room belongs to.
    pub service: String,
    /// The room id.
    pub room: String,
    /// Connected clients.
    pub clients: usize,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The plugin version running the room.
    pub plugin_version: String,
    /// The plugin's `set-info` metadata (`null` until set).
    pub info: serde_json::Value,
}

/// A room's identity in the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RoomKey {
    pub(crate) service: Arc<str>,
    pub(crate) room: Arc<str>,
}

/// What the table knows about a live room, updated by its actor.
#[derive(Debug)]
pub(crate) struct RoomMeta {
    pub(crate) key: RoomKey,
    created_ms: u64,
    plugin_version: String,
    pub(crate) clients: AtomicUsize,
    pub(crate) info: Mutex<serde_json::Value>,
}

impl RoomMeta {
    fn listing(&self) -> RoomListing {
        RoomListing {
            service: self.key.service.to_string(),
            room: self.key.room.to_string(),
            clients: self.clients.load(Ordering::Relaxed),
            created_ms: self.created_ms,
            plugin_version: self.plugin_version.clone(),
            info: self
                .info
                .lock()
                .map(|info| info.clone())
                .unwrap_or_default(),
        }
    }
}

/// A live room: its inbox and its metadata.
#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub(crate) inbox: mpsc::Sender<RoomEvent>,
    pub(crate) meta: Arc<RoomMeta>,
}

/// The table of live rooms of every service.
pub struct Rooms {
    table: Mutex<HashMap<RoomKey, RoomHandle>>,
    engine: WasmEngine,
    limits: Arc<Limits>,
}

impl Rooms {
    /// An empty table whose rooms run on `engine` under `limits`.
    pub fn new(engine: WasmEngine, limits: Arc<Limits>) -> Arc<Rooms> {
        Arc::new(Rooms {
            table: Mutex::new(HashMap::new()),
            engine,
            limits,
        })
    }

    /// Puts a client into room `room` of `service`, creating the room if it
    /// does not exist. On success the client is a member and the returned
    /// handle is where its frames go.
    pub(crate) async fn join(
        self: &Arc<Self>,
        service: &Arc<Service>,
        room: &str,
        request: ConnectRequest,
    ) -> Result<RoomHandle, JoinError> {
        for _ in 0..JOIN_ATTEMPTS {
            let handle = self.get_or_create(service, room)?;
            let (reply, answer) = oneshot::channel();
            let event = RoomEvent::Connect {
                request: request.clone(),
                reply,
            };
            if handle.inbox.send(event).await.is_err() {
                continue;
            }
            match answer.await {
                Ok(result) => return result.map(|()| handle),
                Err(_) => continue,
            }
        }
        Err(JoinError::RoomFailed(
            "the room kept closing while joining".into(),
        ))
    }

    /// Every live room.
    pub fn list(&self) -> Vec<RoomListing> {
        let mut rooms: Vec<_> = self
            .lock()
            .values()
            .map(|handle| handle.meta.listing())
            .collect();
        rooms.sort_by(|a, b| (&a.service, &a.room).cmp(&(&b.service, &b.room)));
        rooms
    }

    /// One room, if it is live.
    pub fn get(&self, service: &str, room: &str) -> Option<RoomListing> {
        let key = RoomKey {
            service: service.into(),
            room: room.into(),
        };
        self.lock().get(&key).map(|handle| handle.meta.listing())
    }

    /// Number of live rooms.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no room is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the room if its inbox is empty; an idle room calls this to end.
    /// Returns whether the room was removed (and must stop).
    pub(crate) fn retire(&self, meta: &Arc<RoomMeta>, inbox: &mpsc::Receiver<RoomEvent>) -> bool {
        let mut table = self.lock();
        if !inbox.is_empty() {
            return false;
        }
        remove_if_same(&mut table, meta);
        true
    }

    /// Removes a room that failed.
    pub(crate) fn remove(&self, meta: &Arc<RoomMeta>) {
        remove_if_same(&mut self.lock(), meta);
    }

    fn get_or_create(
        self: &Arc<Self>,
        service: &Arc<Service>,
        room: &str,
    ) -> Result<RoomHandle, JoinError> {
        let key = RoomKey {
            service: service.name_arc(),
            room: room.into(),
        };
        let mut table = self.lock();
        if let Some(handle) = table.get(&key) {
            return Ok(handle.clone());
        }
        if table.len() >= self.limits.max_rooms {
            return Err(JoinError::RoomLimit(self.limits.max_rooms));
        }
        let (inbox, receiver) = mpsc::channel(self.limits.room_inbox.max(1));
        let meta = Arc::new(RoomMeta {
            key: key.clone(),
            created_ms: crate::wasm::unix_millis(SystemTime::now()),
            plugin_version: service.plugin().version().to_owned(),
            clients: AtomicUsize::new(0),
            info: Mutex::new(serde_json::Value::Null),
        });
        let handle = RoomHandle {
            inbox,
            meta: meta.clone(),
        };
        table.insert(key, handle.clone());
        drop(table);

        let span = tracing::info_span!("room", service = %meta.key.service, room = %meta.key.room);
        let actor = RoomActor::new(self.clone(), service.clone(), meta, receiver);
        let engine = self.engine.clone();
        let limits = self.limits.clone();
        tokio::spawn(actor.run(engine, limits).instrument(span));
        Ok(handle)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomKey, RoomHandle>> {
        // The table holds no invariant a panic could break halfway.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn remove_if_same(table: &mut HashMap<RoomKey, RoomHandle>, meta: &Arc<RoomMeta>) {
    if table
        .get(&meta.key)
        .is_some_and(|handle| Arc::ptr_eq(&handle.meta, meta))
    {
        table.remove(&meta.key);
    }
}
