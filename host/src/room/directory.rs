//! The room table: finds or creates a room for a connection, lists rooms for
//! `/rooms`, and removes rooms that ended.
//!
//! Creation and retirement race safely: a room retires only under the table
//! lock and only with an empty inbox, and a connect whose room retired anyway
//! sees its reply dropped and retries on a fresh room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::actor::RoomActor;
use super::creation_rate::CreationRate;
use super::notices::LobbyNotices;
use super::{ConnectRequest, LOBBY, LeaveReason, RoomEvent};
use crate::auth::TokenVerifier;
use crate::client::{ClientId, ClientSender};
use crate::dev::DevTap;
use crate::limits::Limits;
use crate::service::Service;
use crate::wasm::{
    GuestHttpRequest, GuestHttpResponse, GuestRoomChange, GuestRoomEntry, WasmEngine,
};

/// How many times a connect retries when its room ends under it.
const JOIN_ATTEMPTS: usize = 4;

/// Why a client could not join a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The plugin's `connect` rejected the client with this reason.
    #[error("{0}")]
    Rejected(String),
    /// The process holds `max_rooms` rooms already, or the service its
    /// share of them.
    #[error("room limit reached ({0} rooms)")]
    RoomLimit(usize),
    /// The client's address created `room_creations_per_minute` rooms in
    /// the last minute.
    #[error("room creation rate limit reached ({0} per minute per address)")]
    CreationRate(usize),
    /// The room failed while starting or while handling the connect.
    #[error("{0}")]
    RoomFailed(String),
    /// The room does not exist and the join may not create it.
    #[error("no room named {0:?}")]
    NoSuchRoom(String),
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
    /// CPU time the room's callbacks have used since it started, in
    /// milliseconds (time spent running the plugin, not waiting to run).
    pub cpu_ms: f64,
    /// The plugin's `set-info` metadata (`null` until set).
    pub info: serde_json::Value,
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
    created_ms: u64,
    /// The version of the plugin running the room (changes on reload).
    pub(crate) plugin_version: Mutex<String>,
    pub(crate) clients: AtomicUsize,
    /// CPU time the room's callbacks have used, in nanoseconds.
    pub(crate) cpu_nanos: AtomicU64,
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

    fn listing(&self) -> RoomListing {
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
        }
    }
}

/// A live room: its inbox and its metadata.
#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub(crate) inbox: mpsc::Sender<RoomEvent>,
    pub(crate) meta: Arc<RoomMeta>,
}

/// A connected client: its service, its writing side, and the inbox of the
/// room it last joined (so a connection that dies of a host bug can still
/// tell its room).
struct Seat {
    service: Arc<str>,
    sender: ClientSender,
    room: Option<mpsc::Sender<RoomEvent>>,
}

/// The table of live rooms of every service, the clients of every service,
/// and which service's lobby serves the root.
pub struct Rooms {
    table: Mutex<HashMap<RoomKey, RoomHandle>>,
    /// Live rooms per service; changed only under the `table` lock.
    service_rooms: Mutex<HashMap<Arc<str>, usize>>,
    /// The room limit of each service (`Limits::rooms_per_service`).
    rooms_per_service: AtomicUsize,
    creation_rate: CreationRate,
    clients: Mutex<HashMap<ClientId, Seat>>,
    root: Mutex<Option<Arc<str>>>,
    auth: Option<Arc<TokenVerifier>>,
    engine: WasmEngine,
    limits: Arc<Limits>,
    tap: Option<DevTap>,
    lobby_notices: LobbyNotices,
}

impl Rooms {
    /// An empty table whose rooms run on `engine` under `limits`, reporting
    /// to `tap` when one is given (dev mode).
    pub fn new(
        engine: WasmEngine,
        limits: Arc<Limits>,
        auth: Option<Arc<TokenVerifier>>,
        tap: Option<DevTap>,
    ) -> Arc<Rooms> {
        Arc::new(Rooms {
            table: Mutex::new(HashMap::new()),
            service_rooms: Mutex::new(HashMap::new()),
            rooms_per_service: AtomicUsize::new(limits.max_rooms),
            creation_rate: CreationRate::new(limits.room_creations_per_minute),
            clients: Mutex::new(HashMap::new()),
            root: Mutex::new(None),
            auth,
            engine,
            limits,
            tap,
            lobby_notices: LobbyNotices::default(),
        })
    }

    /// Sets each service's room limit (the server does, once it knows how
    /// many services there are).
    pub(crate) fn set_rooms_per_service(&self, limit: usize) {
        self.rooms_per_service.store(limit, Ordering::Relaxed);
    }

    /// The dev event stream, in dev mode.
    pub(crate) fn tap(&self) -> Option<&DevTap> {
        self.tap.as_ref()
    }

    /// The engine rooms run on.
    pub(crate) fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Puts a client into room `room` of `service` ([`LOBBY`] for the lobby),
    /// creating the room if it does not exist and `create` allows it (the
    /// lobby is always created). On success the client is a member and the
    /// returned handle is where its frames go.
    pub(crate) async fn join(
        self: &Arc<Self>,
        service: &Arc<Service>,
        room: &str,
        request: ConnectRequest,
        create: bool,
    ) -> Result<RoomHandle, JoinError> {
        let create = create || room == LOBBY;
        let client = request.id();
        let creator = request.address;
        let (handle, answer) = self
            .ask(service, room, create, creator, |reply| RoomEvent::Connect {
                request: request.clone(),
                reply,
            })
            .await?;
        answer?;
        if let Some(seat) = lock(&self.clients).get_mut(&client) {
            seat.room = Some(handle.inbox.clone());
        }
        Ok(handle)
    }

    /// Hands room `room` of `service` the event `event` builds around a
    /// reply channel and waits for the answer. A room that ends before it
    /// answers drops the event, so it is built again for a fresh room.
    async fn ask<T>(
        self: &Arc<Self>,
        service: &Arc<Service>,
        room: &str,
        create: bool,
        creator: Option<IpAddr>,
        event: impl Fn(oneshot::Sender<T>) -> RoomEvent,
    ) -> Result<(RoomHandle, T), JoinError> {
        for _ in 0..JOIN_ATTEMPTS {
            let handle = self.get_or_create(service, room, create, creator)?;
            let (reply, answer) = oneshot::channel();
            if handle.inbox.send(event(reply)).await.is_err() {
                continue;
            }
            if let Ok(answer) = answer.await {
                return Ok((handle, answer));
            }
            // The room failed with our event in hand (its task panicked):
            // that is the answer, not a reason to try a fresh room.
            if let Some(reason) = lock(&handle.meta.failure).clone() {
                return Err(JoinError::RoomFailed(reason));
            }
        }
        Err(JoinError::RoomFailed(
            "the room kept closing before it answered".into(),
        ))
    }

    /// Starts `service`'s lobby and waits for its `init`.
    pub(crate) async fn start_lobby(
        self: &Arc<Self>,
        service: &Arc<Service>,
    ) -> Result<(), JoinError> {
        let handle = self.get_or_create(service, LOBBY, true, None)?;
        // If `init` fails before the probe is queued, the reason is on the meta.
        let failed = || {
            let reason = lock(&handle.meta.failure).clone();
            JoinError::RoomFailed(reason.unwrap_or_else(|| "the lobby ended while starting".into()))
        };
        let (reply, answer) = oneshot::channel();
        if handle
            .inbox
            .send(RoomEvent::Started { reply })
            .await
            .is_err()
        {
            return Err(failed());
        }
        answer.await.unwrap_or_else(|_| Err(failed()))
    }

    /// Registers a connected client so any room of its service can send to it.
    pub(crate) fn register_client(&self, service: &Arc<str>, sender: ClientSender) {
        let seat = Seat {
            service: service.clone(),
            sender,
            room: None,
        };
        lock(&self.clients).insert(seat.sender.id(), seat);
    }

    /// Forgets a client whose connection ended.
    pub(crate) fn unregister_client(&self, client: ClientId) {
        lock(&self.clients).remove(&client);
    }

    /// Forgets a client whose connection task died without saying goodbye
    /// (a host bug): its room hears `disconnect(lost)`, as for a dropped
    /// connection.
    pub(crate) async fn client_lost(&self, client: ClientId) {
        let seat = lock(&self.clients).remove(&client);
        if let Some(room) = seat.and_then(|seat| seat.room) {
            let reason = LeaveReason::Lost;
            let _ = room.send(RoomEvent::Disconnect { client, reason }).await;
        }
    }

    /// Makes the task of room `room` of `service` panic, as a host bug
    /// would; returns whether the room was live. For containment tests.
    #[cfg(feature = "fault-injection")]
    pub async fn inject_panic(&self, service: &str, room: &str) -> bool {
        let handle = self.lock().get(&RoomKey::new(service, room)).cloned();
        match handle {
            Some(handle) => handle.inbox.send(RoomEvent::Panic).await.is_ok(),
            None => false,
        }
    }

    /// A client of `service`, wherever it is.
    pub(crate) fn client(&self, service: &str, client: ClientId) -> Option<ClientSender> {
        lock(&self.clients)
            .get(&client)
            .filter(|seat| &*seat.service == service)
            .map(|seat| seat.sender.clone())
    }

    /// Lets `service`'s lobby serve `/`. Fails when another service has it.
    pub(crate) fn claim_root(&self, service: &Arc<str>) -> Result<(), String> {
        let mut root = lock(&self.root);
        match root.as_deref() {
            Some(owner) if owner != &**service => {
                Err(format!("the root is already served by service {owner:?}"))
            }
            _ => {
                *root = Some(service.clone());
                Ok(())
            }
        }
    }

    /// How tokens are verified for plugins (`None`: auth is off).
    pub(crate) fn auth(&self) -> Option<&TokenVerifier> {
        self.auth.as_deref()
    }

    /// The service whose lobby serves `/`, if any.
    pub(crate) fn root_service(&self) -> Option<Arc<str>> {
        lock(&self.root).clone()
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

    /// Tells `service`'s lobby that the directory changed. The change waits,
    /// coalesced with the room's earlier ones, until the lobby takes it.
    pub(crate) fn notify_lobby(&self, service: &Arc<str>, change: GuestRoomChange) {
        let lobby = self
            .lock()
            .get(&RoomKey::new(service, LOBBY))
            .map(|handle| handle.inbox.clone());
        if let Some(lobby) = lobby {
            self.queue_lobby_notice(&lobby, service, change);
        }
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

    /// The directory changes waiting for `service`'s lobby, oldest first.
    pub(crate) fn take_lobby_notices(&self, service: &str) -> Vec<GuestRoomChange> {
        self.lobby_notices.take(service)
    }

    /// The live rooms of `service`, lobby included.
    pub(super) fn handles(&self, service: &str) -> Vec<RoomHandle> {
        self.lock()
            .values()
            .filter(|handle| &*handle.meta.key.service == service)
            .cloned()
            .collect()
    }

    /// Sends an HTTP request to room `room` of `service`, creating the room
    /// if it is not live and `create` allows it (counted against `creator`'s
    /// creation rate), and waits for the answer.
    pub(crate) async fn request(
        self: &Arc<Self>,
        service: &Arc<Service>,
        room: &str,
        request: GuestHttpRequest,
        create: bool,
        creator: Option<IpAddr>,
    ) -> Result<GuestHttpResponse, JoinError> {
        let (_, answer) = self
            .ask(service, room, create, creator, |reply| RoomEvent::Request {
                request: request.clone(),
                reply,
            })
            .await?;
        answer.map_err(JoinError::RoomFailed)
    }

    /// Every live room (lobbies excluded).
    pub fn list(&self) -> Vec<RoomListing> {
        let mut rooms: Vec<_> = self
            .lock()
            .values()
            .filter(|handle| !handle.meta.is_lobby())
            .map(|handle| handle.meta.listing())
            .collect();
        rooms.sort_by(|a, b| (&a.service, &a.room).cmp(&(&b.service, &b.room)));
        rooms
    }

    /// One room, if it is live.
    pub fn get(&self, service: &str, room: &str) -> Option<RoomListing> {
        if room == LOBBY {
            return None;
        }
        self.lock()
            .get(&RoomKey::new(service, room))
            .map(|handle| handle.meta.listing())
    }

    /// Clients in `service`'s lobby.
    pub fn lobby_clients(&self, service: &str) -> usize {
        self.lock()
            .get(&RoomKey::new(service, LOBBY))
            .map_or(0, |handle| handle.meta.clients.load(Ordering::Relaxed))
    }

    /// Number of live rooms (lobbies included: each holds an instance).
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
        self.remove_if_same(&mut table, meta);
        true
    }

    /// Removes a room that failed.
    pub(crate) fn remove(&self, meta: &Arc<RoomMeta>) {
        self.remove_if_same(&mut self.lock(), meta);
    }

    fn get_or_create(
        self: &Arc<Self>,
        service: &Arc<Service>,
        room: &str,
        create: bool,
        creator: Option<IpAddr>,
    ) -> Result<RoomHandle, JoinError> {
        let key = RoomKey {
            service: service.name_arc(),
            room: room.into(),
        };
        let mut table = self.lock();
        if let Some(handle) = table.get(&key) {
            return Ok(handle.clone());
        }
        if !create {
            return Err(JoinError::NoSuchRoom(room.to_owned()));
        }
        if table.len() >= self.limits.max_rooms {
            return Err(JoinError::RoomLimit(self.limits.max_rooms));
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
            return Err(JoinError::CreationRate(
                self.limits.room_creations_per_minute,
            ));
        }
        *count += 1;
        drop(service_rooms);
        let (inbox, receiver) = mpsc::channel(self.limits.room_inbox.max(1));
        let meta = Arc::new(RoomMeta {
            key: key.clone(),
            created_ms: crate::wasm::unix_millis(SystemTime::now()),
            plugin_version: Mutex::new(service.plugin().version().to_owned()),
            clients: AtomicUsize::new(0),
            cpu_nanos: AtomicU64::new(0),
            info: Mutex::new(serde_json::Value::Null),
            failure: Mutex::new(None),
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
        lock(&self.table)
    }
}

/// Locks a table; none holds an invariant a panic could break halfway.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Rooms {
    /// Removes the room and, under the same lock, tells its lobby it closed: a
    /// room re-created with the same id can only report after this notice.
    fn remove_if_same(&self, table: &mut HashMap<RoomKey, RoomHandle>, meta: &Arc<RoomMeta>) {
        if table
            .get(&meta.key)
            .is_some_and(|handle| Arc::ptr_eq(&handle.meta, meta))
        {
            table.remove(&meta.key);
            let mut service_rooms = lock(&self.service_rooms);
            if let Some(count) = service_rooms.get_mut(&meta.key.service) {
                *count = count.saturating_sub(1);
            }
        }
        if meta.is_lobby() {
            return;
        }
        let lobby = table.get(&RoomKey {
            service: meta.key.service.clone(),
            room: LOBBY.into(),
        });
        let closed = GuestRoomChange::Closed(meta.key.room.to_string());
        if let Some(lobby) = lobby {
            self.queue_lobby_notice(&lobby.inbox, &meta.key.service, closed);
        }
    }
}
