//! The rooms of every service as the rest of the host sees them: puts a
//! connection into a room (starting the room's actor when the room is new),
//! hands rooms HTTP requests, keeps the registry of connected clients and
//! the claim on the server root, and answers what a room instance asks of
//! its service ([`ServiceDirectory`]).

use crate::storage::{Backend, Storage};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tracing::Instrument;

use super::actor::RoomActor;
use super::cluster_rooms::ClusterRooms;
use super::meta::{RoomHandle, RoomKey, RoomListing, lock};
use super::remote_clients::{NODE_BITS, RUN_SHIFT, RemoteClients, node_of};
use super::table::RoomTable;
use super::{ConnectRequest, JoinError, LOBBY, LeaveReason, ReturningClient, RoomEvent};
use crate::auth::TokenVerifier;
use crate::client::{ClientId, ClientSender};
use crate::dev::DevTap;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::placement::{Place, SharedPlacement};
use crate::service::Service;
use crate::wasm::{
    GuestHttpRequest, GuestHttpResponse, GuestRoomEntry, ServiceDirectory, WasmEngine,
};

/// How many times a connect retries when its room ends under it.
const JOIN_ATTEMPTS: usize = 4;

/// How often a cluster node checks that it may still run rooms.
const STANDING_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// A connected client: its service, its writing side, and the inbox of the
/// room it last joined (so a connection that dies of a host bug can still
/// tell its room).
struct Seat {
    service: Arc<str>,
    sender: ClientSender,
    room: Option<RoomHandle>,
    /// The token that lets a new connection take this seat (reconnection).
    resume_token: Option<String>,
}

/// The live rooms of every service, the clients of every service, and which
/// service's lobby serves the root.
pub struct Rooms {
    table: Arc<RoomTable>,
    clients: Mutex<HashMap<ClientId, Seat>>,
    /// Live resume tokens and their clients; each is spent on use.
    resume_tokens: Mutex<HashMap<String, ClientId>>,
    root: Mutex<Option<Arc<str>>>,
    auth: Option<Arc<TokenVerifier>>,
    engine: WasmEngine,
    limits: Arc<Limits>,
    tap: Option<DevTap>,
    metrics: Metrics,
    storage: Arc<Storage>,
    /// Which node runs each room, when the host is a cluster node.
    placement: Option<SharedPlacement>,
    /// The rooms other nodes run, for this node's lobbies.
    cluster_rooms: Arc<ClusterRooms>,
    /// Stand-ins for clients of other nodes that rooms here send to.
    remote_clients: Arc<RemoteClients>,
}

impl Rooms {
    /// An empty table whose rooms run on `engine` under `limits`, reporting
    /// to `tap` when one is given (dev mode), and placed by `placement` when
    /// the host is a cluster node.
    pub fn new(
        engine: WasmEngine,
        limits: Arc<Limits>,
        auth: Option<Arc<TokenVerifier>>,
        tap: Option<DevTap>,
        storage: Arc<dyn Backend>,
        placement: Option<SharedPlacement>,
    ) -> Arc<Rooms> {
        let remote_clients = RemoteClients::new(limits.client_queue, limits.max_remote_clients);
        Arc::new(Rooms {
            table: Arc::new(RoomTable::new(&limits, placement.clone())),
            clients: Mutex::new(HashMap::new()),
            resume_tokens: Mutex::new(HashMap::new()),
            root: Mutex::new(None),
            auth,
            engine,
            limits,
            tap,
            metrics: Metrics::new(),
            storage: Arc::new(Storage::new(storage)),
            placement,
            cluster_rooms: Arc::default(),
            remote_clients: Arc::new(remote_clients),
        })
    }

    /// The cluster's placement, when the host is a cluster node.
    pub(crate) fn placement(&self) -> Option<&SharedPlacement> {
        self.placement.as_ref()
    }

    /// The first client id of this process: on a cluster node its high bits
    /// are the node's number, so ids are unique across the cluster and say
    /// which node holds the client.
    pub(crate) fn first_client_id(&self) -> ClientId {
        let Some(placement) = &self.placement else {
            return 1;
        };
        let run = placement.run() % (1 << (NODE_BITS - RUN_SHIFT));
        (placement.node_number() << NODE_BITS) | (run << RUN_SHIFT) | 1
    }

    /// Queues `frame` for client `client` of `service` connected here (a
    /// frame another node's room sent it); whether the client is here and
    /// took it.
    pub(crate) fn deliver(
        &self,
        service: &str,
        client: ClientId,
        frame: axum::extract::ws::Message,
    ) -> bool {
        let sender = lock(&self.clients)
            .get(&client)
            .filter(|seat| &*seat.service == service)
            .map(|seat| seat.sender.clone());
        sender.is_some_and(|sender| sender.send(frame).is_ok())
    }

    /// Where room `room` of `service` runs: here when it is live here or
    /// the host is not a cluster node; otherwise the placement claims it for
    /// this node or names its owner.
    pub(crate) async fn place(&self, service: &str, room: &str) -> Result<Place, JoinError> {
        let Some(placement) = &self.placement else {
            return Ok(Place::Here);
        };
        if !placement.serving() {
            return Err(JoinError::Unplaced(
                crate::placement::PlacementError::NotServing.to_string(),
            ));
        }
        if self.table.is_live(service, room) {
            return Ok(Place::Here);
        }
        let (placement, service, room) = (placement.clone(), service.to_owned(), room.to_owned());
        let placed = tokio::task::spawn_blocking(move || placement.place(&service, &room)).await;
        match placed {
            Ok(Ok(place)) => Ok(place),
            Ok(Err(error)) => Err(JoinError::Unplaced(error.to_string())),
            Err(error) => Err(JoinError::Unplaced(format!("placement failed: {error}"))),
        }
    }

    /// On a cluster node, until `shutdown`: closes every room with 1012 each
    /// time the node stops serving (its lease is about to lapse, or lapsed),
    /// so clients reconnect to the rooms' next owners; and keeps the rooms
    /// lobbies see in step with the other nodes ([`super::cluster_rooms`]).
    pub(crate) fn start_cluster_tasks(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let Some(placement) = self.placement.clone() else {
            return;
        };
        super::cluster_rooms::spawn_sync(
            self.table.clone(),
            (self.cluster_rooms.clone(), self.remote_clients.clone()),
            placement.clone(),
            shutdown.clone(),
        );
        let rooms = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STANDING_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut was_serving = true;
            let mut generation = placement.generation();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                // Both: a pause past the lease may end with the node joined
                // again before this check ever saw it not serving.
                let serving = placement.serving();
                let now = placement.generation();
                if (was_serving && !serving) || now != generation {
                    tracing::error!(
                        node = placement.node_id(),
                        "this node cannot vouch for its rooms (cluster lease): closing them with 1012"
                    );
                    rooms.evacuate(
                        crate::close::SERVICE_RESTART,
                        "this room is moving to another node",
                    );
                }
                was_serving = serving;
                generation = now;
            }
        });
    }

    /// Where room `room` of `service` runs now, without claiming it (`None`:
    /// nowhere, or the database cannot say).
    pub(crate) async fn owner(&self, service: &str, room: &str) -> Option<Place> {
        if self.table.is_live(service, room) {
            return Some(Place::Here);
        }
        let placement = self.placement.clone()?;
        let (service, room) = (service.to_owned(), room.to_owned());
        match tokio::task::spawn_blocking(move || placement.owner(&service, &room)).await {
            Ok(Ok(owner)) => owner,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot tell which node runs a room");
                None
            }
            Err(_) => None,
        }
    }

    /// Closes every live room's clients with `code` (1012 when this node
    /// stops vouching for its rooms): each room ends, its last writes
    /// stored where the node still may, and its clients reconnect to the
    /// room's next owner.
    pub(crate) fn evacuate(&self, code: u16, reason: &str) {
        for handle in self.table.all_handles() {
            let event = RoomEvent::Close {
                code,
                reason: reason.to_owned(),
            };
            // Each on its own: one room with a full inbox must not hold up
            // the others' closing.
            tokio::spawn(async move {
                let _ = handle.inbox.send(event).await;
            });
        }
    }

    /// Where rooms' stored data lives.
    pub fn storage(&self) -> &Arc<dyn Backend> {
        self.storage.backend()
    }

    /// Wakes every stored room of `services` that has durable timers, so
    /// they fire (at once when their time passed while the host was down).
    /// Runs in the background after startup; failures are logged.
    pub(crate) fn wake_timed_rooms(self: &Arc<Self>, services: Vec<Arc<Service>>) {
        let rooms = self.clone();
        tokio::spawn(async move {
            let backend = rooms.storage().clone();
            let stored = tokio::task::spawn_blocking(move || backend.rooms()).await;
            let stored = match stored {
                Ok(Ok(stored)) => stored,
                Ok(Err(error)) => {
                    return tracing::error!(%error, "cannot list stored rooms to wake");
                }
                Err(error) => return tracing::error!(%error, "listing stored rooms failed"),
            };
            for room in stored.into_iter().filter(|room| room.timers > 0) {
                let Some(service) = services.iter().find(|s| s.name() == room.service) else {
                    continue;
                };
                if room.room == LOBBY {
                    continue;
                }
                match rooms.wake(service, &room.room).await {
                    // Another node owns it, and wakes it.
                    Ok(()) | Err(JoinError::Elsewhere { .. }) => {}
                    Err(error) => tracing::warn!(
                        service = %room.service, room = %room.room, %error,
                        "a room with durable timers did not wake"
                    ),
                }
            }
        });
    }

    /// Whether room `room` of `service` has stored data to wake with (only
    /// plugins that use storage have any; a backend that fails says no).
    pub(crate) async fn stores_data(&self, service: &Service, room: &str) -> bool {
        if !service.plugin().description().uses_storage || room == LOBBY {
            return false;
        }
        match self.storage.has_data(service.name(), room).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, room, "cannot tell whether a room stored data");
                false
            }
        }
    }

    /// Starts room `room` of `service` without a client, if it is not live,
    /// and waits for its `init`: a room with durable timers wakes this way
    /// when the host starts.
    async fn wake(self: &Arc<Self>, service: &Arc<Service>, room: &str) -> Result<(), JoinError> {
        let (_, answer) = self
            .ask(service, room, true, None, |reply| RoomEvent::Started {
                reply,
            })
            .await?;
        answer
    }

    /// Sets each service's room limit (the server does, once it knows how
    /// many services there are).
    pub(crate) fn set_rooms_per_service(&self, limit: usize) {
        self.table.set_rooms_per_service(limit);
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
        if room == LOBBY && !service.plugin().has_lobby() {
            return Err(JoinError::NoSuchRoom(LOBBY.to_owned()));
        }
        let create = create || room == LOBBY;
        let client = request.id();
        let creator = request.address;
        let (handle, answer) = self
            .ask(service, room, create, creator, |reply| RoomEvent::Connect {
                request: Box::new(request.clone()),
                reply,
            })
            .await?;
        answer?;
        if let Some(seat) = lock(&self.clients).get_mut(&client) {
            seat.room = Some(handle.clone());
        }
        Ok(handle)
    }

    /// Puts a transferred client into room `room` of `service`, which node
    /// `node` at `address` runs: the returned handle stands in for it (see
    /// [`super::remote`]).
    pub(crate) async fn join_remote(
        &self,
        (service, room): (&str, &str),
        (node, address): (&str, &str),
        (request, grant, hops): (&ConnectRequest, Option<&crate::access::Grant>, u8),
    ) -> Result<RoomHandle, String> {
        let placement = self
            .placement
            .as_ref()
            .ok_or_else(|| "this server is not a cluster node".to_owned())?;
        let destination = super::remote::Destination {
            service,
            room,
            node,
            address,
        };
        let handle = super::remote::join(
            destination,
            (request, grant, hops),
            placement.peer_key(),
            &self.limits,
        )
        .await?;
        if let Some(seat) = lock(&self.clients).get_mut(&request.id()) {
            seat.room = Some(handle.clone());
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
            // Placed on every attempt: the room may have ended and given up
            // its claim since the last. Only a call that may start the room
            // claims it; one that may not just asks where it runs.
            let place = if create {
                Some(self.place(service.name(), room).await?)
            } else {
                self.owner(service.name(), room).await
            };
            if let Some(Place::Elsewhere { node, address }) = place {
                return Err(JoinError::Elsewhere { node, address });
            }
            let handle = match self.get_or_create(service, room, create, creator) {
                Ok(handle) => handle,
                // The claim went between placing and starting: place again.
                Err(JoinError::Unclaimed) => continue,
                Err(refused) => {
                    // A claim taken for a room that did not start (a limit)
                    // is given back, or it would never be released.
                    self.table.release_unstarted(service.name(), room);
                    return Err(refused);
                }
            };
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

    /// Ends `service`'s lobby, if one runs, after a reload brought a version
    /// without one: its clients are closed with 1001, and the root is
    /// released if it served it.
    pub(crate) async fn close_lobby(&self, service: &Service) {
        {
            let mut root = lock(&self.root);
            if root.as_deref() == Some(service.name()) {
                *root = None;
            }
        }
        if let Some(lobby) = self.table.get(&RoomKey::new(service.name(), LOBBY)) {
            let event = RoomEvent::Close {
                code: crate::close::GOING_AWAY,
                reason: "the service no longer has a lobby".into(),
            };
            let _ = lobby.inbox.send(event).await;
        }
    }

    /// Starts `service`'s lobby and waits for its `init`.
    pub(crate) async fn start_lobby(
        self: &Arc<Self>,
        service: &Arc<Service>,
    ) -> Result<(), JoinError> {
        // A cluster has one lobby per service, on the node that claims it;
        // the others forward its clients there.
        if let Place::Elsewhere { .. } = self.place(service.name(), LOBBY).await? {
            return Ok(());
        }
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

    /// Registers a connected client so any room of its service can send to
    /// it, with its resume token when the service allows reconnection. A
    /// client that resumed takes over its seat (and its room).
    pub(crate) fn register_client(
        &self,
        service: &Arc<str>,
        sender: ClientSender,
        resume_token: Option<String>,
    ) {
        let client = sender.id();
        let mut clients = lock(&self.clients);
        let room = clients
            .get(&client)
            .filter(|seat| seat.service == *service)
            .and_then(|seat| seat.room.clone());
        if let Some(token) = &resume_token {
            lock(&self.resume_tokens).insert(token.clone(), client);
        }
        let seat = Seat {
            service: service.clone(),
            sender,
            room,
            resume_token,
        };
        if let Some(replaced) = clients.insert(client, seat) {
            self.forget_token(replaced.resume_token.as_deref());
        }
    }

    /// The connection `connection` of `client` ended. Its seat goes, unless
    /// its room `held` the client waiting to reconnect (the room ends the
    /// wait and forgets the seat), or a newer connection owns the seat.
    pub(crate) fn connection_ended(&self, client: ClientId, connection: usize, held: bool) {
        let mut clients = lock(&self.clients);
        let Some(seat) = clients.get(&client) else {
            return;
        };
        if seat.sender.connection() != connection || held {
            return;
        }
        if let Some(seat) = clients.remove(&client) {
            self.forget_token(seat.resume_token.as_deref());
        }
    }

    /// Takes resume token `token` of `service` (each works once): the client
    /// it names and the room it waits in.
    pub(crate) fn claim_resume(
        &self,
        service: &str,
        token: &str,
    ) -> Result<(ClientId, RoomHandle), JoinError> {
        let refused = |why: &str| JoinError::ResumeRefused(why.to_owned());
        let client = lock(&self.resume_tokens)
            .remove(token)
            .ok_or_else(|| refused("the token is unknown, spent or expired"))?;
        let clients = lock(&self.clients);
        let seat = clients
            .get(&client)
            .filter(|seat| &*seat.service == service)
            .ok_or_else(|| refused("the token belongs to another service"))?;
        let room = seat
            .room
            .clone()
            .ok_or_else(|| refused("the client is in no room"))?;
        Ok((client, room))
    }

    /// Puts `sender`'s client back into `room` on its new connection, with
    /// its next resume token.
    pub(crate) async fn resume(
        &self,
        room: &RoomHandle,
        sender: ClientSender,
        token: String,
    ) -> Result<(), JoinError> {
        let (reply, answer) = oneshot::channel();
        let event = RoomEvent::Resume {
            client: Box::new(ReturningClient { sender, token }),
            reply,
        };
        if room.inbox.send(event).await.is_err() {
            return Err(JoinError::ResumeRefused("the room ended".into()));
        }
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(JoinError::ResumeRefused(reason)),
            Err(_) => Err(JoinError::ResumeRefused("the room ended".into())),
        }
    }

    fn forget_token(&self, token: Option<&str>) {
        if let Some(token) = token {
            lock(&self.resume_tokens).remove(token);
        }
    }

    /// Forgets a client whose connection task died without saying goodbye
    /// (a host bug): its room hears `disconnect(lost)`, as for a dropped
    /// connection.
    pub(crate) async fn client_lost(&self, client: ClientId) {
        let seat = lock(&self.clients).remove(&client);
        if let Some(seat) = seat {
            self.forget_token(seat.resume_token.as_deref());
            if let Some(room) = seat.room {
                let event = RoomEvent::Disconnect {
                    client,
                    reason: LeaveReason::Lost,
                    connection: seat.sender.connection(),
                    held: None,
                };
                let _ = room.inbox.send(event).await;
            }
        }
    }

    /// Makes the task of room `room` of `service` panic, as a host bug
    /// would; returns whether the room was live. For containment tests.
    #[cfg(feature = "fault-injection")]
    pub async fn inject_panic(&self, service: &str, room: &str) -> bool {
        match self.table.get(&RoomKey::new(service, room)) {
            Some(handle) => handle.inbox.send(RoomEvent::Panic).await.is_ok(),
            None => false,
        }
    }

    /// How tokens are verified (`None`: no key configured).
    pub(crate) fn auth(&self) -> Option<&TokenVerifier> {
        self.auth.as_deref()
    }

    /// The service whose lobby serves `/`, if any.
    pub(crate) fn root_service(&self) -> Option<Arc<str>> {
        lock(&self.root).clone()
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
                request: Box::new(request.clone()),
                reply,
            })
            .await?;
        answer.map_err(JoinError::RoomFailed)
    }

    /// Every live room (lobbies excluded).
    pub fn list(&self) -> Vec<RoomListing> {
        self.table.list()
    }

    /// One room, if it is live.
    pub fn get(&self, service: &str, room: &str) -> Option<RoomListing> {
        self.table.listing(service, room)
    }

    /// Clients in `service`'s lobby.
    pub fn lobby_clients(&self, service: &str) -> usize {
        self.table.lobby_clients(service)
    }

    /// Number of live rooms (lobbies included: each holds an instance).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no room is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics as Prometheus text, with each of `services`' live rooms
    /// and connected clients (its lobby's included) read now.
    pub fn render_metrics<'a>(&self, services: impl IntoIterator<Item = &'a str>) -> String {
        let counts = self.table.occupancy();
        let occupancy = services.into_iter().map(|service| {
            let (rooms, clients) = counts.get(service).copied().unwrap_or_default();
            (service.to_owned(), rooms, clients)
        });
        self.metrics.render(occupancy)
    }

    /// The live rooms of `service`, lobby included.
    pub(super) fn handles(&self, service: &str) -> Vec<RoomHandle> {
        self.table.handles(service)
    }

    /// Room `room` of `service`, starting it when it is not live and
    /// `create` allows (see [`RoomTable::get_or_insert`]).
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
        let plugin = service.plugin();
        let (handle, inbox) = self
            .table
            .get_or_insert(key, plugin.version(), create, creator)?;
        if let Some(inbox) = inbox {
            let meta = handle.meta.clone();
            let span =
                tracing::info_span!("room", service = %meta.key.service, room = %meta.key.room);
            let directory: Arc<dyn ServiceDirectory> = self.clone();
            let actor = RoomActor::new(
                self.table.clone(),
                directory,
                service.clone(),
                meta,
                inbox,
                self.storage.clone(),
            );
            let engine = self.engine.clone();
            let limits = self.limits.clone();
            tokio::spawn(actor.run(engine, limits).instrument(span));
        }
        Ok(handle)
    }
}

impl ServiceDirectory for Rooms {
    /// A client of `service`, wherever it is.
    fn client(&self, service: &str, client: ClientId) -> Option<ClientSender> {
        let here = lock(&self.clients)
            .get(&client)
            .filter(|seat| &*seat.service == service)
            .map(|seat| seat.sender.clone());
        if here.is_some() {
            return here;
        }
        // A client of another node: a stand-in that relays to it.
        let placement = self.placement.as_ref()?;
        if node_of(client) == placement.node_number() {
            return None;
        }
        self.remote_clients.sender(placement, service, client)
    }

    /// Lets `service`'s lobby serve `/`. Fails when another service has it.
    fn claim_root(&self, service: &Arc<str>) -> Result<(), String> {
        let mut root = lock(&self.root);
        match root.as_deref() {
            Some(owner) if owner != &**service => {
                tracing::warn!(owner, "another service's lobby asked for the root");
                Err(roomhost_rules::checks::ServeRootRefusal::Taken.to_string())
            }
            _ => {
                *root = Some(service.clone());
                Ok(())
            }
        }
    }

    /// How tokens are verified for plugins (`None`: auth is off).
    fn auth(&self) -> Option<&TokenVerifier> {
        self.auth.as_deref()
    }

    fn is_live(&self, service: &str, room: &str) -> bool {
        self.table.is_live(service, room)
    }

    /// This node's rooms of `service`, and on a cluster node the other
    /// nodes' as last synced, by room id.
    fn entries(&self, service: &str) -> Vec<GuestRoomEntry> {
        let mut entries = self.table.entries(service);
        if self.placement.is_some() {
            let others = self.cluster_rooms.entries(service);
            entries.extend(
                others
                    .into_iter()
                    .filter(|entry| !self.table.is_live(service, &entry.room_id)),
            );
            entries.sort_by(|a, b| a.room_id.cmp(&b.room_id));
        }
        entries
    }

    fn tap(&self) -> Option<&DevTap> {
        self.tap.as_ref()
    }

    fn forget_client(&self, client: ClientId) {
        let seat = lock(&self.clients).remove(&client);
        if let Some(seat) = seat {
            self.forget_token(seat.resume_token.as_deref());
        }
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
