//! A native test harness: run a [`RoomService`] with plain `cargo test`, no
//! wasm and no host.
//!
//! [`TestRoom`] plays the host. It creates the service, calls its callbacks
//! when the test connects clients, sends messages or moves the fake clock,
//! and records everything the service does through its [`Room`]: frames per
//! client, closes, timers, logs and listing metadata. It applies the host's
//! rules (see the [crate documentation](crate#host-semantics)) so that a
//! service tested here behaves the same when deployed.
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
//!     fn connect(&mut self, room: &mut Room<'_>, _: &roomhost_sdk::ClientInfo) -> Result<(), String> {
//!         room.set_timer(0, Duration::from_secs(1)).map_err(|e| e.to_string())
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
//! clients); and the limits are the host's defaults from [`crate::limits`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::limits::{
    MAX_FRAME_BYTES, MAX_INFO_BYTES, MAX_TIMER_DELAY, MAX_TIMERS, is_valid_close_code,
};
use crate::room::{Backend, duration_to_ms};
use crate::{
    ClientId, ClientInfo, DisconnectReason, InitInfo, LogLevel, Message, Room, RoomService, TimerId,
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
    room_id: String,
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

    /// Configures a room before creating it: id, raw configuration text,
    /// restored state, clock start and random seed.
    pub fn builder() -> TestRoomBuilder<S> {
        TestRoomBuilder {
            room_id: "test".to_owned(),
            config: "null".to_owned(),
            restored: None,
            start_ms: DEFAULT_START_MS,
            seed: DEFAULT_SEED,
            service: PhantomData,
        }
    }

    /// The room's id.
    pub fn room_id(&self) -> &str {
        &self.room_id
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
    pub fn try_connect(&mut self, query: &str) -> Result<ClientId, String> {
        self.try_connect_with(|client| client.query = query.to_owned())
    }

    /// Like [`TestRoom::try_connect`], with every [`ClientInfo`] field under
    /// the test's control: `customize` receives the info the harness would
    /// send (path `/ws/test/ROOM`, empty query, no identity, no hand-off)
    /// and may change anything except the id.
    ///
    /// ```
    /// # use roomhost_sdk::{ClientInfo, Room, RoomService, room_service};
    /// # #[derive(Default)] #[room_service] struct Members;
    /// # impl RoomService for Members {
    /// #     fn connect(&mut self, _: &mut Room<'_>, c: &ClientInfo) -> Result<(), String> {
    /// #         c.identity.as_ref().map(|_| ()).ok_or_else(|| "sign in first".to_owned())
    /// #     }
    /// # }
    /// use roomhost_sdk::testing::TestRoom;
    ///
    /// let mut room = TestRoom::<Members>::new();
    /// assert_eq!(room.try_connect(""), Err("sign in first".to_owned()));
    /// let alice = room.try_connect_with(|c| c.identity = Some("alice".into()));
    /// assert!(alice.is_ok());
    /// ```
    pub fn try_connect_with(
        &mut self,
        customize: impl FnOnce(&mut ClientInfo),
    ) -> Result<ClientId, String> {
        let id = self.recorder.next_client;
        self.recorder.next_client += 1;
        let mut client = client_info(id, "");
        client.path = format!("/ws/test/{}", self.room_id);
        customize(&mut client);
        client.id = id;

        self.recorder.clients.insert(id);
        let result = self.run(|service, room| service.connect(room, &client));
        if result.is_err() {
            // Frames already sent to it stay: the host delivers them before
            // the 1008 close.
            self.recorder.clients.remove(&id);
            self.recorder.kicked.retain(|kicked| *kicked != id);
        }
        self.flush_kicked();
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
        self.flush_kicked();
    }

    /// Removes `client` from the room and tells the service why.
    ///
    /// # Panics
    ///
    /// Panics if `client` is not connected.
    #[track_caller]
    pub fn disconnect(&mut self, client: ClientId, reason: DisconnectReason) {
        self.assert_connected(client, "disconnect");
        self.recorder.clients.remove(&client);
        self.run(|service, room| service.disconnect(room, client, reason));
        self.flush_kicked();
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
            self.recorder.now_ms = self.recorder.now_ms.max(due);
            self.run(|service, room| service.timer(room, id));
            self.flush_kicked();
        }
        self.recorder.now_ms = target;
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
    /// (broadcasts included).
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

    /// Runs `f` with the service and a [`Room`] as if inside a callback, for
    /// testing helper methods of the service directly. Clients closed by `f`
    /// are disconnected afterwards as usual.
    pub fn with_room<R>(&mut self, f: impl FnOnce(&mut S, &mut Room<'_>) -> R) -> R {
        let result = self.run(f);
        self.flush_kicked();
        result
    }

    fn run<R>(&mut self, f: impl FnOnce(&mut S, &mut Room<'_>) -> R) -> R {
        let mut room = Room::new(&self.room_id, &mut self.recorder);
        f(&mut self.service, &mut room)
    }

    /// Delivers `disconnect(client, Kicked)` for every client closed by the
    /// service, including those closed by these very callbacks.
    fn flush_kicked(&mut self) {
        while let Some(client) = self.recorder.kicked.pop_front() {
            self.run(|service, room| service.disconnect(room, client, DisconnectReason::Kicked));
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

impl<S: RoomService> Default for TestRoom<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: RoomService + fmt::Debug> fmt::Debug for TestRoom<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRoom")
            .field("room_id", &self.room_id)
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
    room_id: String,
    config: String,
    restored: Option<Vec<u8>>,
    start_ms: u64,
    seed: u64,
    service: PhantomData<fn() -> S>,
}

impl<S: RoomService> TestRoomBuilder<S> {
    /// The room id (default `test`).
    pub fn room_id(mut self, room_id: impl Into<String>) -> Self {
        self.room_id = room_id.into();
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

    /// Creates the service with `Default` and calls its `init`.
    pub fn build(self) -> TestRoom<S> {
        let info = InitInfo {
            room_id: self.room_id,
            config: self.config,
            restored: self.restored,
        };
        let mut room = TestRoom {
            service: S::default(),
            room_id: info.room_id.clone(),
            recorder: Recorder::new(self.start_ms, self.seed),
        };
        room.run(|service, ctx| service.init(ctx, &info));
        room.flush_kicked();
        room
    }
}

impl<S> fmt::Debug for TestRoomBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRoomBuilder")
            .field("room_id", &self.room_id)
            .field("config", &self.config)
            .field("restored", &self.restored)
            .field("start_ms", &self.start_ms)
            .field("seed", &self.seed)
            .finish()
    }
}

/// A [`ClientInfo`] with `id` and `query`, path `/ws/test/test`, no identity
/// and no hand-off: for unit-testing code that takes a `ClientInfo`.
pub fn client_info(id: ClientId, query: &str) -> ClientInfo {
    ClientInfo {
        id,
        path: "/ws/test/test".to_owned(),
        query: query.to_owned(),
        identity: None,
        handoff: None,
    }
}

/// An [`InitInfo`] with `room_id` and raw `config` text and no restored
/// state: for unit-testing code that takes an `InitInfo`.
pub fn init_info(room_id: &str, config: &str) -> InitInfo {
    InitInfo {
        room_id: room_id.to_owned(),
        config: config.to_owned(),
        restored: None,
    }
}

/// The harness [`Backend`]: records what the service does, applying the
/// host's rules.
struct Recorder {
    now_ms: u64,
    rng: u64,
    next_client: ClientId,
    clients: BTreeSet<ClientId>,
    outbox: Vec<(ClientId, Message)>,
    closed: Vec<(ClientId, u16, String)>,
    kicked: VecDeque<ClientId>,
    /// Pending timers: id -> (deadline, order set).
    timers: HashMap<TimerId, (u64, u64)>,
    next_timer_seq: u64,
    info: Option<Value>,
    logs: Vec<(LogLevel, String)>,
}

impl Recorder {
    fn new(now_ms: u64, seed: u64) -> Self {
        Self {
            now_ms,
            rng: seed,
            next_client: 1,
            clients: BTreeSet::new(),
            outbox: Vec::new(),
            closed: Vec::new(),
            kicked: VecDeque::new(),
            timers: HashMap::new(),
            next_timer_seq: 0,
            info: None,
            logs: Vec::new(),
        }
    }

    /// Whether a frame is small enough to send; an oversized one is dropped
    /// and noted in the logs, as the host does.
    fn frame_fits(&mut self, msg: &Message) -> bool {
        if msg.len() <= MAX_FRAME_BYTES {
            return true;
        }
        self.logs.push((
            LogLevel::Warn,
            format!(
                "[harness] dropped a {}-byte frame (the limit is {MAX_FRAME_BYTES})",
                msg.len()
            ),
        ));
        false
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
    fn send(&mut self, client: ClientId, msg: Message) {
        if self.clients.contains(&client) && self.frame_fits(&msg) {
            self.outbox.push((client, msg));
        }
    }

    fn broadcast(&mut self, msg: Message, except: &[ClientId]) {
        if !self.frame_fits(&msg) {
            return;
        }
        for &client in &self.clients {
            if !except.contains(&client) {
                self.outbox.push((client, msg.clone()));
            }
        }
    }

    fn close(&mut self, client: ClientId, code: u16, reason: &str) {
        let code = if is_valid_close_code(code) {
            code
        } else {
            1000
        };
        if self.clients.remove(&client) {
            self.closed.push((client, code, reason.to_owned()));
            self.kicked.push_back(client);
        }
    }

    fn set_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String> {
        if !self.timers.contains_key(&id) && self.timers.len() >= MAX_TIMERS {
            return Err(format!(
                "too many pending timers (the limit is {MAX_TIMERS} per room)"
            ));
        }
        let delay_ms = delay_ms.min(duration_to_ms(MAX_TIMER_DELAY));
        let seq = self.next_timer_seq;
        self.next_timer_seq += 1;
        self.timers
            .insert(id, (self.now_ms.saturating_add(delay_ms), seq));
        Ok(())
    }

    fn cancel_timer(&mut self, id: TimerId) {
        self.timers.remove(&id);
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
        if json.len() > MAX_INFO_BYTES {
            return Err(format!(
                "info is {} bytes; the limit is {MAX_INFO_BYTES}",
                json.len()
            ));
        }
        let value =
            serde_json::from_str(json).map_err(|err| format!("info is not valid JSON: {err}"))?;
        self.info = Some(value);
        Ok(())
    }
}
