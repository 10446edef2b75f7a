//! One room's sandboxed instance: a store, the plugin's exports, and a
//! deadline on every call.

use wasmtime::{Store, Trap};

use super::bindings::Room;
use super::bindings::roomhost::room::types::{
    ClientInfo, DisconnectReason, Frame, HttpRequest, HttpResponse, InitInfo, RoomChange,
};
use super::engine::WasmEngine;
use super::plugin::Plugin;
use super::state::{RoomLink, RoomState};
use crate::client::ClientId;
use crate::limits::Limits;

/// Why a callback into a plugin failed. The room that produced it is disposed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GuestError(pub String);

/// A live instance of a plugin for one room.
pub struct RoomInstance {
    store: Store<RoomState>,
    room: Room,
    deadline_ticks: u64,
    limits_text: LimitsText,
}

/// Limits as they appear in error messages.
struct LimitsText {
    deadline_ms: u128,
    memory_mib: usize,
}

impl RoomInstance {
    /// Instantiates `plugin` for a new room. Does not call `init`.
    pub fn instantiate(
        engine: &WasmEngine,
        plugin: &Plugin,
        limits: &Limits,
        link: Option<RoomLink>,
    ) -> Result<RoomInstance, GuestError> {
        let mut store = Store::new(engine.engine(), RoomState::new(limits, link));
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(engine.deadline_ticks());
        let pre = plugin
            .pre()
            .ok_or_else(|| GuestError("the plugin is native, not a wasm component".into()))?;
        let room = pre
            .instantiate(&mut store)
            .map_err(|error| GuestError(format!("cannot instantiate the plugin: {error}")))?;
        Ok(RoomInstance {
            store,
            room,
            deadline_ticks: engine.deadline_ticks(),
            limits_text: LimitsText {
                deadline_ms: limits.call_deadline.as_millis(),
                memory_mib: limits.room_memory_bytes / (1024 * 1024),
            },
        })
    }

    /// The store's data: members, timers, info.
    pub fn state(&mut self) -> &mut RoomState {
        self.store.data_mut()
    }

    /// Calls `init`.
    pub fn init(&mut self, info: &InitInfo) -> Result<(), GuestError> {
        self.state().in_init = true;
        let result = self.call(|room, store| room.roomhost_room_service().call_init(store, info));
        self.state().in_init = false;
        result
    }

    /// Calls `room-changed` (lobby only).
    pub fn room_changed(&mut self, change: &RoomChange) -> Result<(), GuestError> {
        self.call(|room, store| {
            room.roomhost_room_service()
                .call_room_changed(store, change)
        })
    }

    /// Calls `connect`; the inner result is the plugin's accept or reject.
    pub fn connect(&mut self, client: &ClientInfo) -> Result<Result<(), String>, GuestError> {
        self.call(|room, store| room.roomhost_room_service().call_connect(store, client))
    }

    /// Calls `message`.
    pub fn message(&mut self, client: ClientId, msg: &Frame) -> Result<(), GuestError> {
        self.call(|room, store| {
            room.roomhost_room_service()
                .call_message(store, client, msg)
        })
    }

    /// Calls `disconnect`.
    pub fn disconnect(
        &mut self,
        client: ClientId,
        reason: DisconnectReason,
    ) -> Result<(), GuestError> {
        self.call(|room, store| {
            room.roomhost_room_service()
                .call_disconnect(store, client, reason)
        })
    }

    /// Calls `timer`.
    pub fn timer(&mut self, id: u64) -> Result<(), GuestError> {
        self.call(|room, store| room.roomhost_room_service().call_timer(store, id))
    }

    /// Calls `snapshot`; the inner result is the plugin's state (`None`:
    /// snapshots not supported) or why it cannot give it.
    pub fn snapshot(&mut self) -> Result<Result<Option<Vec<u8>>, String>, GuestError> {
        self.call(|room, store| room.roomhost_room_service().call_snapshot(store))
    }

    /// Calls `request`.
    pub fn request(&mut self, request: &HttpRequest) -> Result<HttpResponse, GuestError> {
        self.call(|room, store| room.roomhost_room_service().call_request(store, request))
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&Room, &mut Store<RoomState>) -> wasmtime::Result<R>,
    ) -> Result<R, GuestError> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        self.store.data_mut().last_error_log = None;
        f(&self.room, &mut self.store).map_err(|error| self.describe(error))
    }

    /// Turns a wasmtime error into the reason the room's clients are given.
    fn describe(&mut self, error: wasmtime::Error) -> GuestError {
        tracing::debug!(error = format!("{error:?}"), "plugin call failed");
        let state = self.store.data_mut();
        let reason = if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            format!(
                "plugin exceeded its {} ms call deadline",
                self.limits_text.deadline_ms
            )
        } else if state.limiter.exceeded {
            format!(
                "plugin exceeded its {} MiB memory limit",
                self.limits_text.memory_mib
            )
        } else if let Some(log) = state.last_error_log.take() {
            format!("plugin failed: {log}")
        } else if let Some(trap) = error.downcast_ref::<Trap>() {
            format!("plugin trapped: {trap}")
        } else {
            format!("plugin failed: {error}")
        };
        GuestError(super::state::bounded(reason, super::state::MAX_PLUGIN_TEXT))
    }
}
