//! The table of live rooms: finds a room by key, creates its entry within
//! the room limits and the creation rate, lists rooms, retires the ones that
//! ended, and queues the directory changes each service's lobby hears of.
//!
//! Creation and retirement race safely: a room retires only under the table
//! lock and only with an empty inbox, and a connect whose room retired anyway
//! sees its reply dropped and retries on a fresh room (see `directory`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::creation_rate::CreationRate;
use super::meta::{RoomHandle, RoomKey, RoomListing, RoomMeta, lock};
use super::notices::LobbyNotices;
use super::{JoinError, LOBBY, RoomEvent};
use crate::limits::Limits;
use crate::placement::SharedPlacement;
use crate::wasm::{GuestRoomChange, GuestRoomEntry};

/// The live rooms of every service.
pub(crate) struct RoomTable {
    rooms: Mutex<HashMap<RoomKey, RoomHandle>>,
    /// Live rooms per service; changed only under the `rooms` lock.
    service_rooms: Mutex<HashMap<Arc<str>, usize>>,
    /// The room limit of each service (`Limits::rooms_per_service`).
    rooms_per_service: AtomicUsize,
    max_rooms: usize,
    room_inbox: usize,
    room_creations_per_minute: usize,
    creation_rate: CreationRate,
    lobby_notices: LobbyNotices,
    /// The cluster's placement, told when a room leaves (a cluster node).
    placement: Option<SharedPlacement>,
}

impl RoomTable {
    /// An empty table under `limits`; a room that leaves it is released to
    /// `placement`, when the host is a cluster node.
    pub(crate) fn new(limits: &Limits, placement: Option<SharedPlacement>) -> RoomTable {
        RoomTable {
            rooms: Mutex::new(HashMap::new()),
            service_rooms: Mutex::new(HashMap::new()),
            rooms_per_service: AtomicUsize::new(limits.max_rooms),
            max_rooms: limits.max_rooms,
            room_inbox: limits.room_inbox.max(1),
            room_creations_per_minute: limits.room_creations_per_minute,
            creation_rate: CreationRate::new(limits.room_creations_per_minute),
            lobby_notices: LobbyNotices::default(),
            placement,
        }
    }

    /// Sets each service's room limit.
    pub(crate) fn set_rooms_per_service(&self, limit: usize) {
        self.rooms_per_service.store(limit, Ordering::Relaxed);
    }

    /// The live room `key`, if any.
    pub(crate) fn get(&self, key: &RoomKey) -> Option<RoomHandle> {
        self.lock().get(key).cloned()
    }

    /// The live room `key`, or a new entry for it when `create` allows and
    /// the limits and `creator`'s creation rate have room: then the caller
    /// starts its actor on the returned inbox.
    pub(crate) fn get_or_insert(
        &self,
        key: RoomKey,
        plugin_version: &str,
        create: bool,
        creator: Option<IpAddr>,
    ) -> Result<(RoomHandle, Option<mpsc::Receiver<RoomEvent>>), JoinError> {
        let mut rooms = self.lock();
        if let Some(handle) = rooms.get(&key) {
            return Ok((handle.clone(), None));
        }
        if !create {
            return Err(JoinError::NoSuchRoom(key.room.to_string()));
        }
        // On a cluster node a room starts only under this node's claim,
        // checked under the table lock that releases also hold.
        if let Some(placement) = &self.placement
            && !placement.holds(&key.service, &key.room)
        {
            return Err(JoinError::Unclaimed);
        }
        if rooms.len() >= self.max_rooms {
            return Err(JoinError::RoomLimit(self.max_rooms));
        }
        let per_service = self.rooms_per_service.load(Ordering::Relaxed);
        let mut service_rooms = lock(&self.service_rooms);
        let count = service_rooms.entry(key.service.clone()).or_insert(0);
        if *count >= per_service {
            return Err(JoinError::RoomLimit(per_service));
        }
        // Checked last: a refused creation must not cost a token.
        if let Some(creator) = creator
            && !self.creation_rate.try_take(creator, Instant::now())
        {
            return Err(JoinError::CreationRate(self.room_creations_per_minute));
        }
        *count += 1;
        drop(service_rooms);
        let (sender, inbox) = mpsc::channel(self.room_inbox);
        let meta = Arc::new(RoomMeta {
            key: key.clone(),
            created_ms: crate::wasm::unix_millis(SystemTime::now()),
            plugin_version: Mutex::new(plugin_version.to_owned()),
            clients: AtomicUsize::new(0),
            cpu_nanos: AtomicU64::new(0),
            storage_bytes: AtomicUsize::new(0),
            info: Mutex::new(serde_json::Value::Null),
            failure: Mutex::new(None),
        });
        let handle = RoomHandle {
            inbox: sender,
            meta,
        };
        rooms.insert(key, handle.clone());
        Ok((handle, Some(inbox)))
    }

    /// Whether room `room` of `service` is live.
    pub(crate) fn is_live(&self, service: &str, room: &str) -> bool {
        self.lock().contains_key(&RoomKey::new(service, room))
    }

    /// The live rooms of `service` (lobby excluded), as the directory import
    /// lists them.
    pub(crate) fn entries(&self, service: &str) -> Vec<GuestRoomEntry> {
        let mut entries: Vec<_> = self
            .lock()
            .values()
            .filter(|handle| &*handle.meta.key.service == service && !handle.meta.is_lobby())
            .map(|handle| handle.meta.entry())
            .collect();
        entries.sort_by(|a, b| a.room_id.cmp(&b.room_id));
        entries
    }

    /// The live rooms of `service`, lobby included.
    pub(crate) fn handles(&self, service: &str) -> Vec<RoomHandle> {
        self.lock()
            .values()
            .filter(|handle| &*handle.meta.key.service == service)
            .cloned()
            .collect()
    }

    /// Gives up this node's claim on a room that is not live (a join claimed
    /// it but could not start it), under the table lock so a join starting
    /// it meanwhile keeps its claim.
    pub(crate) fn release_unstarted(&self, service: &str, room: &str) {
        let rooms = self.lock();
        if let Some(placement) = &self.placement
            && !rooms.contains_key(&RoomKey::new(service, room))
        {
            placement.release(service, room);
        }
    }

    /// Every live room's service and entry, and whether it is a lobby.
    pub(crate) fn all_entries(&self) -> Vec<(String, GuestRoomEntry, bool)> {
        self.lock()
            .values()
            .map(|handle| {
                let meta = &handle.meta;
                (meta.key.service.to_string(), meta.entry(), meta.is_lobby())
            })
            .collect()
    }

    /// Every live room of every service, lobbies included.
    pub(crate) fn all_handles(&self) -> Vec<RoomHandle> {
        self.lock().values().cloned().collect()
    }

    /// Every live room (lobbies excluded).
    pub(crate) fn list(&self) -> Vec<RoomListing> {
        let mut rooms: Vec<_> = self
            .lock()
            .values()
            .filter(|handle| !handle.meta.is_lobby())
            .map(|handle| handle.meta.listing())
            .collect();
        rooms.sort_by(|a, b| (&a.service, &a.room).cmp(&(&b.service, &b.room)));
        rooms
    }

    /// One room, if it is live (never the lobby).
    pub(crate) fn listing(&self, service: &str, room: &str) -> Option<RoomListing> {
        if room == LOBBY {
            return None;
        }
        self.get(&RoomKey::new(service, room))
            .map(|handle| handle.meta.listing())
    }

    /// Per service: live rooms (lobby excluded) and connected clients (lobby
    /// included), counted in one pass under the lock.
    pub(crate) fn occupancy(&self) -> HashMap<Arc<str>, (usize, usize)> {
        let mut counts: HashMap<Arc<str>, (usize, usize)> = HashMap::new();
        for handle in self.lock().values() {
            let entry = counts.entry(handle.meta.key.service.clone()).or_default();
            if !handle.meta.is_lobby() {
                entry.0 += 1;
            }
            entry.1 += handle.meta.clients.load(Ordering::Relaxed);
        }
        counts
    }

    /// Clients in `service`'s lobby.
    pub(crate) fn lobby_clients(&self, service: &str) -> usize {
        self.get(&RoomKey::new(service, LOBBY))
            .map_or(0, |handle| handle.meta.clients.load(Ordering::Relaxed))
    }

    /// Number of live rooms (lobbies included: each holds an instance).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Tells `service`'s lobby that the directory changed. The change waits,
    /// coalesced with the room's earlier ones, until the lobby takes it.
    pub(crate) fn notify_lobby(&self, service: &Arc<str>, change: GuestRoomChange) {
        let lobby = self
            .get(&RoomKey::new(service, LOBBY))
            .map(|handle| handle.inbox);
        if let Some(lobby) = lobby {
            self.queue_lobby_notice(&lobby, service, change);
        }
    }

    /// The directory changes waiting for `service`'s lobby, oldest first.
    pub(crate) fn take_lobby_notices(&self, service: &str) -> Vec<GuestRoomChange> {
        self.lobby_notices.take(service)
    }

    /// Removes the room if its inbox is empty; an idle room calls this to end.
    /// Returns whether the room was removed (and must stop).
    pub(crate) fn retire(&self, meta: &Arc<RoomMeta>, inbox: &mpsc::Receiver<RoomEvent>) -> bool {
        let mut rooms = self.lock();
        if !inbox.is_empty() {
            return false;
        }
        self.remove_if_same(&mut rooms, meta);
        true
    }

    /// Removes a room that failed.
    pub(crate) fn remove(&self, meta: &Arc<RoomMeta>) {
        self.remove_if_same(&mut self.lock(), meta);
    }

    /// Records a change and wakes the lobby if nothing was pending. A full
    /// inbox needs no wake-up: the lobby takes pending changes after every
    /// event it handles.
    fn queue_lobby_notice(
        &self,
        lobby: &mpsc::Sender<RoomEvent>,
        service: &Arc<str>,
        change: GuestRoomChange,
    ) {
        if self.lobby_notices.record(service, change) {
            let _ = lobby.try_send(RoomEvent::LobbyNotices);
        }
    }

    /// Removes the room and, under the same lock, tells its lobby it closed: a
    /// room re-created with the same id can only report after this notice.
    fn remove_if_same(&self, rooms: &mut HashMap<RoomKey, RoomHandle>, meta: &Arc<RoomMeta>) {
        if rooms
            .get(&meta.key)
            .is_some_and(|handle| Arc::ptr_eq(&handle.meta, meta))
        {
            rooms.remove(&meta.key);
            let mut service_rooms = lock(&self.service_rooms);
            if let Some(count) = service_rooms.get_mut(&meta.key.service) {
                *count = count.saturating_sub(1);
            }
            // Under the table lock, so a join that starts the room again
            // here claims it afresh instead of finding the old claim.
            if let Some(placement) = &self.placement {
                placement.release(&meta.key.service, &meta.key.room);
            }
        }
        if meta.is_lobby() {
            return;
        }
        let lobby = rooms.get(&RoomKey {
            service: meta.key.service.clone(),
            room: LOBBY.into(),
        });
        let closed = GuestRoomChange::Closed(meta.key.room.to_string());
        if let Some(lobby) = lobby {
            self.queue_lobby_notice(&lobby.inbox, &meta.key.service, closed);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomKey, RoomHandle>> {
        lock(&self.rooms)
    }
}
