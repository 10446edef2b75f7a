//! The native baseline for roomhost's benchmarks.
//!
//! Runs a room service written with `roomhost-sdk` as native code inside the
//! real host: same WebSocket stack, same room table, same actor, same client
//! queues, same [`RoomState`] methods behind every `Room` call. Only the wasm
//! boundary is gone (no store, no call into a component, no copies into and
//! out of linear memory, no sandbox), so comparing a plugin served by
//! `roomhost serve` with the same source served by `roomhost-baseline`
//! measures what the sandbox costs.
//!
//! [`native`] adapts any [`Reloadable`] service (every `#[room_service]`
//! type) to the host's [`NativeService`]; [`spec`] names the services the
//! `roomhost-baseline` binary serves.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use roomhost_host::ServiceSpec;
use roomhost_host::client::ClientId;
use roomhost_host::native::{NativeFactory, NativeService};
use roomhost_host::wasm::imports::{self, Auth, Directory, Host, Storage};
use roomhost_host::wasm::{RoomState, guest};
use roomhost_sdk::__private::{Backend, room};
// The SDK's own WIT types: its conversions from them are what wasm uses.
use roomhost_sdk::bindings::roomhost::room::types as wit;
use roomhost_sdk::{
    ClientInfo, ClientStateRefusal, DisconnectReason, HttpRequest, HttpResponse, InitInfo,
    LogLevel, Message, Rejection, Reloadable, RoomChange, RoomEntry, StorageError, TimerId,
    TransferError, Write,
};

/// The services `roomhost-baseline --service NAME` knows.
pub const SERVICES: &[&str] = &["fanout", "counter"];

/// The native version of service `name` (one of [`SERVICES`]), under that
/// name.
pub fn spec(name: &str) -> Option<ServiceSpec> {
    let factory = match name {
        "fanout" => native::<fanout::Fanout>(),
        "counter" => native::<counter::Counter>(),
        _ => return None,
    };
    Some(ServiceSpec::native(name, factory))
}

/// Makes rooms that run service `S` natively.
pub fn native<S: Reloadable + Send + 'static>() -> NativeFactory {
    Arc::new(|| {
        Box::new(SdkRoom::<S> {
            service: None,
            room_id: String::new(),
            lobby: false,
        })
    })
}

/// One room of an SDK service, as the wasm glue would hold it.
struct SdkRoom<S> {
    /// Set by `init`; callbacks before it are ignored, as in wasm.
    service: Option<S>,
    room_id: String,
    lobby: bool,
}

impl<S: Reloadable + Send + 'static> SdkRoom<S> {
    /// Runs `callback` with the service and a `Room` over `state`.
    fn with<R>(
        &mut self,
        state: &mut RoomState,
        callback: impl FnOnce(&mut S, &mut roomhost_sdk::Room<'_>) -> R,
    ) -> Option<R> {
        let service = self.service.as_mut()?;
        let mut backend = StateBackend(state);
        Some(callback(
            service,
            &mut room(&self.room_id, self.lobby, &mut backend),
        ))
    }
}

impl<S: Reloadable + Send + 'static> NativeService for SdkRoom<S> {
    fn init(&mut self, state: &mut RoomState, info: &guest::InitInfo) -> Result<(), String> {
        let info = InitInfo::from(wit::InitInfo {
            room_id: info.room_id.clone(),
            lobby: info.lobby,
            config: info.config.clone(),
            restored: info.restored.clone(),
        });
        let mut backend = StateBackend(state);
        let mut room = room(&info.room_id, info.lobby, &mut backend);
        // Native rooms never reload, so a snapshot is never handed in.
        let service = roomhost_sdk::__private::start::<S>(&mut room, &info)?;
        self.service = Some(service);
        self.room_id = info.room_id;
        self.lobby = info.lobby;
        Ok(())
    }

    fn connect(
        &mut self,
        state: &mut RoomState,
        client: &guest::ClientInfo,
    ) -> Result<(), guest::Rejection> {
        let client = client_info(client);
        self.with(state, |service, room| service.connect(room, &client))
            .unwrap_or_else(|| Err("the room is not available".into()))
            .map_err(|rejection: Rejection| guest::Rejection {
                code: rejection.requested_code(),
                reason: rejection.reason().to_owned(),
            })
    }

    fn message(&mut self, state: &mut RoomState, client: ClientId, frame: &guest::Frame) {
        // The copy a wasm call makes into the guest's memory.
        let message = match frame {
            guest::Frame::Text(text) => Message::Text(text.clone()),
            guest::Frame::Binary(bytes) => Message::Binary(bytes.clone()),
        };
        self.with(state, |service, room| {
            service.message(room, client, message)
        });
    }

    fn disconnect(
        &mut self,
        state: &mut RoomState,
        client: ClientId,
        reason: guest::DisconnectReason,
    ) {
        let reason = match reason {
            guest::DisconnectReason::Closed => DisconnectReason::Closed,
            guest::DisconnectReason::Lost => DisconnectReason::Lost,
            guest::DisconnectReason::Kicked => DisconnectReason::Kicked,
            guest::DisconnectReason::Transferred => DisconnectReason::Transferred,
            guest::DisconnectReason::Suspended => DisconnectReason::Suspended,
        };
        self.with(state, |service, room| {
            service.disconnect(room, client, reason)
        });
    }

    fn timer(&mut self, state: &mut RoomState, id: u64) {
        self.with(state, |service, room| service.timer(room, id));
    }

    fn room_changed(&mut self, state: &mut RoomState, change: &guest::RoomChange) {
        let change = match change {
            guest::RoomChange::Updated(entry) => RoomChange::Updated(entry_of(entry)),
            guest::RoomChange::Closed(room_id) => RoomChange::Closed(room_id.clone()),
        };
        self.with(state, |service, room| service.room_changed(room, change));
    }

    fn request(
        &mut self,
        state: &mut RoomState,
        request: &guest::HttpRequest,
    ) -> guest::HttpResponse {
        let mut converted = HttpRequest::new(request.method.clone(), request.path.clone())
            .with_query(request.query.clone())
            .with_body(request.body.clone());
        converted.headers = request.headers.clone();
        let response = self
            .with(state, |service, room| service.request(room, converted))
            .unwrap_or_else(|| HttpResponse::text(503, "the room is not available"));
        guest::HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

/// The host's client info as the SDK's, through the SDK's own conversion.
fn client_info(client: &guest::ClientInfo) -> ClientInfo {
    ClientInfo::from(wit::ClientInfo {
        id: client.id,
        path: client.path.clone(),
        query: client.query.clone(),
        identity: client.identity.clone(),
        handoff: client.handoff.as_ref().map(|handoff| wit::Handoff {
            from_room: handoff.from_room.clone(),
            data: handoff.data.clone(),
            rejected: handoff.rejected.clone(),
        }),
        claims: client.claims.clone(),
        read_only: client.read_only,
        resume_token: client.resume_token.clone(),
    })
}

fn entry_of(entry: &guest::RoomEntry) -> RoomEntry {
    let info = serde_json::from_str(&entry.info).unwrap_or(serde_json::Value::Null);
    RoomEntry::new(entry.room_id.clone(), entry.clients, info)
}

/// The SDK's `Backend` over the host's room state: each call is the host
/// import a wasm plugin would make, with the same arguments.
struct StateBackend<'a>(&'a mut RoomState);

impl Backend for StateBackend<'_> {
    fn send(&mut self, client: ClientId, msg: Message) -> Result<(), String> {
        Host::send(self.0, client, frame(msg))
    }

    fn broadcast(&mut self, msg: Message, except: &[ClientId]) -> Result<(), String> {
        Host::broadcast(self.0, frame(msg), except.to_vec())
    }

    fn close(&mut self, client: ClientId, code: u16, reason: &str) {
        Host::close(self.0, client, code, reason.to_owned());
    }

    fn set_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String> {
        Host::set_timer(self.0, id, delay_ms)
    }

    fn cancel_timer(&mut self, id: TimerId) {
        Host::cancel_timer(self.0, id);
    }

    fn now_ms(&self) -> u64 {
        // `Host::now_ms` needs `&mut`; this is the same clock.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn random_u64(&mut self) -> u64 {
        Host::random(self.0)
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => guest::LogLevel::Trace,
            LogLevel::Debug => guest::LogLevel::Debug,
            LogLevel::Info => guest::LogLevel::Info,
            LogLevel::Warn => guest::LogLevel::Warn,
            LogLevel::Error => guest::LogLevel::Error,
        };
        Host::log(self.0, level, message.to_owned());
    }

    fn set_info(&mut self, json: &str) -> Result<(), String> {
        Host::set_info(self.0, json.to_owned())
    }

    fn transfer(
        &mut self,
        client: ClientId,
        to: Option<&str>,
        data: &[u8],
        create: bool,
    ) -> Result<(), TransferError> {
        Directory::transfer(self.0, client, to.map(str::to_owned), data.to_vec(), create).map_err(
            |error| match error {
                guest::TransferError::NotAMember => TransferError::NotAMember,
                guest::TransferError::SameRoom => TransferError::SameRoom,
                guest::TransferError::InvalidRoomId(max) => TransferError::InvalidRoomId {
                    max: usize::try_from(max).unwrap_or(usize::MAX),
                },
                guest::TransferError::NoSuchRoom => TransferError::NoSuchRoom,
                guest::TransferError::NoLobby => TransferError::NoLobby,
                guest::TransferError::Unavailable => TransferError::Unavailable,
            },
        )
    }

    fn clients(&mut self) -> Vec<ClientId> {
        Host::clients(self.0)
    }

    fn client_info(&mut self, client: ClientId) -> Option<ClientInfo> {
        Host::client_details(self.0, client).map(|info| client_info(&info))
    }

    fn client_state(&mut self, client: ClientId) -> Option<Vec<u8>> {
        Host::client_state(self.0, client)
    }

    fn set_client_state(
        &mut self,
        client: ClientId,
        state: Vec<u8>,
    ) -> Result<(), ClientStateRefusal> {
        let len = state.len();
        Host::set_client_state(self.0, client, state).map_err(|error| match error {
            guest::ClientStateError::NotAMember => ClientStateRefusal::NotAMember,
            guest::ClientStateError::TooLarge(limit) => ClientStateRefusal::TooLarge {
                len,
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
        })
    }

    fn rooms(&mut self) -> Vec<RoomEntry> {
        Directory::rooms(self.0).iter().map(entry_of).collect()
    }

    fn serve_root(&mut self) -> Result<(), String> {
        Directory::serve_root(self.0)
    }

    fn auth_enabled(&mut self) -> bool {
        Auth::enabled(self.0)
    }

    fn verify_token(&mut self, token: &str) -> Result<String, String> {
        Auth::verify_token(self.0, token.to_owned())
    }

    fn storage_get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        Storage::get(self.0, key.to_vec())
    }

    fn storage_put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StorageError> {
        Storage::put(self.0, key, value).map_err(refusal)
    }

    fn storage_delete(&mut self, key: &[u8]) -> bool {
        Storage::delete(self.0, key.to_vec())
    }

    fn storage_batch(&mut self, writes: Vec<Write>) -> Result<(), StorageError> {
        let writes = writes
            .into_iter()
            .map(|write| match write {
                Write::Put(key, value) => imports::Write::Put(imports::Entry { key, value }),
                Write::Delete(key) => imports::Write::Delete(key),
            })
            .collect();
        Storage::batch(self.0, writes).map_err(refusal)
    }

    fn storage_list(
        &mut self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        Storage::list_prefix(
            self.0,
            prefix.to_vec(),
            start_after.map(<[u8]>::to_vec),
            limit,
        )
        .into_iter()
        .map(|entry| (entry.key, entry.value))
        .collect()
    }

    fn storage_size(&mut self) -> u64 {
        Storage::size(self.0)
    }

    fn set_durable_timer(&mut self, id: TimerId, delay_ms: u64) -> Result<(), String> {
        Storage::set_durable_timer(self.0, id, delay_ms)
    }
}

fn frame(msg: Message) -> guest::Frame {
    match msg {
        Message::Text(text) => guest::Frame::Text(text),
        Message::Binary(bytes) => guest::Frame::Binary(bytes),
    }
}

/// The host's `storage-error` as the SDK's [`StorageError`].
fn refusal(error: imports::StorageError) -> StorageError {
    let size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
    match error {
        imports::StorageError::KeyTooLarge(over) => StorageError::KeyTooLarge {
            len: size(over.size),
            limit: size(over.limit),
        },
        imports::StorageError::ValueTooLarge(over) => StorageError::ValueTooLarge {
            len: size(over.size),
            limit: size(over.limit),
        },
        imports::StorageError::RoomFull(over) => StorageError::RoomFull {
            needed: size(over.size),
            limit: size(over.limit),
        },
    }
}
