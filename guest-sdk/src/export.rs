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
use crate::room::Backend;
use crate::{
    ClientId, ClientInfo, DisconnectReason, Handoff, HttpRequest, HttpResponse, InitInfo, LogLevel,
    Message, Reloadable, Room, RoomChange, RoomEntry, RoomService, TimerId,
};

/// The type `#[room_service]` exports: implements the generated `Guest`
/// trait for the service `S`.
#[allow(missing_debug_implementations)]
pub struct Export<S>(PhantomData<fn() -> S>);

/// Compile-time check emitted by `#[room_service]`, so that a type that does
/// not implement [`RoomService`] is reported at the attribute.
pub const fn assert_room_service<S: RoomService>() {}

impl<S: Reloadable> Guest for Export<S> {
    fn init(info: wit::InitInfo) {
        init::<S>(info.into());
    }

    fn connect(client: wit::ClientInfo) -> Result<(), String> {
        let client = ClientInfo::from(client);
        dispatch::<S, _>("connect", |service, room| service.connect(room, &client))
            .unwrap_or_else(|| Err("the room is not available".to_owned()))
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

fn init<S: Reloadable>(info: InitInfo) {
    install_panic_hook();
    INSTANCE.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            WitHost.log(LogLevel::Error, "init called re-entrantly; ignored");
            return;
        };
        if slot.is_some() {
            WitHost.log(LogLevel::Error, "init called twice; ignored");
            return;
        }
        let mut backend = WitHost;
        let mut room = Room::new(&info.room_id, info.lobby, &mut backend);
        // A failed restore traps, so the host keeps the old version.
        let service =
            crate::snapshot::start::<S>(&mut room, &info).unwrap_or_else(|error| panic!("{error}"));
        *slot = Some(Instance {
            room_id: info.room_id,
            lobby: info.lobby,
            service: Box::new(service),
        });
    });
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
    ) -> Result<(), String> {
        directory::transfer(client, to, data, create)
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
