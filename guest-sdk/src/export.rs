//! Glue between the generated `service` exports and a [`RoomService`]: the
//! per-instance service value, the wasm [`Backend`] that calls the `host`
//! imports, and the panic hook. Used by [`#[room_service]`](crate::room_service)
//! through `__private`; not part of the public API.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Once;

use crate::bindings::exports::roomhost::room::service::Guest;
use crate::bindings::roomhost::room::{auth, directory, host, types as wit};
use crate::room::{Backend, ClientStateRefusal};
#[cfg(not(target_arch = "wasm32"))]
use crate::storage;
use crate::{
    ClientId, ClientInfo, DisconnectReason, Handoff, HttpRequest, HttpResponse, InitInfo, LogLevel,
    Message, Reloadable, Room, RoomChange, RoomEntry, RoomService, TimerId, TransferError,
};
#[cfg(not(target_arch = "wasm32"))]
use roomhost_rules::storage::{StorageRefusal, Write};

/// The type `#[room_service]` exports: implements the generated `Guest`
/// trait for the service `S`.
#[allow(missing_debug_implementations)]
pub struct Export<S>(PhantomData<fn() -> S>);

/// Compile-time check emitted by `#[room_service]`, so that a type that does
/// not implement [`RoomService`] is reported at the attribute.
pub const fn assert_room_service<S: RoomService>() {}

impl<S: Reloadable> Guest for Export<S> {
    fn describe() -> wit::ServiceDescription {
        wit::ServiceDescription {
            lobby: S::LOBBY,
            reconnect_grace_ms: u32::try_from(S::RECONNECT_GRACE.as_millis()).unwrap_or(u32::MAX),
        }
    }

    fn reconnect(client: wit::ClientId, resume_token: String) {
        dispatch::<S, _>("reconnect", |service, room| {
            service.reconnect(room, client, &resume_token)
        });
    }

    fn init(info: wit::InitInfo) -> Result<(), String> {
        init::<S>(info.into())
    }

    fn connect(client: wit::ClientInfo) -> Result<(), wit::Rejection> {
        let client = ClientInfo::from(client);
        dispatch::<S, _>("connect", |service, room| service.connect(room, &client))
            .unwrap_or_else(|| Err("the room is not available".into()))
            .map_err(|rejection| wit::Rejection {
                code: rejection.requested_code(),
                reason: rejection.reason().to_owned(),
            })
    }

    fn message(client: wit::ClientId, msg: wit::Frame) {
        let msg = Message::from(msg);
        dispatch::<S, _>("message", |service, room| {
            service.message(room, client, msg)
        });
    }

    fn disconnect(client: wit::ClientId, reason: wit::DisconnectReason) {
        let reason = DisconnectReason::from(reason);
        dispatch::<S, _>("disconnect", |service, room| {
            service.disconnect(room, client, reason)
        });
    }

    fn timer(id: wit::TimerId) {
        dispatch::<S, _>("timer", |service, room| service.timer(room, id));
    }

    fn room_changed(change: wit::RoomChange) {
        let change = RoomChange::from(change);
        dispatch::<S, _>("room_changed", |service, room| {
            service.room_changed(room, change)
        });
    }

    fn snapshot() -> Result<Option<Vec<u8>>, String> {
        dispatch::<S, _>("snapshot", |service, _room| service.save())
            .unwrap_or_else(|| Err("the room is not available".to_owned()))
    }

    fn request(request: wit::HttpRequest) -> wit::HttpResponse {
        let request = HttpRequest::from(request);
        dispatch::<S, _>("request", |service, room| service.request(room, request))
            .unwrap_or_else(|| HttpResponse::text(503, "the room is not available"))
            .into()
    }
}

/// The state of this component instance (one room). Wasm components are
/// single-threaded, so a thread local is a per-instance static.
struct Instance {
    room_id: String,
    lobby: bool,
    service: Box<dyn Any>,
}

thread_local! {
    static INSTANCE: RefCell<Option<Instance>> = const { RefCell::new(None) };
}

/// Starts the instance's service; an error is the service's reason for
/// refusing to start (or to restore), which the host reports.
fn init<S: Reloadable>(info: InitInfo) -> Result<(), String> {
    install_panic_hook();
    INSTANCE.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return Err("init called re-entrantly".to_owned());
        };
        if slot.is_some() {
            return Err("init called twice".to_owned());
        }
        let mut backend = WitHost;
        let mut room = Room::new(&info.room_id, info.lobby, &mut backend);
        let service = crate::snapshot::start::<S>(&mut room, &info)?;
        *slot = Some(Instance {
            room_id: info.room_id,
            lobby: info.lobby,
            service: Box::new(service),
        });
        Ok(())
    })
}

/// Runs `callback` against the instance's service, or logs why it cannot
/// (called before `init`, or re-entrantly) and returns `None`.
fn dispatch<S: RoomService, R>(
    name: &str,
    callback: impl FnOnce(&mut S, &mut Room<'_>) -> R,
) -> Option<R> {
    INSTANCE.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            WitHost.log(
                LogLevel::Error,
                &format!("{name} called re-entrantly; ignored"),
            );
            return None;
        };
        let Some(Instance {
            room_id,
            lobby,
            service,
        }) = slot.as_mut()
        else {
            WitHost.log(
                LogLevel::Error,
                &format!("{name} called before init; ignored"),
            );
            return None;
        };
        let Some(service) = service.downcast_mut::<S>() else {
            WitHost.log(
                LogLevel::Error,
                &format!("{name}: the instance holds another service type; ignored"),
            );
            return None;
        };
        Some(callback(
            service,
            &mut Room::new(room_id, *lobby, &mut WitHost),
        ))
    })
}

/// Reports panics to the host as `panic: MESSAGE at FILE:LINE:COLUMN`, logged
/// at error level; the host uses the last such line as the reason the room
/// was disposed. (The panic then aborts, which traps the instance.)
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload_as_str()
                .unwrap_or("(non-string panic payload)");
            let line = match info.location() {
                Some(location) => format!("panic: {message} at {location}"),
                None => format!("panic: {message}"),
            };
            WitHost.log(LogLevel::Error, &line);
        }));
    });
}

/// The wasm [`Backend`]: forwards every call to the `host`, `directory` and
/// `auth` imports.
struct WitHost;

impl Backend for WitHost {
    fn send(&mut self, client: ClientId, msg: Message) -> Result<(), String> {
        host::send(client, &msg.into())
    }

    fn broadcast(&mut self, msg: Message, except: &[ClientId]) -> Result<(), String> {
        host::broadcast(&msg.into(), except)
    }

    fn close(&mut self, client: ClientId, code: u16, reason: &str) {
        host::close(client, code, reason);
    }

    fn set_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String> {
        host::set_timer(id, delay_ms)
    }

    fn cancel_timer(&mut self, id: TimerId) {
        host::cancel_timer(id);
    }

    fn now_ms(&self) -> u64 {
        host::now_ms()
    }

    fn random_u64(&mut self) -> u64 {
        host::random()
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        host::log(level.into(), message);
    }

    fn set_info(&mut self, json: &str) -> Result<(), String> {
        host::set_info(json)
    }

    fn transfer(
        &mut self,
        client: ClientId,
        to: Option<&str>,
        data: &[u8],
        create: bool,
    ) -> Result<(), TransferError> {
        directory::transfer(client, to, data, create).map_err(TransferError::from_wit)
    }

    fn clients(&mut self) -> Vec<ClientId> {
        host::clients()
    }

    fn client_info(&mut self, client: ClientId) -> Option<ClientInfo> {
        host::client_details(client).map(ClientInfo::from)
    }

    fn client_state(&mut self, client: ClientId) -> Option<Vec<u8>> {
        host::client_state(client)
    }

    fn set_client_state(
        &mut self,
        client: ClientId,
        state: Vec<u8>,
    ) -> Result<(), ClientStateRefusal> {
        let len = state.len();
        host::set_client_state(client, &state).map_err(|error| match error {
            wit::ClientStateError::NotAMember => ClientStateRefusal::NotAMember,
            wit::ClientStateError::TooLarge(limit) => ClientStateRefusal::TooLarge {
                len,
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
        })
    }

    fn rooms(&mut self) -> Vec<RoomEntry> {
        directory::rooms()
            .into_iter()
            .map(RoomEntry::from)
            .collect()
    }

    fn serve_root(&mut self) -> Result<(), String> {
        directory::serve_root()
    }

    fn auth_enabled(&mut self) -> bool {
        auth::enabled()
    }

    fn verify_token(&mut self, token: &str) -> Result<String, String> {
        auth::verify_token(token)
    }

    // Natively only, for the trait: in wasm, `Storage` calls the imports
    // itself (see `storage`).
    #[cfg(not(target_arch = "wasm32"))]
    fn storage_get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        storage::wit::get(self, key)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StorageRefusal> {
        storage::wit::put(self, key, value)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_delete(&mut self, key: &[u8]) -> bool {
        storage::wit::delete(self, key)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_batch(&mut self, writes: Vec<Write>) -> Result<(), StorageRefusal> {
        storage::wit::batch(self, writes)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_list(
        &mut self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        storage::wit::list(self, prefix, start_after, limit)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn storage_size(&mut self) -> u64 {
        storage::wit::size(self)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn set_durable_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String> {
        storage::wit::set_durable_timer(self, id, delay_ms)
    }
}

/// The contract's `transfer-error` as the SDK's [`TransferError`].
trait FromWit {
    fn from_wit(error: wit::TransferError) -> Self;
}

impl FromWit for TransferError {
    fn from_wit(error: wit::TransferError) -> Self {
        match error {
            wit::TransferError::NotAMember => Self::NotAMember,
            wit::TransferError::SameRoom => Self::SameRoom,
            wit::TransferError::InvalidRoomId(max) => Self::InvalidRoomId {
                max: usize::try_from(max).unwrap_or(usize::MAX),
            },
            wit::TransferError::NoSuchRoom => Self::NoSuchRoom,
            wit::TransferError::NoLobby => Self::NoLobby,
            wit::TransferError::Unavailable => Self::Unavailable,
        }
    }
}

impl From<wit::Frame> for Message {
    fn from(msg: wit::Frame) -> Self {
        match msg {
            wit::Frame::Text(text) => Self::Text(text),
            wit::Frame::Binary(bytes) => Self::Binary(bytes),
        }
    }
}

impl From<Message> for wit::Frame {
    fn from(msg: Message) -> Self {
        match msg {
            Message::Text(text) => Self::Text(text),
            Message::Binary(bytes) => Self::Binary(bytes),
        }
    }
}

impl From<wit::ClientInfo> for ClientInfo {
    fn from(client: wit::ClientInfo) -> Self {
        Self {
            id: client.id,
            path: client.path,
            query: client.query,
            identity: client.identity,
            handoff: client.handoff.map(Handoff::from),
            claims: client.claims,
            read_only: client.read_only,
            resume_token: client.resume_token,
        }
    }
}

impl From<wit::Handoff> for Handoff {
    fn from(handoff: wit::Handoff) -> Self {
        Self {
            from_room: handoff.from_room,
            data: handoff.data,
            rejected: handoff.rejected,
        }
    }
}

impl From<wit::RoomEntry> for RoomEntry {
    fn from(entry: wit::RoomEntry) -> Self {
        Self::from_json_text(entry.room_id, entry.clients, &entry.info)
    }
}

impl From<wit::RoomChange> for RoomChange {
    fn from(change: wit::RoomChange) -> Self {
        match change {
            wit::RoomChange::Updated(entry) => Self::Updated(entry.into()),
            wit::RoomChange::Closed(room_id) => Self::Closed(room_id),
        }
    }
}

impl From<wit::InitInfo> for InitInfo {
    fn from(info: wit::InitInfo) -> Self {
        Self {
            room_id: info.room_id,
            lobby: info.lobby,
            config: info.config,
            restored: info.restored,
        }
    }
}

impl From<wit::HttpRequest> for HttpRequest {
    fn from(request: wit::HttpRequest) -> Self {
        let mut converted = Self::new(request.method, request.path)
            .with_query(request.query)
            .with_body(request.body);
        converted.headers = request.headers;
        converted
    }
}

impl From<HttpResponse> for wit::HttpResponse {
    fn from(response: HttpResponse) -> Self {
        Self {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

impl From<wit::DisconnectReason> for DisconnectReason {
    fn from(reason: wit::DisconnectReason) -> Self {
        match reason {
            wit::DisconnectReason::Closed => Self::Closed,
            wit::DisconnectReason::Lost => Self::Lost,
            wit::DisconnectReason::Kicked => Self::Kicked,
            wit::DisconnectReason::Transferred => Self::Transferred,
            wit::DisconnectReason::Suspended => Self::Suspended,
        }
    }
}

impl From<LogLevel> for wit::LogLevel {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Trace => Self::Trace,
            LogLevel::Debug => Self::Debug,
            LogLevel::Info => Self::Info,
            LogLevel::Warn => Self::Warn,
            LogLevel::Error => Self::Error,
        }
    }
}
