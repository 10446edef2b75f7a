//! A native test harness: run a [`RoomService`] with plain `cargo test`, no
//! wasm and no host.
//!
//! [`TestRoom`] plays the host. It creates the service, calls its callbacks
//! when the test connects clients, sends messages or moves the fake clock,
//! and records everything the service does through its [`Room`]: frames per
//! client, closes, timers, logs, listing metadata and transfers. It applies
//! the host's rules (see the [crate documentation](crate#host-semantics)) so
//! that a service tested here behaves the same when deployed.
//!
//! A `TestRoom` is one instance: a room, or the lobby
//! ([`TestRoomBuilder::lobby`]). The rest of the service is played by the
//! test: it sets the directory that [`Room::rooms`] returns
//! ([`TestRoom::set_rooms`]), collects the transfers the service made
//! ([`TestRoom::take_transfers`]), delivers clients that arrive by transfer
//! ([`TestRoom::connect_with_handoff`]) or come back rejected
//! ([`TestRoom::bounce_back`]), and reports directory changes to a lobby
//! ([`TestRoom::room_changed`]). Token verification ([`Room::verify_token`])
//! is decided by a [`TestAuth`] ([`TestRoomBuilder::auth`]); by default
//! authentication is off.
//!
//! ```
//! use std::time::Duration;
//! use roomhost_sdk::{ClientId, Message, Room, RoomService, TimerId, room_service};
//! use roomhost_sdk::testing::TestRoom;
//!
//! /// Says "tick" to everyone every second once somebody has joined.
//! #[derive(Default)]
//! #[room_service]
//! struct Ticker;
//!
//! impl RoomService for Ticker {
//!     fn connect(&mut self, room: &mut Room<'_>, _: &roomhost_sdk::ClientInfo) -> Result<(), roomhost_sdk::Rejection> {
//!         room.set_timer(0, Duration::from_secs(1)).map_err(|e| e.to_string().into())
//!     }
//!
//!     fn timer(&mut self, room: &mut Room<'_>, _: TimerId) {
//!         room.broadcast("tick", &[]);
//!         let _ = room.set_timer(0, Duration::from_secs(1));
//!     }
//! }
//!
//! let mut room = TestRoom::<Ticker>::new();
//! let alice = room.connect();
//! room.advance(Duration::from_millis(2500));
//! assert_eq!(room.take_sent(alice), ["tick", "tick"]);
//! assert_eq!(room.pending_timers(), [(0, Duration::from_millis(500))]);
//! ```
//!
//! Differences from the host: callbacks run synchronously inside the
//! harness calls; client ids start at 1 and increase by one per connection;
//! the clock only moves with [`TestRoom::advance`]; [`Room::random_u64`] is
//! deterministic (seed it with [`TestRoomBuilder::seed`]); a broadcast is
//! recorded in ascending client id order (the host promises no order between
//! clients); the limits are the host's defaults from [`crate::limits`]; a
//! transferred client's target is not simulated (the transfer is only
//! recorded), and the directory changes only when the test sets it. Frames
//! sent to clients that are not in the room are recorded (the host delivers
//! them anywhere in the service), except to clients the harness knows have
//! left the service (closed, lost, kicked or rejected at connect).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use roomhost_rules::checks::{self, ClientStateRefusal, InfoRefusal, TransferSource};
use roomhost_rules::close;
use roomhost_rules::storage::{RoomStore, StorageLimits};
#[cfg(not(target_arch = "wasm32"))]
use roomhost_rules::storage::{StorageRefusal, Write};

use crate::limits::{
    MAX_CLIENT_STATE_BYTES, MAX_CLOSE_REASON_BYTES, MAX_INFO_BYTES, MAX_PLUGIN_FRAME_BYTES,
    MAX_ROOM_ID_BYTES, MAX_TIMERS,
};
use crate::room::{Backend, duration_to_ms, truncate};
use crate::{
    ClientId, ClientInfo, DisconnectReason, Handoff, HttpRequest, HttpResponse, InitInfo, LogLevel,
    Message, Rejection, Reloadable, Room, RoomChange, RoomEntry, RoomService, TimerId,
    TransferError,
};

/// Where the fake clock of a new [`TestRoom`] starts, in milliseconds since
/// the Unix epoch (2023-11-14T22:13:20Z).
pub const DEFAULT_START_MS: u64 = 1_700_000_000_000;

const DEFAULT_SEED: u64 = 0x5EED_5EED_5EED_5EED;

/// A room running service `S` natively, driven by a test.
///
/// Every method that calls into the service (`connect`, `message`,
/// `disconnect`, `advance`) lets a panic in the service propagate, so a test
/// fails with the service's own panic message. Methods documented with
/// *Panics* treat misuse of the harness (such as messaging a client that is
/// not connected) the same way.
pub struct TestRoom<S: RoomService> {
    service: S,
    recorder: Recorder,
}

impl<S: RoomService> TestRoom<S> {
    /// A room with id `test` and no configuration (`null`), already
    /// initialised.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A room with id `test` and `config` (serialized to JSON), already
    /// initialised.
    ///
    /// ```
    /// # use roomhost_sdk::{RoomService, room_service};
    /// # #[derive(Default)] #[room_service] struct Counter;
    /// # impl RoomService for Counter {}
    /// use roomhost_sdk::testing::TestRoom;
    ///
    /// let room = TestRoom::<Counter>::with_config(&serde_json::json!({ "start": 10 }));
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `config` cannot be serialized.
    #[track_caller]
    pub fn with_config<C: Serialize + ?Sized>(config: &C) -> Self {
        Self::builder().config(config).build()
    }

    /// Configures a room before creating it: id, lobby flag, raw
    /// configuration text, restored state, clock start and random seed.
    pub fn builder() -> TestRoomBuilder<S> {
        TestRoomBuilder {
            room_id: None,
            lobby: false,
            root_taken: false,
            config: "null".to_owned(),
            restored: None,
            start_ms: DEFAULT_START_MS,
            seed: DEFAULT_SEED,
            auth: TestAuth::disabled(),
            stored: Vec::new(),
            storage_limits: StorageLimits::default(),
            service: PhantomData,
        }
    }

    /// The room's id (empty for the lobby, unless set explicitly).
    pub fn room_id(&self) -> &str {
        &self.recorder.room_id
    }

    /// Whether this instance is the lobby.
    pub fn is_lobby(&self) -> bool {
        self.recorder.lobby
    }

    /// Connects a client with an empty query and returns its id.
    ///
    /// # Panics
    ///
    /// Panics with the service's reason if it rejects the client.
    #[track_caller]
    pub fn connect(&mut self) -> ClientId {
        self.connect_with_query("")
    }

    /// Connects a client with `query` (without the leading `?`) and returns
    /// its id.
    ///
    /// # Panics
    ///
    /// Panics with the service's reason if it rejects the client.
    #[track_caller]
    pub fn connect_with_query(&mut self, query: &str) -> ClientId {
        match self.try_connect(query) {
            Ok(client) => client,
            Err(reason) => panic!("the service rejected the client (query {query:?}): {reason}"),
        }
    }

    /// Asks the service to accept a client with `query` (without the leading
    /// `?`): its id, or the service's reason for rejecting it.
    pub fn try_connect(&mut self, query: &str) -> Result<ClientId, Rejection> {
        self.try_connect_with(|client| client.query = query.to_owned())
    }

    /// Like [`TestRoom::try_connect`], with every [`ClientInfo`] field under
    /// the test's control: `customize` receives the info the harness would
    /// send (path `/ws/test/ROOM`, or `/ws/test` for the lobby; empty query,
    /// no identity, no claims, not read-only, no hand-off) and may change
    /// anything except the id.
    ///
    /// A client rejected without a hand-off has left the service (frames
    /// sent to it later are dropped); one rejected with a hand-off goes back
    /// to the room that sent it, so it can still be sent to.
    ///
    /// ```
    /// # use roomhost_sdk::{ClientInfo, Room, RoomService, room_service};
    /// # #[derive(Default)] #[room_service] struct Members;
    /// # impl RoomService for Members {
    /// #     fn connect(&mut self, _: &mut Room<'_>, c: &ClientInfo) -> Result<(), roomhost_sdk::Rejection> {
    /// #         c.identity.as_ref().map(|_| ()).ok_or_else(|| "sign in first".into())
    /// #     }
    /// # }
    /// use roomhost_sdk::testing::TestRoom;
    ///
    /// let mut room = TestRoom::<Members>::new();
    /// assert_eq!(room.try_connect("").unwrap_err(), "sign in first");
    /// let alice = room.try_connect_with(|c| c.identity = Some("alice".into()));
    /// assert!(alice.is_ok());
    /// ```
    pub fn try_connect_with(
        &mut self,
        customize: impl FnOnce(&mut ClientInfo),
    ) -> Result<ClientId, Rejection> {
        let id = self.recorder.next_client;
        self.recorder.next_client += 1;
        self.connect_as(id, customize)
    }

    /// A client arriving by transfer with `handoff` (as built by
    /// [`Handoff::from_lobby`] or [`Handoff::from_room`]): its new id, or the
    /// service's reason for rejecting it.
    ///
    /// ```
    /// # use roomhost_sdk::{ClientInfo, Room, RoomService, room_service};
    /// # #[derive(Default)] #[room_service] struct Game;
    /// # impl RoomService for Game {
    /// #     fn connect(&mut self, _: &mut Room<'_>, c: &ClientInfo) -> Result<(), roomhost_sdk::Rejection> {
    /// #         match &c.handoff {
    /// #             Some(h) if h.data == b"player" => Ok(()),
    /// #             _ => Err("join from the lobby".into()),
    /// #         }
    /// #     }
    /// # }
    /// use roomhost_sdk::Handoff;
    /// use roomhost_sdk::testing::TestRoom;
    ///
    /// let mut room = TestRoom::<Game>::builder().room_id("g1").build();
    /// assert!(room.connect_with_handoff(Handoff::from_lobby("player")).is_ok());
    /// assert!(room.connect_with_handoff(Handoff::from_lobby("spy")).is_err());
    /// ```
    pub fn connect_with_handoff(&mut self, handoff: Handoff) -> Result<ClientId, Rejection> {
        self.try_connect_with(|client| client.handoff = Some(handoff))
    }

    /// Plays the host when the target of `transfer` (one this room made,
    /// from [`TestRoom::take_transfers`]) rejected the client, or no longer
    /// exists: the same client comes back through `connect` with a hand-off
    /// whose `from_room` is the target, `data` the original bytes and
    /// `rejected` is `reason`. Returns the service's verdict; if it rejects
    /// the client again, the client leaves the service.
    ///
    /// # Panics
    ///
    /// Panics if the client is connected here or has left the service.
    #[track_caller]
    pub fn bounce_back(&mut self, transfer: &Transfer, reason: &str) -> Result<(), Rejection> {
        let client = transfer.client;
        assert!(
            !self.is_connected(client) && !self.recorder.gone.contains(&client),
            "TestRoom::bounce_back: client {client} is connected here or has left the service"
        );
        let handoff =
            Handoff::new(transfer.to.clone(), transfer.data.clone()).with_rejection(reason);
        let result = self.connect_as(client, |info| info.handoff = Some(handoff));
        if result.is_err() {
            self.recorder.gone.insert(client);
        }
        result.map(|_| ())
    }

    /// Connects client `id`: see [`TestRoom::try_connect_with`].
    fn connect_as(
        &mut self,
        id: ClientId,
        customize: impl FnOnce(&mut ClientInfo),
    ) -> Result<ClientId, Rejection> {
        let mut client = client_info(id, "");
        client.path = if self.recorder.lobby {
            "/ws/test".to_owned()
        } else {
            format!("/ws/test/{}", self.recorder.room_id)
        };
        if self.recorder.resumable {
            client.resume_token = Some(format!("resume-{id}-0"));
        }
        customize(&mut client);
        client.id = id;

        self.recorder.clients.insert(id);
        // Known while its connect runs (`Room::client`), as on the host,
        // without the hand-off (a reload's replay is not a transfer).
        let arrived_with = client.handoff.take();
        self.recorder.client_infos.insert(id, client.clone());
        client.handoff = arrived_with;
        self.recorder.connecting = Some(id);
        let result = self.run(|service, room| service.connect(room, &client));
        self.recorder.connecting = None;
        let deferred = self.recorder.deferred_transfer.take();
        if result.is_err() {
            // Frames already sent to it stay: the host delivers them before
            // the close (or before returning it to its previous room). A
            // transfer asked for during its connect is dropped.
            self.recorder.remove_client(id);
            self.recorder.departures.retain(|(left, _)| *left != id);
            if client.handoff.is_none() {
                self.recorder.gone.insert(id);
            }
        } else if let Some(transfer) = deferred
            && self.recorder.remove_client(id)
        {
            // Accepted: the transfer asked for during connect runs now.
            self.recorder
                .departures
                .push_back((id, DisconnectReason::Transferred));
            self.recorder.transfers.push(transfer);
        }
        self.flush_departures();
        result.map(|()| id)
    }

    /// Delivers a frame from `client` to the service.
    ///
    /// # Panics
    ///
    /// Panics if `client` is not connected.
    #[track_caller]
    pub fn message(&mut self, client: ClientId, message: impl Into<Message>) {
        self.assert_connected(client, "message");
        let message = message.into();
        self.run(|service, room| service.message(room, client, message));
        self.flush_departures();
    }

    /// Plays a lost connection of a service with a
    /// [`RECONNECT_GRACE`](RoomService::RECONNECT_GRACE): the service gets
    /// `disconnect(client, Suspended)` and the client stays a member (frames
    /// sent to it are recorded as usual: the host would replay them). Follow
    /// with [`TestRoom::reconnect`] or `disconnect(client, Lost)`.
    ///
    /// # Panics
    ///
    /// Panics if `client` is not connected, or is suspended already.
    #[track_caller]
    pub fn suspend(&mut self, client: ClientId) {
        self.assert_connected(client, "suspend");
        assert!(
            self.recorder.suspended.insert(client),
            "TestRoom::suspend: client {client} is suspended already"
        );
        self.run(|service, room| service.disconnect(room, client, DisconnectReason::Suspended));
        self.flush_departures();
    }

    /// Plays a suspended client coming back with its token: the service
    /// gets `reconnect(client, token)` with a fresh token, which this
    /// returns.
    ///
    /// # Panics
    ///
    /// Panics if `client` is not suspended.
    #[track_caller]
    pub fn reconnect(&mut self, client: ClientId) -> String {
        assert!(
            self.recorder.suspended.remove(&client),
            "TestRoom::reconnect: client {client} is not suspended"
        );
        self.recorder.resumes += 1;
        let token = format!("resume-{client}-{}", self.recorder.resumes);
        self.run(|service, room| service.reconnect(room, client, &token));
        self.flush_departures();
        token
    }

    /// Removes `client` from the room and tells the service why. Unless the
    /// reason is [`DisconnectReason::Transferred`], the client has left the
    /// service and frames sent to it are dropped from then on.
    ///
    /// # Panics
    ///
    /// Panics if `client` is not connected.
    #[track_caller]
    pub fn disconnect(&mut self, client: ClientId, reason: DisconnectReason) {
        self.assert_connected(client, "disconnect");
        self.recorder.suspended.remove(&client);
        self.recorder.remove_client(client);
        if reason != DisconnectReason::Transferred {
            self.recorder.gone.insert(client);
        }
        self.run(|service, room| service.disconnect(room, client, reason));
        self.flush_departures();
    }

    /// Delivers a directory change to the lobby, as the host does when a
    /// room of the service is created, changes or ends. The harness does
    /// not update [`TestRoom::set_rooms`]'s directory by itself.
    ///
    /// # Panics
    ///
    /// Panics if this instance is not the lobby (the host only calls
    /// `room_changed` on the lobby).
    #[track_caller]
    pub fn room_changed(&mut self, change: RoomChange) {
        assert!(
            self.recorder.lobby,
            "TestRoom::room_changed: the host only calls room_changed on the lobby \
             (build the room with .lobby(true))"
        );
        self.run(|service, room| service.room_changed(room, change));
        self.flush_departures();
    }

    /// Sets the service's directory: what [`Room::rooms`] returns from now
    /// on, and which rooms a transfer with `create: false` finds.
    pub fn set_rooms(&mut self, rooms: Vec<RoomEntry>) {
        self.recorder.directory = rooms;
    }

    /// The directory set with [`TestRoom::set_rooms`].
    pub fn rooms(&self) -> &[RoomEntry] {
        &self.recorder.directory
    }

    /// Every transfer the service made since the last take, in order. Each
    /// transferred client has left this room and the service has received
    /// `disconnect(client, Transferred)`.
    pub fn take_transfers(&mut self) -> Vec<Transfer> {
        std::mem::take(&mut self.recorder.transfers)
    }

    /// Replaces the token verification that [`Room::auth_enabled`] and
    /// [`Room::verify_token`] see from now on (as when the operator
    /// restarts the host with another key).
    pub fn set_auth(&mut self, auth: TestAuth) {
        self.recorder.auth = auth;
    }

    /// Every token the service asked to verify with
    /// [`Room::verify_token`], in order.
    pub fn verified_tokens(&self) -> &[String] {
        &self.recorder.verified_tokens
    }

    /// Whether the service claimed the server root with
    /// [`Room::serve_root`] successfully.
    pub fn served_root(&self) -> bool {
        self.recorder.served_root
    }

    /// Moves the fake clock forward by `by` (rounded up to whole
    /// milliseconds), firing every timer that falls due on the way in
    /// deadline order (timers due at the same instant fire in the order they
    /// were set). During each `timer` callback the clock reads the timer's
    /// deadline. Timers set while firing fire too if they fall due within
    /// the advanced span; a `Duration::ZERO` advance fires timers already
    /// due.
    pub fn advance(&mut self, by: Duration) {
        let target = self.recorder.now_ms.saturating_add(duration_to_ms(by));
        while let Some((id, due)) = self.recorder.next_due(target) {
            self.recorder.timers.remove(&id);
            // A durable timer that fired is done, as on the host.
            self.recorder.store.clear_timer(id);
            self.recorder.now_ms = self.recorder.now_ms.max(due);
            self.run(|service, room| service.timer(room, id));
            self.flush_departures();
        }
        self.recorder.now_ms = target;
    }

    /// The room's storage as the service left it: its entries
    /// ([`RoomStore::entries`], [`RoomStore::get`]), size and durable timers.
    pub fn storage(&self) -> &RoomStore {
        &self.recorder.store
    }

    /// The fake clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.recorder.now_ms
    }

    /// The pending timers with the time left until each fires, soonest
    /// first.
    pub fn pending_timers(&self) -> Vec<(TimerId, Duration)> {
        let mut timers: Vec<_> = self
            .recorder
            .timers
            .iter()
            .map(|(&id, &(due, seq))| (due, seq, id))
            .collect();
        timers.sort_unstable();
        timers
            .into_iter()
            .map(|(due, _, id)| {
                let left = due.saturating_sub(self.recorder.now_ms);
                (id, Duration::from_millis(left))
            })
            .collect()
    }

    /// The frames `client` received since the last take, in order
    /// (broadcasts included). `client` need not be in the room: frames the
    /// service sent to a client elsewhere in the service are recorded too.
    pub fn take_sent(&mut self, client: ClientId) -> Vec<Message> {
        let mut taken = Vec::new();
        self.recorder.outbox.retain(|(to, message)| {
            if *to == client {
                taken.push(message.clone());
                false
            } else {
                true
            }
        });
        taken
    }

    /// Like [`TestRoom::take_sent`], with every frame parsed as JSON.
    ///
    /// # Panics
    ///
    /// Panics if a frame is not valid JSON.
    #[track_caller]
    pub fn take_sent_json(&mut self, client: ClientId) -> Vec<Value> {
        self.take_sent(client)
            .into_iter()
            .map(|message| match message.parse_json() {
                Ok(value) => value,
                Err(err) => panic!("frame {message:?} sent to client {client} is not JSON: {err}"),
            })
            .collect()
    }

    /// Every frame sent since the last take, to any client, in order, as
    /// `(recipient, frame)`. A broadcast appears once per recipient, in
    /// ascending client id order.
    pub fn take_all(&mut self) -> Vec<(ClientId, Message)> {
        std::mem::take(&mut self.recorder.outbox)
    }

    /// Every client the service closed, in order, as `(client, code,
    /// reason)`, with the code and reason the host would send (invalid codes
    /// become 1000, long reasons are truncated).
    pub fn closed(&self) -> &[(ClientId, u16, String)] {
        &self.recorder.closed
    }

    /// The listing metadata last set with [`Room::set_info`], if any.
    pub fn info(&self) -> Option<Value> {
        self.recorder.info.clone()
    }

    /// Every line the service logged, in order. The harness adds a
    /// `Warn` line starting with `[harness]` when it drops an oversized
    /// frame, as the host logs one.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.recorder.logs
    }

    /// The connected clients, in ascending id (connection) order.
    pub fn clients(&self) -> Vec<ClientId> {
        self.recorder.clients.iter().copied().collect()
    }

    /// Whether `client` is connected.
    pub fn is_connected(&self, client: ClientId) -> bool {
        self.recorder.clients.contains(&client)
    }

    /// The service, to inspect its state.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The service, mutably.
    pub fn service_mut(&mut self) -> &mut S {
        &mut self.service
    }

    /// Sends an HTTP request to the room, as the host does for
    /// `/rooms/{service}/{room}/{path...}`, and returns the service's answer.
    ///
    /// ```
    /// # use roomhost_sdk::{HttpRequest, HttpResponse, Room, RoomService, room_service};
    /// # #[derive(Default)] #[room_service] struct Hello;
    /// # impl RoomService for Hello {
    /// #     fn request(&mut self, _room: &mut Room<'_>, _request: HttpRequest) -> HttpResponse {
    /// #         HttpResponse::text(200, "hello")
    /// #     }
    /// # }
    /// use roomhost_sdk::testing::TestRoom;
    ///
    /// let mut room = TestRoom::<Hello>::new();
    /// let response = room.request(HttpRequest::new("GET", "/greeting"));
    /// assert_eq!((response.status, response.body_text().as_str()), (200, "hello"));
    /// ```
    pub fn request(&mut self, request: HttpRequest) -> HttpResponse {
        let response = self.run(|service, room| service.request(room, request));
        self.flush_departures();
        response
    }

    /// Runs `f` with the service and a [`Room`] as if inside a callback, for
    /// testing helper methods of the service directly. Clients closed or
    /// transferred by `f` are disconnected afterwards as usual.
    pub fn with_room<R>(&mut self, f: impl FnOnce(&mut S, &mut Room<'_>) -> R) -> R {
        let result = self.run(f);
        self.flush_departures();
        result
    }

    fn run<R>(&mut self, f: impl FnOnce(&mut S, &mut Room<'_>) -> R) -> R {
        // The room id is cloned so that `Room` can borrow the recorder
        // mutably; ids are short.
        let room_id = self.recorder.room_id.clone();
        let mut room = Room::new(&room_id, self.recorder.lobby, &mut self.recorder);
        let result = f(&mut self.service, &mut room);
        // The callback's writes are committed, as the host commits an
        // event's writes after it.
        self.recorder.store.take_changes();
        result
    }

    /// Delivers `disconnect(client, Kicked | Transferred)` for every client
    /// closed or transferred by the service, including those closed or
    /// transferred by these very callbacks.
    fn flush_departures(&mut self) {
        while let Some((client, reason)) = self.recorder.departures.pop_front() {
            self.run(|service, room| service.disconnect(room, client, reason));
        }
    }

    #[track_caller]
    fn assert_connected(&self, client: ClientId, what: &str) {
        assert!(
            self.is_connected(client),
            "TestRoom::{what}: client {client} is not connected (connected: {:?})",
            self.clients()
        );
    }
}

/// What [`TestRoom::reload`] did, mirroring the host's hot reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The service's snapshot was restored into a new value, during `init`
    /// (so [`Room::serve_root`] works there); clients, timers and info were
    /// kept without `connect` being called. The info stays as it was unless
    /// the new value sets it.
    Restored,
    /// The service has no snapshot: a new value was initialised with no
    /// clients and no timers (the old timers are dropped), then `connect`
    /// replayed for each client in id order, each joining the room as its
    /// `connect` runs, as in [`TestRoom::try_connect_with`]. A client
    /// rejected by the new value is closed with its rejection's code (1008
    /// unless it names one) and reason `rejected
    /// after reload: REASON`, and gets no `disconnect`. The info stays as
    /// it was unless the new value sets it.
    Restarted,
}

impl<S: Reloadable> TestRoom<S> {
    /// Reloads the room as `roomhost dev` does after an edit: snapshots the
    /// service and restores it into a fresh value (or, without snapshot
    /// support, starts a fresh value and replays `connect`; see [`Reload`]).
    /// Use it to check that a service's state survives a reload.
    ///
    /// An `Err` is the reason the host would keep the room on the old
    /// version: the snapshot failed, or restoring it did. The service is
    /// then unchanged, and so are the room's clients, timers and info, as
    /// on the host: what the failed restore set or transferred is undone,
    /// except that clients it closed stay closed (the old value receives
    /// `disconnect(Closed)` for them, as when their connections report the
    /// close).
    ///
    /// ```
    /// # use roomhost_sdk::{ClientId, Message, Room, RoomService, room_service};
    /// use roomhost_sdk::testing::{Reload, TestRoom};
    ///
    /// #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// #[room_service(snapshot = serde)]
    /// struct Tally {
    ///     total: u64,
    /// }
    ///
    /// impl RoomService for Tally {
    ///     fn message(&mut self, room: &mut Room<'_>, client: ClientId, _message: Message) {
    ///         self.total += 1;
    ///         room.send(client, Message::text(self.total.to_string()));
    ///     }
    /// }
    ///
    /// let mut room = TestRoom::<Tally>::new();
    /// let alice = room.connect();
    /// room.message(alice, "+1");
    /// assert_eq!(room.reload(), Ok(Reload::Restored));
    /// room.message(alice, "+1");
    /// assert_eq!(room.take_sent(alice), ["1", "2"]);
    /// ```
    pub fn reload(&mut self) -> Result<Reload, String> {
        let info = InitInfo {
            room_id: self.recorder.room_id.clone(),
            lobby: self.recorder.lobby,
            config: self.recorder.config.clone(),
            restored: self.service.save()?,
        };
        if info.restored.is_some() {
            self.restore(&info)
        } else {
            self.reload_fresh(&info)
        }
    }

    /// Restarts the room as a host restart (or crash) after its last event
    /// would: the service value, its clients and its ordinary timers are
    /// gone; a new value is made by `Default` plus `init` with the room's
    /// storage as it was, and its durable timers pending again (one whose
    /// time passed fires on the next [`TestRoom::advance`], even by
    /// `Duration::ZERO`). Clients that were connected are closed and no
    /// longer members, without `disconnect` (the old process is gone).
    ///
    /// ```
    /// # use roomhost_sdk::{ClientId, Message, Room, RoomService, InitInfo, room_service};
    /// use roomhost_sdk::testing::TestRoom;
    ///
    /// #[derive(Default)]
    /// #[room_service]
    /// struct Visits {
    ///     visits: u64,
    /// }
    ///
    /// impl RoomService for Visits {
    ///     fn init(&mut self, room: &mut Room<'_>, _: &InitInfo) -> Result<(), String> {
    ///         self.visits = room.storage().get_json("visits").map_err(|e| e.to_string())?.unwrap_or(0);
    ///         Ok(())
    ///     }
    ///     fn connect(&mut self, room: &mut Room<'_>, _: &roomhost_sdk::ClientInfo) -> Result<(), roomhost_sdk::Rejection> {
    ///         self.visits += 1;
    ///         room.storage().put_json("visits", &self.visits).map_err(|e| roomhost_sdk::Rejection::new(e.to_string()))
    ///     }
    /// }
    ///
    /// let mut room = TestRoom::<Visits>::new();
    /// room.connect();
    /// room.restart().unwrap();
    /// room.connect();
    /// assert_eq!(room.service().visits, 2);
    /// ```
    pub fn restart(&mut self) -> Result<(), String> {
        let recorder = &mut self.recorder;
        for client in std::mem::take(&mut recorder.clients) {
            recorder.gone.insert(client);
        }
        recorder.client_infos.clear();
        recorder.client_states.clear();
        recorder.suspended.clear();
        recorder.departures.clear();
        recorder.info = None;
        recorder.timers.clear();
        let durable: Vec<(TimerId, u64)> = recorder.store.timers().collect();
        for (id, due) in durable {
            let seq = recorder.next_timer_seq;
            recorder.next_timer_seq += 1;
            recorder.timers.insert(id, (due.max(recorder.now_ms), seq));
        }
        let info = InitInfo {
            room_id: recorder.room_id.clone(),
            lobby: recorder.lobby,
            config: recorder.config.clone(),
            restored: None,
        };
        self.service = self.start(&info)?;
        self.flush_departures();
        Ok(())
    }

    /// The new version's value, made as the host's `init` export makes it:
    /// from the snapshot in `info.restored` or by `Default` plus `init`,
    /// with `init` running (so [`Room::serve_root`] is allowed) either way.
    fn start(&mut self, info: &InitInfo) -> Result<S, String> {
        self.recorder.in_init = true;
        let started = self.run(|_, room| crate::snapshot::start::<S>(room, info));
        self.recorder.in_init = false;
        started
    }

    /// The host's restore: the new value takes over the clients, timers
    /// and info as they are. If it fails, the room gets them back as they
    /// were before the attempt: timers and info it set are undone,
    /// transfers it made never happen, but clients it closed are gone
    /// (the host closed their connections) and the old value hears of them
    /// as `disconnect(Closed)`.
    fn restore(&mut self, info: &InitInfo) -> Result<Reload, String> {
        let clients = self.recorder.clients.clone();
        let client_infos = self.recorder.client_infos.clone();
        let client_states = self.recorder.client_states.clone();
        let timers = self.recorder.timers.clone();
        let room_info = self.recorder.info.clone();
        let transfers = self.recorder.transfers.len();
        match self.start(info) {
            Ok(service) => {
                self.service = service;
                self.flush_departures();
                Ok(Reload::Restored)
            }
            Err(reason) => {
                self.recorder.clients = clients;
                self.recorder.client_infos = client_infos;
                self.recorder.client_states = client_states;
                self.recorder.timers = timers;
                self.recorder.info = room_info;
                self.recorder.transfers.truncate(transfers);
                let closed: Vec<ClientId> = std::mem::take(&mut self.recorder.departures)
                    .into_iter()
                    .filter(|&(_, why)| why == DisconnectReason::Kicked)
                    .map(|(client, _)| client)
                    .collect();
                for client in closed {
                    if self.recorder.remove_client(client) {
                        self.run(|service, room| {
                            service.disconnect(room, client, DisconnectReason::Closed);
                        });
                        self.flush_departures();
                    }
                }
                Err(reason)
            }
        }
    }

    /// The host's restart: a new value starts with no clients and no
    /// timers, then each client is connected to it again, in id order, as
    /// [`TestRoom::try_connect_with`] connects one, with the [`ClientInfo`]
    /// it first connected with (hand-off removed). A client the new value
    /// rejects is closed with its rejection's code, unless the service
    /// closed it already.
    fn reload_fresh(&mut self, info: &InitInfo) -> Result<Reload, String> {
        let clients = std::mem::take(&mut self.recorder.clients);
        let mut client_infos = std::mem::take(&mut self.recorder.client_infos);
        // As on the host: a client's state comes back once the new value
        // accepted it, unless its `connect` set one.
        let mut client_states = std::mem::take(&mut self.recorder.client_states);
        self.recorder.timers.clear();
        // Without a snapshot, starting cannot fail.
        self.service = self.start(info)?;
        self.flush_departures();
        for client in clients {
            let arrival = client_infos.remove(&client).unwrap_or_else(|| ClientInfo {
                path: String::new(),
                ..client_info(client, "")
            });
            let Err(reason) = self.connect_as(client, |info| *info = arrival) else {
                if let Some(state) = client_states.remove(&client)
                    && self.recorder.clients.contains(&client)
                {
                    self.recorder.client_states.entry(client).or_insert(state);
                }
                continue;
            };
            // The host's 1008 follows any close the service sent, which
            // the client sees instead.
            let closed_already = self.recorder.closed.iter().any(|(id, ..)| *id == client);
            if !closed_already {
                let code = reason.code();
                let reason = format!("rejected after reload: {reason}");
                let reason = truncate(&reason, MAX_CLOSE_REASON_BYTES).to_owned();
                self.recorder.closed.push((client, code, reason));
            }
        }
        Ok(Reload::Restarted)
    }
}

impl<S: RoomService> Default for TestRoom<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: RoomService + fmt::Debug> fmt::Debug for TestRoom<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRoom")
            .field("room_id", &self.recorder.room_id)
            .field("lobby", &self.recorder.lobby)
            .field("service", &self.service)
            .field("now_ms", &self.recorder.now_ms)
            .field("clients", &self.recorder.clients)
            .finish_non_exhaustive()
    }
}

/// Configures a [`TestRoom`]; see [`TestRoom::builder`].
///
/// ```
/// # use roomhost_sdk::{RoomService, room_service};
/// # #[derive(Default)] #[room_service] struct Game;
/// # impl RoomService for Game {}
/// use roomhost_sdk::testing::TestRoom;
///
/// let room = TestRoom::<Game>::builder()
///     .room_id("lobby")
///     .raw_config(r#"{"rounds": 3}"#)
///     .start_ms(0)
///     .seed(42)
///     .build();
/// assert_eq!(room.room_id(), "lobby");
/// assert_eq!(room.now_ms(), 0);
/// ```
pub struct TestRoomBuilder<S> {
    room_id: Option<String>,
    lobby: bool,
    root_taken: bool,
    config: String,
    restored: Option<Vec<u8>>,
    start_ms: u64,
    seed: u64,
    auth: TestAuth,
    stored: Vec<(Vec<u8>, Vec<u8>)>,
    storage_limits: StorageLimits,
    service: PhantomData<fn() -> S>,
}

impl<S: RoomService> TestRoomBuilder<S> {
    /// The room id (default `test`, or empty for the lobby).
    pub fn room_id(mut self, room_id: impl Into<String>) -> Self {
        self.room_id = Some(room_id.into());
        self
    }

    /// Whether the instance is the service's lobby (default `false`). The
    /// lobby's room id is empty unless set with
    /// [`room_id`](TestRoomBuilder::room_id).
    ///
    /// ```
    /// # use roomhost_sdk::{InitInfo, Room, RoomService, room_service};
    /// # #[derive(Default)] #[room_service] struct Relay;
    /// # impl RoomService for Relay {
    /// #     const LOBBY: bool = true;
    /// #     fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
    /// #         if info.lobby { let _ = room.serve_root(); }
    /// #         Ok(())
    /// #     }
    /// # }
    /// use roomhost_sdk::testing::TestRoom;
    ///
    /// let lobby = TestRoom::<Relay>::builder().lobby(true).build();
    /// assert!(lobby.is_lobby());
    /// assert_eq!(lobby.room_id(), "");
    /// assert!(lobby.served_root());
    /// ```
    pub fn lobby(mut self, lobby: bool) -> Self {
        self.lobby = lobby;
        self
    }

    /// Makes [`Room::serve_root`] fail as when another service holds the
    /// server root (default: the root is free).
    pub fn root_taken(mut self, taken: bool) -> Self {
        self.root_taken = taken;
        self
    }

    /// The configuration, serialized to JSON (default `null`).
    ///
    /// # Panics
    ///
    /// Panics if `config` cannot be serialized.
    #[track_caller]
    pub fn config<C: Serialize + ?Sized>(mut self, config: &C) -> Self {
        match serde_json::to_string(config) {
            Ok(json) => self.config = json,
            Err(err) => panic!("TestRoomBuilder::config: cannot serialize the config: {err}"),
        }
        self
    }

    /// The configuration as raw text, passed to the service unchecked (to
    /// test how it handles invalid configuration).
    pub fn raw_config(mut self, config: impl Into<String>) -> Self {
        self.config = config.into();
        self
    }

    /// State restored from an earlier instance of the room (default none).
    pub fn restored(mut self, state: impl Into<Vec<u8>>) -> Self {
        self.restored = Some(state.into());
        self
    }

    /// An entry the room's storage holds when it starts, as if an earlier
    /// instance of the room had stored it (default: empty storage).
    pub fn stored(mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.stored.push((key.into(), value.into()));
        self
    }

    /// The most the room may store, keys plus values, as an operator's
    /// `max_room_storage_bytes` sets it (default
    /// [`MAX_ROOM_STORAGE_BYTES`](crate::limits::MAX_ROOM_STORAGE_BYTES)):
    /// to test how a service handles a refused write.
    ///
    /// ```
    /// # use roomhost_sdk::{InitInfo, Room, RoomService, room_service};
    /// # #[derive(Default)] #[room_service] struct Notes;
    /// # impl RoomService for Notes {}
    /// use roomhost_sdk::StorageError;
    /// use roomhost_sdk::testing::TestRoom;
    ///
    /// let mut room = TestRoom::<Notes>::builder().max_room_storage_bytes(8).build();
    /// let refused = room.with_room(|_, room| room.storage().put("key", "too long"));
    /// assert!(matches!(refused, Err(StorageError::RoomFull { needed: 11, limit: 8 })));
    /// assert_eq!(room.storage().bytes(), 0);
    /// ```
    pub fn max_room_storage_bytes(mut self, bytes: usize) -> Self {
        self.storage_limits.max_room_bytes = bytes;
        self
    }

    /// Where the fake clock starts (default [`DEFAULT_START_MS`]).
    pub fn start_ms(mut self, start_ms: u64) -> Self {
        self.start_ms = start_ms;
        self
    }

    /// Seeds [`Room::random_u64`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How tokens are verified (default [`TestAuth::disabled`]: no key
    /// configured).
    pub fn auth(mut self, auth: TestAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Creates the service with `Default` and calls its `init`.
    ///
    /// # Panics
    ///
    /// Panics with the service's reason if `init` fails; use
    /// [`TestRoomBuilder::try_build`] to test that.
    #[track_caller]
    pub fn build(self) -> TestRoom<S> {
        match self.try_build() {
            Ok(room) => room,
            Err(reason) => panic!("the service's init failed: {reason}"),
        }
    }

    /// Creates the service with `Default` and calls its `init`: the room, or
    /// the reason `init` gave for refusing to start (the host would dispose
    /// the room and close its first client with 1011 and that reason).
    pub fn try_build(self) -> Result<TestRoom<S>, String> {
        let room_id = self
            .room_id
            .unwrap_or_else(|| if self.lobby { "" } else { "test" }.to_owned());
        let info = InitInfo {
            room_id: room_id.clone(),
            lobby: self.lobby,
            config: self.config,
            restored: self.restored,
        };
        let mut recorder = Recorder::new(room_id, self.lobby, self.start_ms, self.seed);
        recorder.root_taken = self.root_taken;
        recorder.service_has_lobby = S::LOBBY;
        recorder.resumable = !S::RECONNECT_GRACE.is_zero();
        recorder.auth = self.auth;
        recorder.config = info.config.clone();
        recorder.store = RoomStore::loaded(self.storage_limits, self.stored, []);
        let mut room = TestRoom {
            service: S::default(),
            recorder,
        };
        room.recorder.in_init = true;
        let started = room.run(|service, ctx| service.init(ctx, &info));
        room.recorder.in_init = false;
        started?;
        room.flush_departures();
        Ok(room)
    }
}

impl<S> fmt::Debug for TestRoomBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRoomBuilder")
            .field("room_id", &self.room_id)
            .field("lobby", &self.lobby)
            .field("root_taken", &self.root_taken)
            .field("config", &self.config)
            .field("restored", &self.restored)
            .field("start_ms", &self.start_ms)
            .field("seed", &self.seed)
            .field("auth", &self.auth)
            .finish()
    }
}

/// A [`ClientInfo`] with `id` and `query`, path `/ws/test/test`, no identity,
/// no claims, not read-only and no hand-off: for unit-testing code that
/// takes a `ClientInfo`. Set [`ClientInfo::identity`], [`ClientInfo::claims`]
/// or [`ClientInfo::read_only`] on it (or in
/// [`TestRoom::try_connect_with`]) to play a client whose token the host
/// verified.
pub fn client_info(id: ClientId, query: &str) -> ClientInfo {
    ClientInfo {
        id,
        path: "/ws/test/test".to_owned(),
        query: query.to_owned(),
        identity: None,
        handoff: None,
        claims: None,
        read_only: false,
        resume_token: None,
    }
}

/// An [`InitInfo`] with `room_id` and raw `config` text, not the lobby and
/// no restored state: for unit-testing code that takes an `InitInfo`.
pub fn init_info(room_id: &str, config: &str) -> InitInfo {
    InitInfo {
        room_id: room_id.to_owned(),
        lobby: false,
        config: config.to_owned(),
        restored: None,
    }
}

/// What [`Room::verify_token`] returns in the harness when no key is
/// configured ([`TestAuth::disabled`]).
pub const NO_TOKEN_KEY: &str = "no token key configured";

/// The reason [`Room::verify_token`] gives in the harness for a token a
/// [`TestAuth::tokens`] table does not know.
pub const UNKNOWN_TOKEN: &str = "invalid token";

/// Token verification in the harness, in place of the host's key: decides
/// what [`Room::auth_enabled`] and [`Room::verify_token`] return. Set it
/// with [`TestRoomBuilder::auth`] or [`TestRoom::set_auth`].
///
/// ```
/// # use roomhost_sdk::{ClientId, Message, Room, RoomService, room_service};
/// # #[derive(Default)] #[room_service] struct Gate;
/// # impl RoomService for Gate {
/// #     fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
/// #         let token = message.as_text().unwrap_or_default().to_owned();
/// #         let reply = match room.verify_token(&token) {
/// #             Ok(claims) => format!("hello {}", claims["name"].as_str().unwrap_or("?")),
/// #             Err(err) => err.message().to_owned(),
/// #         };
/// #         room.send(client, reply);
/// #     }
/// # }
/// use roomhost_sdk::testing::{TestAuth, TestRoom};
/// use serde_json::json;
///
/// // `Gate` verifies every frame as a token and greets the name claim.
/// let auth = TestAuth::tokens([
///     ("good", Ok(json!({ "sub": "u1", "name": "Alice" }))),
///     ("old", Err("token expired")),
/// ]);
/// let mut room = TestRoom::<Gate>::builder().auth(auth).build();
/// let alice = room.connect();
/// room.message(alice, "good");
/// room.message(alice, "old");
/// room.message(alice, "forged");
/// assert_eq!(room.take_sent(alice), ["hello Alice", "token expired", "invalid token"]);
/// ```
pub struct TestAuth {
    /// `None`: no key configured.
    verifier: Option<Box<Verifier>>,
}

type Verifier = dyn FnMut(&str) -> Result<Value, String>;

impl TestAuth {
    /// No key configured, the default: [`Room::auth_enabled`] is false and
    /// [`Room::verify_token`] fails with [`NO_TOKEN_KEY`].
    pub fn disabled() -> Self {
        Self { verifier: None }
    }

    /// A key is configured and `verify` decides each token: the claims, or
    /// the reason it is refused.
    ///
    /// ```
    /// use roomhost_sdk::testing::TestAuth;
    /// use serde_json::json;
    ///
    /// // Accepts any token of the form "user:NAME".
    /// let auth = TestAuth::from_fn(|token| match token.strip_prefix("user:") {
    ///     Some(name) => Ok(json!({ "sub": name, "name": name })),
    ///     None => Err("invalid signature".to_owned()),
    /// });
    /// ```
    pub fn from_fn(verify: impl FnMut(&str) -> Result<Value, String> + 'static) -> Self {
        Self {
            verifier: Some(Box::new(verify)),
        }
    }

    /// A key is configured and a table decides: each token maps to its
    /// claims or the reason it is refused; tokens not in the table are
    /// refused with [`UNKNOWN_TOKEN`].
    pub fn tokens<T, R>(table: impl IntoIterator<Item = (T, Result<Value, R>)>) -> Self
    where
        T: Into<String>,
        R: Into<String>,
    {
        let table: HashMap<String, Result<Value, String>> = table
            .into_iter()
            .map(|(token, verdict)| (token.into(), verdict.map_err(Into::into)))
            .collect();
        Self::from_fn(move |token| {
            table
                .get(token)
                .cloned()
                .unwrap_or_else(|| Err(UNKNOWN_TOKEN.to_owned()))
        })
    }

    /// Whether a key is configured.
    pub fn is_enabled(&self) -> bool {
        self.verifier.is_some()
    }
}

impl Default for TestAuth {
    fn default() -> Self {
        Self::disabled()
    }
}

impl fmt::Debug for TestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestAuth")
            .field("enabled", &self.is_enabled())
            .finish_non_exhaustive()
    }
}

/// A transfer the service made with [`Room::transfer`], as returned by
/// [`TestRoom::take_transfers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The client that was moved.
    pub client: ClientId,
    /// The target room; `None` is the lobby.
    pub to: Option<String>,
    /// The hand-off bytes.
    pub data: Vec<u8>,
    /// Whether the target was to be created if missing.
    pub create: bool,
}

/// The harness [`Backend`]: records what the service does, applying the
/// host's rules.
struct Recorder {
    room_id: String,
    lobby: bool,
    now_ms: u64,
    rng: u64,
    next_client: ClientId,
    clients: BTreeSet<ClientId>,
    /// Clients known to have left the service: sends to them are dropped.
    gone: HashSet<ClientId>,
    outbox: Vec<(ClientId, Message)>,
    closed: Vec<(ClientId, u16, String)>,
    /// Clients closed or transferred during the current callback, awaiting
    /// their `disconnect`.
    departures: VecDeque<(ClientId, DisconnectReason)>,
    transfers: Vec<Transfer>,
    directory: Vec<RoomEntry>,
    in_init: bool,
    /// The client whose `connect` is running: a transfer of it waits in
    /// `deferred_transfer` until it is accepted.
    connecting: Option<ClientId>,
    deferred_transfer: Option<Transfer>,
    /// Clients whose connection is lost, waiting to reconnect.
    suspended: HashSet<ClientId>,
    /// Reconnections so far (numbers the tokens).
    resumes: u64,
    /// Whether clients get resume tokens (`RoomService::RECONNECT_GRACE`).
    resumable: bool,
    root_taken: bool,
    served_root: bool,
    /// Whether the service declares a lobby (`RoomService::LOBBY`).
    service_has_lobby: bool,
    /// Pending timers: id -> (deadline, order set).
    timers: HashMap<TimerId, (u64, u64)>,
    next_timer_seq: u64,
    info: Option<Value>,
    logs: Vec<(LogLevel, String)>,
    auth: TestAuth,
    verified_tokens: Vec<String>,
    /// The configuration text `init` got (a reload passes it again).
    config: String,
    /// How each connected client connected, without its hand-off (a reload
    /// without snapshot replays it). Kept in step with `clients`: see
    /// [`Recorder::remove_client`].
    client_infos: HashMap<ClientId, ClientInfo>,
    /// State the service attached to its clients (`Room::set_client_state`).
    client_states: HashMap<ClientId, Vec<u8>>,
    /// The room's storage. Every write is committed when it is made: the
    /// harness has no crash between an event and its commit.
    store: RoomStore,
}

impl Recorder {
    fn new(room_id: String, lobby: bool, now_ms: u64, seed: u64) -> Self {
        Self {
            room_id,
            lobby,
            now_ms,
            rng: seed,
            next_client: 1,
            clients: BTreeSet::new(),
            gone: HashSet::new(),
            outbox: Vec::new(),
            closed: Vec::new(),
            departures: VecDeque::new(),
            transfers: Vec::new(),
            directory: Vec::new(),
            in_init: false,
            connecting: None,
            deferred_transfer: None,
            suspended: HashSet::new(),
            resumes: 0,
            resumable: false,
            root_taken: false,
            served_root: false,
            service_has_lobby: false,
            timers: HashMap::new(),
            next_timer_seq: 0,
            info: None,
            logs: Vec::new(),
            auth: TestAuth::disabled(),
            verified_tokens: Vec::new(),
            config: "null".to_owned(),
            client_infos: HashMap::new(),
            client_states: HashMap::new(),
            store: RoomStore::new(StorageLimits::default()),
        }
    }

    /// Removes a client from the room, with what the harness remembers of
    /// how it connected; whether it was in the room.
    fn remove_client(&mut self, client: ClientId) -> bool {
        self.client_infos.remove(&client);
        self.client_states.remove(&client);
        self.clients.remove(&client)
    }

    /// Whether a frame is small enough to send, as the host decides.
    fn frame_fits(msg: &Message) -> Result<(), String> {
        checks::frame_fits(msg.len(), MAX_PLUGIN_FRAME_BYTES).map_err(|error| error.to_string())
    }

    /// The earliest timer due at or before `limit`, as `(id, deadline)`.
    fn next_due(&self, limit: u64) -> Option<(TimerId, u64)> {
        self.timers
            .iter()
            .filter(|(_, (due, _))| *due <= limit)
            .min_by_key(|(_, due_and_seq)| **due_and_seq)
            .map(|(&id, &(due, _))| (id, due))
    }
}

impl Backend for Recorder {
    fn send(&mut self, client: ClientId, msg: Message) -> Result<(), String> {
        Self::frame_fits(&msg)?;
        if !self.gone.contains(&client) {
            self.outbox.push((client, msg));
        }
        Ok(())
    }

    fn broadcast(&mut self, msg: Message, except: &[ClientId]) -> Result<(), String> {
        Self::frame_fits(&msg)?;
        for &client in &self.clients {
            if !except.contains(&client) {
                self.outbox.push((client, msg.clone()));
            }
        }
        Ok(())
    }

    fn close(&mut self, client: ClientId, code: u16, reason: &str) {
        let code = if close::is_plugin_code(code) {
            code
        } else {
            close::NORMAL
        };
        if self.remove_client(client) {
            self.closed.push((client, code, reason.to_owned()));
            self.gone.insert(client);
            self.departures
                .push_back((client, DisconnectReason::Kicked));
        }
    }

    fn set_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String> {
        checks::timer_fits(self.timers.contains_key(&id), self.timers.len(), MAX_TIMERS)
            .map_err(|error| error.to_string())?;
        let delay_ms = u64::try_from(checks::timer_delay(delay_ms).as_millis()).unwrap_or(u64::MAX);
        let seq = self.next_timer_seq;
        self.next_timer_seq += 1;
        self.timers
            .insert(id, (self.now_ms.saturating_add(delay_ms), seq));
        // As on the host: an ordinary timer replaces a durable one.
        self.store.clear_timer(id);
        Ok(())
    }

    fn cancel_timer(&mut self, id: TimerId) {
        self.timers.remove(&id);
        self.store.clear_timer(id);
    }

    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn random_u64(&mut self) -> u64 {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push((level, message.to_owned()));
    }

    fn set_info(&mut self, json: &str) -> Result<(), String> {
        checks::info_fits(json.len(), MAX_INFO_BYTES).map_err(|error| error.to_string())?;
        let value = serde_json::from_str(json)
            .map_err(|err| InfoRefusal::NotJson(err.to_string()).to_string())?;
        self.info = Some(value);
        Ok(())
    }

    fn transfer(
        &mut self,
        client: ClientId,
        to: Option<&str>,
        data: &[u8],
        create: bool,
    ) -> Result<(), TransferError> {
        let source = TransferSource {
            room_id: &self.room_id,
            lobby: self.lobby,
            service_has_lobby: self.service_has_lobby,
            max_room_id_bytes: MAX_ROOM_ID_BYTES,
        };
        let directory = &self.directory;
        checks::transfer(source, self.clients.contains(&client), to, create, |id| {
            directory.iter().any(|room| room.room_id == id)
        })?;
        let transfer = Transfer {
            client,
            to: to.map(str::to_owned),
            data: data.to_vec(),
            create,
        };
        if self.connecting == Some(client) {
            // One move per client, as on the host.
            if self.deferred_transfer.is_some() {
                return Err(TransferError::NotAMember);
            }
            self.deferred_transfer = Some(transfer);
            return Ok(());
        }
        self.remove_client(client);
        self.departures
            .push_back((client, DisconnectReason::Transferred));
        self.transfers.push(transfer);
        Ok(())
    }

    fn clients(&mut self) -> Vec<ClientId> {
        self.clients.iter().copied().collect()
    }

    fn client_info(&mut self, client: ClientId) -> Option<ClientInfo> {
        self.client_infos.get(&client).cloned()
    }

    fn client_state(&mut self, client: ClientId) -> Option<Vec<u8>> {
        self.clients
            .contains(&client)
            .then(|| self.client_states.get(&client).cloned().unwrap_or_default())
    }

    fn set_client_state(
        &mut self,
        client: ClientId,
        state: Vec<u8>,
    ) -> Result<(), ClientStateRefusal> {
        checks::client_state_fits(
            self.clients.contains(&client),
            state.len(),
            MAX_CLIENT_STATE_BYTES,
        )?;
        self.client_states.insert(client, state);
        Ok(())
    }

    fn rooms(&mut self) -> Vec<RoomEntry> {
        self.directory.clone()
    }

    fn serve_root(&mut self) -> Result<(), String> {
        checks::may_serve_root(self.lobby, self.in_init).map_err(|error| error.to_string())?;
        if self.root_taken {
            return Err(checks::ServeRootRefusal::Taken.to_string());
        }
        self.served_root = true;
        Ok(())
    }

    fn auth_enabled(&mut self) -> bool {
        self.auth.verifier.is_some()
    }

    fn verify_token(&mut self, token: &str) -> Result<String, String> {
        self.verified_tokens.push(token.to_owned());
        match &mut self.auth.verifier {
            None => Err(NO_TOKEN_KEY.to_owned()),
            Some(verify) => verify(token).map(|claims| claims.to_string()),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.store.get(key).map(<[u8]>::to_vec)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StorageRefusal> {
        self.store.put(key, value)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_delete(&mut self, key: &[u8]) -> bool {
        self.store.delete(key)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_batch(&mut self, writes: Vec<Write>) -> Result<(), StorageRefusal> {
        self.store.apply(writes)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_list(
        &mut self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.store.list(prefix, start_after, limit)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_size(&mut self) -> u64 {
        u64::try_from(self.store.bytes()).unwrap_or(u64::MAX)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn set_durable_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String> {
        self.set_timer(id, delay_ms)?;
        let due = self.timers.get(&id).map_or(self.now_ms, |(due, _)| *due);
        self.store.set_timer(id, due);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! [`TestRoom::reload`] against the host's hot reload
    //! (`host/src/room/reload.rs`).

    use std::cell::{Cell, RefCell};

    use serde_json::json;

    use super::*;

    thread_local! {
        /// Whether the values created from now on are the new version.
        static NEW_VERSION: Cell<bool> = const { Cell::new(false) };
        /// What the next [`Snap`] restore does, in order.
        static ON_LOAD: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    fn old_version() {
        NEW_VERSION.set(false);
        ON_LOAD.take();
    }

    /// Without snapshot support: a reload restarts it. Once
    /// [`NEW_VERSION`] is set, its `connect` obeys the client's `replay`
    /// query parameter.
    #[derive(Default)]
    struct Fresh {
        events: Vec<String>,
    }

    impl RoomService for Fresh {
        fn init(&mut self, room: &mut Room<'_>, _: &InitInfo) -> Result<(), String> {
            self.events.push("init".to_owned());
            room.broadcast("init", &[]);
            Ok(())
        }

        fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
            self.events.push(format!("connect {}", client.id));
            room.broadcast(format!("{} joined", client.id), &[client.id]);
            if client.query_param("kick").is_some() {
                room.close(client.id, 4000, "kicked on arrival");
            }
            if !NEW_VERSION.get() {
                return Ok(());
            }
            match client.query_param("replay").as_deref() {
                Some("reject") => Err("not anymore".into()),
                Some("reject-long") => Err("é".repeat(100).into()),
                Some("close-reject") => {
                    room.close(client.id, 4000, "bye");
                    Err("closed".into())
                }
                Some("transfer") => {
                    let moved = room.transfer(client.id, Some("elsewhere"), b"", true);
                    room.send(client.id, format!("transferred: {}", moved.is_ok()));
                    Ok(())
                }
                _ => Ok(()),
            }
        }

        fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
            match message.as_text().unwrap_or_default() {
                "timer" => room.set_timer(1, Duration::from_secs(1)).unwrap(),
                "close" => room.close(client, 4000, "bye"),
                "transfer" => room.transfer(client, Some("elsewhere"), b"", true).unwrap(),
                other => panic!("unexpected message {other:?}"),
            }
        }

        fn disconnect(&mut self, _: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
            self.events.push(format!("disconnect {client} {reason:?}"));
        }

        fn timer(&mut self, _: &mut Room<'_>, timer: TimerId) {
            self.events.push(format!("timer {timer}"));
        }
    }

    impl Reloadable for Fresh {
        fn save(&self) -> Result<Option<Vec<u8>>, String> {
            Ok(None)
        }

        fn load(_: &mut Room<'_>, _: &InitInfo, _: &[u8]) -> Result<Self, String> {
            unreachable!("Fresh has no snapshot")
        }
    }

    /// With a snapshot (its count); its restore does what [`ON_LOAD`] says.
    #[derive(Default)]
    struct Snap {
        count: u64,
        /// Whether `serve_root` succeeded during the restore.
        root: Option<bool>,
        events: Vec<String>,
    }

    impl RoomService for Snap {
        fn message(&mut self, room: &mut Room<'_>, _: ClientId, message: Message) {
            match message.as_text().unwrap_or_default() {
                "+1" => self.count += 1,
                "info" => room.set_info(&json!({ "v": 1 })).unwrap(),
                "timer" => room.set_timer(1, Duration::from_secs(1)).unwrap(),
                other => panic!("unexpected message {other:?}"),
            }
        }

        fn disconnect(&mut self, _: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
            self.events.push(format!("disconnect {client} {reason:?}"));
        }
    }

    impl Reloadable for Snap {
        fn save(&self) -> Result<Option<Vec<u8>>, String> {
            Ok(Some(self.count.to_le_bytes().to_vec()))
        }

        fn load(room: &mut Room<'_>, _: &InitInfo, snapshot: &[u8]) -> Result<Self, String> {
            let count = u64::from_le_bytes(snapshot.try_into().unwrap());
            let mut restored = Snap {
                count,
                ..Snap::default()
            };
            for action in ON_LOAD.take() {
                match action {
                    "serve-root" => restored.root = Some(room.serve_root().is_ok()),
                    "info" => room.set_info(&json!({ "v": 2 })).unwrap(),
                    "timer" => room.set_timer(9, Duration::from_secs(5)).unwrap(),
                    "transfer 2" => room.transfer(2, Some("elsewhere"), b"", true).unwrap(),
                    "close 3" => room.close(3, 4000, "restore closed you"),
                    "fail" => return Err("bad snapshot".to_owned()),
                    other => panic!("unknown action {other:?}"),
                }
            }
            Ok(restored)
        }
    }

    #[test]
    fn restart_drops_the_old_timers() {
        old_version();
        let mut room = TestRoom::<Fresh>::new();
        let alice = room.connect();
        room.message(alice, "timer");
        assert_eq!(room.pending_timers(), [(1, Duration::from_secs(1))]);

        assert_eq!(room.reload(), Ok(Reload::Restarted));
        assert_eq!(room.pending_timers(), []);
        room.advance(Duration::from_secs(2));
        assert_eq!(room.service().events, ["init", "connect 1"]);
    }

    #[test]
    fn restart_replays_connect_with_the_client_connecting() {
        old_version();
        let mut room = TestRoom::<Fresh>::new();
        let alice = room.connect_with_query("replay=transfer");
        NEW_VERSION.set(true);

        assert_eq!(room.reload(), Ok(Reload::Restarted));
        // A transfer during the client's own connect waits for the accept,
        // then runs.
        assert_eq!(room.take_sent(alice), ["transferred: true"]);
        assert_eq!(room.take_transfers().len(), 1);
        assert!(room.clients().is_empty());
        assert_eq!(
            room.service().events,
            ["init", "connect 1", "disconnect 1 Transferred"]
        );
    }

    #[test]
    fn restart_connects_each_client_as_try_connect_does() {
        old_version();
        let mut room = TestRoom::<Fresh>::new();
        let alice = room.connect();
        let bob = room.connect_with_query("replay=close-reject");
        let carol = room.connect_with_query("replay=reject");
        let dave = room.connect();
        room.take_all();
        NEW_VERSION.set(true);

        assert_eq!(room.reload(), Ok(Reload::Restarted));
        // `init` ran with nobody in the room, and each client joined in
        // turn: a broadcast reaches only the clients replayed before.
        assert_eq!(
            room.take_all(),
            [
                (alice, Message::text("2 joined")),
                (alice, Message::text("3 joined")),
                (alice, Message::text("4 joined")),
            ]
        );
        assert_eq!(room.clients(), [alice, dave]);
        // Bob, closed by the service, is not closed again; Carol gets the
        // host's 1008.
        assert_eq!(
            room.closed(),
            [
                (bob, 4000, "bye".to_owned()),
                (carol, 1008, "rejected after reload: not anymore".to_owned()),
            ]
        );
        // Rejected clients get no `disconnect` and have left the service.
        assert_eq!(
            room.service().events,
            ["init", "connect 1", "connect 2", "connect 3", "connect 4"]
        );
        room.with_room(|_, room| {
            room.send(bob, "late");
            room.send(carol, "late");
        });
        assert_eq!(room.take_all(), []);

        // The same as a client connecting to the new version.
        let mut direct = TestRoom::<Fresh>::new();
        assert_eq!(
            direct.try_connect("replay=close-reject").unwrap_err(),
            "closed"
        );
        assert_eq!(direct.closed(), [(1, 4000, "bye".to_owned())]);
        assert_eq!(direct.service().events, ["init", "connect 1"]);
    }

    #[test]
    fn restart_rejection_reasons_are_bounded_like_close_reasons() {
        old_version();
        let mut room = TestRoom::<Fresh>::new();
        let alice = room.connect_with_query("replay=reject-long");
        NEW_VERSION.set(true);

        assert_eq!(room.reload(), Ok(Reload::Restarted));
        // 23 bytes of prefix, then 50 two-byte characters fit in 123.
        let reason = format!("rejected after reload: {}", "é".repeat(50));
        assert_eq!(room.closed(), [(alice, 1008, reason)]);
    }

    #[test]
    fn client_infos_follow_the_clients() {
        old_version();
        let mut room = TestRoom::<Fresh>::new();
        let clients: Vec<ClientId> = (0..4).map(|_| room.connect()).collect();
        room.disconnect(clients[0], DisconnectReason::Closed);
        room.message(clients[1], "close");
        room.message(clients[2], "transfer");
        let kicked = room.connect_with_query("kick");
        assert!(!room.is_connected(kicked));
        assert_eq!(room.try_connect("replay=reject"), Ok(6));

        let mut remembered: Vec<ClientId> = room.recorder.client_infos.keys().copied().collect();
        remembered.sort_unstable();
        assert_eq!(remembered, room.clients());
        assert_eq!(remembered, [clients[3], 6]);
    }

    #[test]
    fn restore_runs_inside_init() {
        old_version();
        let mut lobby = TestRoom::<Snap>::builder().lobby(true).build();
        assert!(!lobby.served_root());
        ON_LOAD.set(vec!["serve-root"]);

        assert_eq!(lobby.reload(), Ok(Reload::Restored));
        assert_eq!(lobby.service().root, Some(true));
        assert!(lobby.served_root());
        // Only during init.
        assert!(lobby.with_room(|_, room| room.serve_root().is_err()));
    }

    #[test]
    fn restore_keeps_clients_timers_and_info_unless_changed() {
        old_version();
        let mut room = TestRoom::<Snap>::new();
        let alice = room.connect();
        room.message(alice, "+1");
        room.message(alice, "info");
        room.message(alice, "timer");

        assert_eq!(room.reload(), Ok(Reload::Restored));
        assert_eq!(room.service().count, 1);
        assert_eq!(room.clients(), [alice]);
        assert_eq!(room.info(), Some(json!({ "v": 1 })));
        assert_eq!(room.pending_timers(), [(1, Duration::from_secs(1))]);

        ON_LOAD.set(vec!["info"]);
        assert_eq!(room.reload(), Ok(Reload::Restored));
        assert_eq!(room.info(), Some(json!({ "v": 2 })));
    }

    #[test]
    fn failed_restore_leaves_the_room_as_it_was() {
        old_version();
        let mut room = TestRoom::<Snap>::new();
        let alice = room.connect();
        let bob = room.connect();
        let carol = room.connect();
        room.message(alice, "+1");
        room.message(alice, "info");
        room.message(alice, "timer");
        ON_LOAD.set(vec!["info", "timer", "transfer 2", "close 3", "fail"]);

        assert_eq!(room.reload(), Err("bad snapshot".to_owned()));
        assert_eq!(room.service().count, 1);
        assert_eq!(room.info(), Some(json!({ "v": 1 })));
        assert_eq!(room.pending_timers(), [(1, Duration::from_secs(1))]);
        // The transfer never happened; the close did, and the old value
        // hears of it as the connection reports it.
        assert_eq!(room.take_transfers(), []);
        assert_eq!(room.clients(), [alice, bob]);
        assert_eq!(
            room.closed(),
            [(carol, 4000, "restore closed you".to_owned())]
        );
        assert_eq!(room.service().events, ["disconnect 3 Closed"]);
        let mut remembered: Vec<ClientId> = room.recorder.client_infos.keys().copied().collect();
        remembered.sort_unstable();
        assert_eq!(remembered, [alice, bob]);
    }
}
