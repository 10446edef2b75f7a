//! The room context handed to every callback: [`Room`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ClientId, ClientInfo, Message, RoomEntry};

pub use roomhost_rules::checks::ClientStateRefusal;
/// Why [`Room::transfer`] refused to move a client; nothing happened. Match
/// on it rather than on its message.
///
/// ```
/// # use roomhost_sdk::{ClientId, Room, TransferError};
/// fn join_game(room: &mut Room<'_>, player: ClientId, game: &str) -> &'static str {
///     match room.transfer(player, Some(game), b"", false) {
///         Ok(()) => "joining",
///         Err(TransferError::NoSuchRoom) => "no such game",
///         Err(_) => "cannot join",
///     }
/// }
/// ```
pub use roomhost_rules::checks::TransferRefusal as TransferError;
#[cfg(not(target_arch = "wasm32"))]
use roomhost_rules::storage::{StorageRefusal, Write};

/// Identifies a timer. Ids are chosen by the service; setting an id that is
/// already pending replaces that timer.
pub type TimerId = u64;

/// Severity of a [`Room::log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the service handled.
    Warn,
    /// Something failed.
    Error,
}

/// Where a [`Room`]'s effects go: the `host` imports in wasm, a recorder in
/// the test harness, the host's room state in the native benchmark baseline
/// (`bench/baseline`, through `__private`). Not public API.
///
/// [`Room`] forwards each call as is, after the conversions it documents
/// (delays in whole milliseconds, close reasons truncated, info serialized
/// to JSON). An implementation applies the host's rules as documented on
/// the matching [`Room`] method; a method returning `Err` has done nothing,
/// and its message is the host's explanation, shown to the service.
/// Effects that need another callback (the `disconnect` after a close or a
/// transfer) are the driver's to deliver once the current callback returns,
/// never from inside a `Backend` call.
pub trait Backend {
    /// Queues `msg` for `client`, wherever it is in the service. Silently
    /// drops a frame to a client that has left the service. Fails, queuing
    /// nothing, when the frame is larger than the host's plugin frame limit.
    fn send(&mut self, client: ClientId, msg: Message) -> Result<(), String>;
    /// Queues `msg` for every member of this room not listed in `except`
    /// (which may be unsorted or name non-members). Fails like
    /// [`Backend::send`], queuing nothing, for an oversized frame.
    fn broadcast(&mut self, msg: Message, except: &[ClientId]) -> Result<(), String>;
    /// Closes member `client` with `code` (replaced with 1000 unless it is
    /// a valid plugin code) and `reason` (already truncated by [`Room`]).
    /// The client stops being a member at once; non-members are ignored.
    fn close(&mut self, client: ClientId, code: u16, reason: &str);
    /// Arms timer `id` to fire after `delay_ms` (clamped to the host's
    /// maximum delay), replacing a pending timer with that id. Fails when
    /// `id` is new and the room already holds the maximum number of timers.
    fn set_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String>;
    /// Disarms timer `id`; unknown ids are ignored.
    fn cancel_timer(&mut self, id: TimerId);
    /// The current time, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// 64 random bits.
    fn random_u64(&mut self) -> u64;
    /// Writes `message` to the host's log at `level`.
    fn log(&mut self, level: LogLevel, message: &str);
    /// Replaces the room's listing metadata with `json`, a serialized JSON
    /// value. Fails when it is larger than the host's info limit or not
    /// valid JSON.
    fn set_info(&mut self, json: &str) -> Result<(), String>;
    /// Moves member `client` to room `to` (`None`: the lobby) with hand-off
    /// `data`, creating the room if `create`. On success the client stops
    /// being a member at once, unless its `connect` is running: then the
    /// move waits for it to be accepted. Fails as
    /// `roomhost_rules::checks::transfer` decides.
    fn transfer(
        &mut self,
        client: ClientId,
        to: Option<&str>,
        data: &[u8],
        create: bool,
    ) -> Result<(), TransferError>;
    /// This room's members, in ascending id order.
    fn clients(&mut self) -> Vec<ClientId>;
    /// How member `client` connected; `None` for non-members.
    fn client_info(&mut self, client: ClientId) -> Option<ClientInfo>;
    /// The state attached to member `client` (empty until set); `None` for
    /// non-members.
    fn client_state(&mut self, client: ClientId) -> Option<Vec<u8>>;
    /// Attaches `state` to member `client`. Fails as
    /// `roomhost_rules::checks::client_state_fits` decides.
    fn set_client_state(
        &mut self,
        client: ClientId,
        state: Vec<u8>,
    ) -> Result<(), ClientStateRefusal>;
    /// The service's live rooms, the lobby excluded, in no particular order.
    fn rooms(&mut self) -> Vec<RoomEntry>;
    /// Claims the server root for this service. Fails unless this is the
    /// lobby and its `init` (which includes a restore from a snapshot) is
    /// running, or when another service holds the root.
    fn serve_root(&mut self) -> Result<(), String>;
    /// Whether the host has a token key configured.
    fn auth_enabled(&mut self) -> bool;
    /// Verifies `token` with the host's key: its claims as JSON object
    /// text, or why it is refused (including when no key is configured).
    fn verify_token(&mut self, token: &str) -> Result<String, String>;
    // Storage: in wasm, `Storage` calls the `storage` imports directly, so
    // a plugin that never uses storage does not import it (a trait object
    // would reference every method, and the host holds a storage-using
    // room's output until each commit).
    /// The value stored under `key`, this event's writes included.
    #[cfg(not(target_arch = "wasm32"))]
    fn storage_get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    /// Stores `value` under `key`, as `roomhost_rules::storage::RoomStore`
    /// decides.
    #[cfg(not(target_arch = "wasm32"))]
    fn storage_put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StorageRefusal>;
    /// Removes `key`; whether it was there.
    #[cfg(not(target_arch = "wasm32"))]
    fn storage_delete(&mut self, key: &[u8]) -> bool;
    /// Applies `writes` all or none, as `RoomStore::apply` decides.
    #[cfg(not(target_arch = "wasm32"))]
    fn storage_batch(&mut self, writes: Vec<Write>) -> Result<(), StorageRefusal>;
    /// A page of entries, as `RoomStore::list` gives it.
    #[cfg(not(target_arch = "wasm32"))]
    fn storage_list(
        &mut self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// The bytes the room stores.
    #[cfg(not(target_arch = "wasm32"))]
    fn storage_size(&mut self) -> u64;
    /// Arms timer `id` like [`Backend::set_timer`] and records it as
    /// durable, to be committed with the event's writes.
    #[cfg(not(target_arch = "wasm32"))]
    fn set_durable_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String>;
}

/// The room a callback runs in: send frames, close clients, set timers, read
/// the clock, log, publish listing metadata, move clients between rooms
/// through the service's directory, and verify tokens with the host's key.
///
/// A `Room` only exists for the duration of one callback. Everything it does
/// is queued by the host and takes effect in call order; nothing blocks on a
/// socket. Outside wasm (in [`testing::TestRoom`](crate::testing::TestRoom))
/// the same calls are recorded instead.
pub struct Room<'a> {
    room_id: &'a str,
    lobby: bool,
    backend: &'a mut dyn Backend,
}

impl<'a> Room<'a> {
    pub(crate) fn new(room_id: &'a str, lobby: bool, backend: &'a mut dyn Backend) -> Self {
        Self {
            room_id,
            lobby,
            backend,
        }
    }

    /// Where this room's effects go, for the other modules' wrappers.
    pub(crate) fn backend_mut(&mut self) -> &mut dyn Backend {
        &mut *self.backend
    }

    /// The room's id as it appears in the URL (empty for the lobby).
    pub fn room_id(&self) -> &str {
        self.room_id
    }

    /// Whether this instance is the service's lobby (see
    /// [`InitInfo::lobby`](crate::InitInfo::lobby)).
    pub fn is_lobby(&self) -> bool {
        self.lobby
    }

    /// Sends a frame to one client of the service: usually a client of this
    /// room, but any client id works, wherever that client is now (another
    /// room or the lobby). The lobby uses this, for example, to push room
    /// lists to clients it keeps. A client that has left the service is
    /// silently ignored.
    ///
    /// A frame larger than the host's plugin frame limit
    /// ([`MAX_PLUGIN_FRAME_BYTES`](crate::limits::MAX_PLUGIN_FRAME_BYTES), 16 MiB
    /// by default) is not sent, and the error is logged at warn level. Use
    /// [`Room::try_send`] to handle it, for frames whose size the service
    /// does not bound itself.
    pub fn send(&mut self, client: ClientId, msg: impl Into<Message>) {
        if let Err(error) = self.try_send(client, msg) {
            self.warn(&error.to_string());
        }
    }

    /// [`Room::send`], returning the host's error for a frame larger than
    /// its plugin frame limit instead of logging it. Nothing is sent then.
    ///
    /// ```
    /// # use roomhost_sdk::{ClientId, Room};
    /// fn send_document(room: &mut Room<'_>, client: ClientId, document: Vec<u8>) {
    ///     if let Err(error) = room.try_send(client, document) {
    ///         // Split it, or tell the client it is too large.
    ///         room.warn(&format!("cannot send the document: {error}"));
    ///     }
    /// }
    /// ```
    pub fn try_send(&mut self, client: ClientId, msg: impl Into<Message>) -> Result<(), SendError> {
        self.backend
            .send(client, msg.into())
            .map_err(|message| SendError { message })
    }

    /// Sends a frame to every connected client of this room except those in
    /// `except` (pass `&[]` to reach everyone). A frame too large to send is
    /// logged as for [`Room::send`]; [`Room::try_broadcast`] returns the
    /// error instead.
    pub fn broadcast(&mut self, msg: impl Into<Message>, except: &[ClientId]) {
        if let Err(error) = self.try_broadcast(msg, except) {
            self.warn(&error.to_string());
        }
    }

    /// [`Room::broadcast`], returning the host's error for a frame larger
    /// than its plugin frame limit. Nothing is sent to anyone then.
    pub fn try_broadcast(
        &mut self,
        msg: impl Into<Message>,
        except: &[ClientId],
    ) -> Result<(), SendError> {
        self.backend
            .broadcast(msg.into(), except)
            .map_err(|message| SendError { message })
    }

    /// Closes a client's connection with a WebSocket close `code` and a
    /// `reason`.
    ///
    /// `code` must be 1000 or in `3000..=4999` (see
    /// [`limits::is_valid_close_code`](crate::limits::is_valid_close_code));
    /// the host replaces any other code with 1000. `reason` is truncated to
    /// [`MAX_CLOSE_REASON_BYTES`](crate::limits::MAX_CLOSE_REASON_BYTES).
    /// Frames already sent to the client are delivered before the close; it
    /// receives nothing sent after this call, and the room receives
    /// [`disconnect(client, Kicked)`](crate::RoomService::disconnect) after the
    /// current callback returns. Unknown clients are ignored.
    pub fn close(&mut self, client: ClientId, code: u16, reason: &str) {
        self.backend.close(
            client,
            code,
            truncate(reason, crate::limits::MAX_CLOSE_REASON_BYTES),
        );
    }

    /// Schedules [`RoomService::timer(id)`](crate::RoomService::timer) after
    /// `delay` (rounded up to whole milliseconds, at most
    /// [`MAX_TIMER_DELAY`](crate::limits::MAX_TIMER_DELAY)), replacing a
    /// pending timer with the same id.
    ///
    /// Fails when the room already holds
    /// [`MAX_TIMERS`](crate::limits::MAX_TIMERS) other pending timers. A room
    /// with pending timers stays alive without clients.
    pub fn set_timer(&mut self, id: TimerId, delay: Duration) -> Result<(), TimerError> {
        self.backend
            .set_timer(id, duration_to_ms(delay))
            .map_err(TimerError::from_host)
    }

    /// Cancels a pending timer; unknown ids are ignored.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.backend.cancel_timer(id);
    }

    /// Wall-clock time in milliseconds since the Unix epoch (a fake clock in
    /// the test harness).
    pub fn now_ms(&self) -> u64 {
        self.backend.now_ms()
    }

    /// 64 random bits from the host's cryptographically secure generator
    /// (a seeded, deterministic generator in the test harness).
    pub fn random_u64(&mut self) -> u64 {
        self.backend.random_u64()
    }

    /// Writes a line to the host's log, tagged with the room.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.backend.log(level, message);
    }

    /// Logs at [`LogLevel::Debug`].
    pub fn debug(&mut self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    /// Logs at [`LogLevel::Info`].
    pub fn info(&mut self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at [`LogLevel::Warn`].
    pub fn warn(&mut self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at [`LogLevel::Error`].
    pub fn error(&mut self, message: &str) {
        self.log(LogLevel::Error, message);
    }

    /// Sets this room's listing metadata, shown by the host's `GET /rooms`.
    ///
    /// `info` is serialized to JSON; the host rejects text larger than
    /// [`MAX_INFO_BYTES`](crate::limits::MAX_INFO_BYTES).
    ///
    /// ```
    /// # use roomhost_sdk::{Room, InfoError};
    /// fn publish(room: &mut Room<'_>, players: usize) -> Result<(), InfoError> {
    ///     room.set_info(&serde_json::json!({ "players": players }))
    /// }
    /// ```
    pub fn set_info<T: Serialize + ?Sized>(&mut self, info: &T) -> Result<(), InfoError> {
        let json = serde_json::to_string(info).map_err(InfoError::Serialize)?;
        self.backend.set_info(&json).map_err(InfoError::Rejected)
    }

    /// Moves `client`, a client of this room, to room `to` of the same
    /// service (`None`: the lobby), handing over `data`. With `create`, the
    /// room is created if it does not exist; without, a missing room is an
    /// error.
    ///
    /// The client leaves this room at once: broadcasts no longer reach it
    /// (though [`send`](Room::send) still does, as it reaches any client of
    /// the service). After the current callback this room receives
    /// [`disconnect(client, Transferred)`](crate::RoomService::disconnect);
    /// the target receives [`connect`](crate::RoomService::connect) with
    /// [`ClientInfo::handoff`](crate::ClientInfo::handoff) set to a
    /// [`Handoff`](crate::Handoff) with `from_room` naming this room (`None`
    /// from the lobby) and `data`. Frames the client sends meanwhile go to
    /// the target, in order. If the target rejects the client (or was
    /// `create: false` and ended in the meantime), the client comes back here
    /// through `connect`, with `handoff.rejected` set to the reason,
    /// `from_room` naming the target and the original `data`.
    ///
    /// Fails with a [`TransferError`], and nothing happens, when `client`
    /// is not in this room, the target is this room (including the lobby
    /// transferring to the lobby), `to` is not a valid room id (empty or
    /// longer than [`MAX_ROOM_ID_BYTES`](crate::limits::MAX_ROOM_ID_BYTES)),
    /// `create` is false and the room does not exist, or `to` is `None` and
    /// the service has no lobby.
    ///
    /// Called during the client's own
    /// [`connect`](crate::RoomService::connect), the transfer waits: it runs
    /// once `connect` accepts the client (this room then gets `connect`'s
    /// result first, and `disconnect(client, Transferred)` after), and is
    /// dropped if `connect` rejects it. A lobby that routes clients by their
    /// URL can so move them without an extra round trip.
    ///
    /// ```
    /// # use roomhost_sdk::{ClientId, Room, TransferError};
    /// fn start_game(room: &mut Room<'_>, player: ClientId, game: &str) -> Result<(), TransferError> {
    ///     room.transfer(player, Some(game), b"player", true)
    /// }
    /// ```
    pub fn transfer(
        &mut self,
        client: ClientId,
        to: Option<&str>,
        data: &[u8],
        create: bool,
    ) -> Result<(), TransferError> {
        self.backend.transfer(client, to, data, create)
    }

    /// [`Room::transfer`] to room `to`, creating it if `create`.
    pub fn transfer_to_room(
        &mut self,
        client: ClientId,
        to: &str,
        data: &[u8],
        create: bool,
    ) -> Result<(), TransferError> {
        self.transfer(client, Some(to), data, create)
    }

    /// [`Room::transfer`] to the service's lobby (created if it is not
    /// running yet).
    pub fn transfer_to_lobby(
        &mut self,
        client: ClientId,
        data: &[u8],
    ) -> Result<(), TransferError> {
        self.transfer(client, None, data, true)
    }

    /// The service's live rooms (the lobby excluded), in no particular
    /// order. A room appears once it has been created, which for a room
    /// created by [`Room::transfer`] is after the transfer completed, not
    /// when `transfer` returns.
    pub fn rooms(&mut self) -> Vec<RoomEntry> {
        self.backend.rooms()
    }

    /// This room's clients, in ascending id order (ids grow with each new
    /// connection to the host); the client whose
    /// [`connect`](crate::RoomService::connect) is running is included.
    ///
    /// ```
    /// # use roomhost_sdk::{Room, Message};
    /// fn roll_call(room: &mut Room<'_>) {
    ///     let names: Vec<String> = room
    ///         .clients()
    ///         .into_iter()
    ///         .filter_map(|client| room.client_state::<String>(client))
    ///         .collect();
    ///     room.broadcast(Message::json(&names), &[]);
    /// }
    /// ```
    pub fn clients(&mut self) -> Vec<ClientId> {
        self.backend.clients()
    }

    /// How a client of this room connected (path, query, identity; the
    /// hand-off it arrived with is only in `connect`'s [`ClientInfo`]);
    /// `None` when it is not a member. The host
    /// keeps it for the client's whole stay, across hot reloads.
    pub fn client(&mut self, client: ClientId) -> Option<ClientInfo> {
        self.backend.client_info(client)
    }

    /// The state attached to a client of this room with
    /// [`Room::set_client_state`], deserialized from JSON. `None` when the
    /// client is not a member, has no state, or its state is not a `T`.
    pub fn client_state<T: DeserializeOwned>(&mut self, client: ClientId) -> Option<T> {
        let bytes = self.backend.client_state(client)?;
        if bytes.is_empty() {
            return None;
        }
        serde_json::from_slice(&bytes).ok()
    }

    /// Attaches `state` (serialized as JSON) to a client of this room,
    /// replacing what was there: per-client data the host keeps for the
    /// service (like PartyKit's `connection.setState`), so the service need
    /// not mirror its members in a map of its own. It survives hot reloads
    /// and is dropped when the client leaves the room.
    ///
    /// Fails when the client is not a member or the JSON is larger than
    /// [`MAX_CLIENT_STATE_BYTES`](crate::limits::MAX_CLIENT_STATE_BYTES)
    /// (4 KiB by default); nothing changes then.
    ///
    /// ```
    /// # use roomhost_sdk::{ClientInfo, Rejection, Room};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Player {
    ///     name: String,
    ///     score: u32,
    /// }
    ///
    /// fn on_connect(room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
    ///     let name = client.query_param("name").ok_or("a name is required")?;
    ///     room.set_client_state(client.id, &Player { name, score: 0 })
    ///         .map_err(|error| error.to_string().into())
    /// }
    /// ```
    pub fn set_client_state<T: Serialize + ?Sized>(
        &mut self,
        client: ClientId,
        state: &T,
    ) -> Result<(), ClientStateError> {
        let bytes = serde_json::to_vec(state).map_err(ClientStateError::Serialize)?;
        self.set_client_state_bytes(client, bytes)
    }

    /// The raw bytes attached to a client (empty until set); `None` when it
    /// is not a member.
    pub fn client_state_bytes(&mut self, client: ClientId) -> Option<Vec<u8>> {
        self.backend.client_state(client)
    }

    /// [`Room::set_client_state`] with bytes of the service's own encoding.
    pub fn set_client_state_bytes(
        &mut self,
        client: ClientId,
        state: Vec<u8>,
    ) -> Result<(), ClientStateError> {
        self.backend
            .set_client_state(client, state)
            .map_err(ClientStateError::Rejected)
    }

    /// Claims the server root (`/`) for this service's lobby, so that
    /// clients connecting to `ws://HOST/` land in it. Only the lobby may
    /// call it, and only during [`init`](crate::RoomService::init); it fails
    /// otherwise, or when another service holds the root.
    pub fn serve_root(&mut self) -> Result<(), ServeRootError> {
        self.backend
            .serve_root()
            .map_err(|message| ServeRootError { message })
    }

    /// Whether the host has a token key configured (`roomhost serve
    /// --jwt-secret ...`). When it has none, a service's protocol usually
    /// treats authentication as off, and [`Room::verify_token`] always
    /// fails.
    pub fn auth_enabled(&mut self) -> bool {
        self.backend.auth_enabled()
    }

    /// Verifies a JSON Web Token with the host's key and returns its claims
    /// (a JSON object such as `{"sub": ..., "name": ..., "exp": ...}`).
    ///
    /// The secret never enters the plugin: the host checks the signature
    /// (HS256), `exp` (with a leeway, 60 s by default), the audience (`aud`)
    /// and the issuer (`iss`) it was configured with. Fails with the host's
    /// reason when the token is refused, or when no key is configured (see
    /// [`Room::auth_enabled`]). Use it for tokens that arrive inside
    /// messages; a token the host verified at connection time shows up as
    /// [`ClientInfo::identity`](crate::ClientInfo::identity) instead.
    ///
    /// ```
    /// # use roomhost_sdk::{ClientId, Room};
    /// fn display_name(room: &mut Room<'_>, token: &str) -> Option<String> {
    ///     let claims = room.verify_token(token).ok()?;
    ///     claims["name"].as_str().map(str::to_owned)
    /// }
    /// ```
    pub fn verify_token(&mut self, token: &str) -> Result<serde_json::Value, AuthError> {
        let claims = self
            .backend
            .verify_token(token)
            .map_err(|message| AuthError { message })?;
        serde_json::from_str(&claims).map_err(|err| AuthError {
            message: format!("the host returned claims that are not JSON: {err}"),
        })
    }
}

impl fmt::Debug for Room<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Room")
            .field("room_id", &self.room_id)
            .finish_non_exhaustive()
    }
}

/// `delay` in whole milliseconds, rounded up and saturating.
pub(crate) fn duration_to_ms(delay: Duration) -> u64 {
    let millis = delay.as_millis() + u128::from(!delay.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(millis).unwrap_or(u64::MAX)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Defines an error type that carries the host's explanation.
macro_rules! message_error {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            message: String,
        }

        impl $name {
            /// The host's explanation.
            pub fn message(&self) -> &str {
                &self.message
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, ": {}"), self.message)
            }
        }

        impl Error for $name {}
    };
}

message_error!(
    /// [`Room::try_send`] or [`Room::try_broadcast`] failed: the frame is
    /// larger than the host's plugin frame limit
    /// ([`MAX_PLUGIN_FRAME_BYTES`](crate::limits::MAX_PLUGIN_FRAME_BYTES) by
    /// default). Nothing was sent. [`SendError::message`] gives both sizes.
    SendError,
    "cannot send frame"
);

message_error!(
    /// [`Room::set_timer`] failed: the room holds its maximum number of timers.
    TimerError,
    "cannot set timer"
);

impl TimerError {
    pub(crate) fn from_host(message: String) -> TimerError {
        TimerError { message }
    }
}

message_error!(
    /// [`Room::serve_root`] failed: this is not the lobby, it is not during
    /// `init`, or another service holds the root.
    ServeRootError,
    "cannot serve the root"
);

message_error!(
    /// [`Room::verify_token`] failed: the host refused the token (bad
    /// signature, expired, wrong audience or issuer, malformed), or has no
    /// token key configured. [`AuthError::message`] is the host's reason.
    AuthError,
    "token refused"
);

/// [`Room::set_client_state`] failed; the client's state is unchanged.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStateError {
    /// The value could not be serialized to JSON.
    Serialize(serde_json::Error),
    /// The host refused it: the client is not a member, or the state is
    /// too large.
    Rejected(ClientStateRefusal),
}

impl fmt::Display for ClientStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serialize(err) => write!(f, "cannot serialize client state: {err}"),
            Self::Rejected(refusal) => write!(f, "client state refused: {refusal}"),
        }
    }
}

impl Error for ClientStateError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Serialize(err) => Some(err),
            Self::Rejected(refusal) => Some(refusal),
        }
    }
}

/// [`Room::set_info`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InfoError {
    /// The value could not be serialized to JSON.
    Serialize(serde_json::Error),
    /// The host rejected the metadata (for example, it is too large).
    Rejected(String),
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serialize(err) => write!(f, "cannot serialize room info: {err}"),
            Self::Rejected(reason) => write!(f, "room info rejected: {reason}"),
        }
    }
}

impl Error for InfoError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Serialize(err) => Some(err),
            Self::Rejected(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up() {
        assert_eq!(duration_to_ms(Duration::ZERO), 0);
        assert_eq!(duration_to_ms(Duration::from_micros(1)), 1);
        assert_eq!(duration_to_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(duration_to_ms(Duration::from_nanos(1_000_001)), 2);
        assert_eq!(duration_to_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("", 0), "");
    }
}
