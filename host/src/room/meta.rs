//! What the host knows about each live room, shared by the room table, the
//! room's actor and the HTTP listings: its key, its metadata and its handle.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::mpsc;

use super::{LOBBY, RoomEvent};
use crate::wasm::GuestRoomEntry;

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
    /// CPU time the room's callbacks have used since it started, in
    /// milliseconds (time spent running the plugin, not waiting to run).
    pub cpu_ms: f64,
    /// The plugin's `set-info` metadata (`null` until set).
    pub info: serde_json::Value,
    /// Bytes the room stores (keys plus values; see the `storage` import).
    pub storage_bytes: usize,
}

/// A room's identity in the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RoomKey {
    pub(crate) service: Arc<str>,
    pub(crate) room: Arc<str>,
}

impl RoomKey {
    pub(crate) fn new(service: &str, room: &str) -> RoomKey {
        RoomKey {
            service: service.into(),
            room: room.into(),
        }
    }

    pub(crate) fn is_lobby(&self) -> bool {
        &*self.room == LOBBY
    }
}

/// What the table knows about a live room, updated by its actor.
#[derive(Debug)]
pub(crate) struct RoomMeta {
    pub(crate) key: RoomKey,
    pub(super) created_ms: u64,
    /// The version of the plugin running the room (changes on reload).
    pub(crate) plugin_version: Mutex<String>,
    pub(crate) clients: AtomicUsize,
    /// CPU time the room's callbacks have used, in nanoseconds.
    pub(crate) cpu_nanos: AtomicU64,
    /// Bytes the room stores.
    pub(crate) storage_bytes: AtomicUsize,
    pub(crate) info: Mutex<serde_json::Value>,
    /// Why the room failed, once it has (read by waiters that missed it).
    pub(crate) failure: Mutex<Option<String>>,
}

impl RoomMeta {
    pub(crate) fn is_lobby(&self) -> bool {
        self.key.is_lobby()
    }

    /// The room as the directory import and `room-changed` show it.
    pub(crate) fn entry(&self) -> GuestRoomEntry {
        GuestRoomEntry {
            room_id: self.key.room.to_string(),
            clients: u32::try_from(self.clients.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
            info: self
                .info
                .lock()
                .map(|info| info.to_string())
                .unwrap_or_else(|_| "null".into()),
        }
    }

    pub(super) fn listing(&self) -> RoomListing {
        RoomListing {
            service: self.key.service.to_string(),
            room: self.key.room.to_string(),
            clients: self.clients.load(Ordering::Relaxed),
            created_ms: self.created_ms,
            plugin_version: lock(&self.plugin_version).clone(),
            cpu_ms: self.cpu_nanos.load(Ordering::Relaxed) as f64 / 1e6,
            info: self
                .info
                .lock()
                .map(|info| info.clone())
                .unwrap_or_default(),
            storage_bytes: self.storage_bytes.load(Ordering::Relaxed),
        }
    }
}

/// A live room: its inbox and its metadata.
#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub(crate) inbox: mpsc::Sender<RoomEvent>,
    pub(crate) meta: Arc<RoomMeta>,
}

/// Locks a table; none holds an invariant a panic could break halfway.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
