//! One room's sandboxed instance: a store, the plugin's exports, and the
//! CPU clock that slices every call and holds it to its deadline.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, Trap};

use super::bindings::Room;
use super::bindings::roomhost::room::types::{
    ClientInfo, DisconnectReason, Frame, HttpRequest, HttpResponse, InitInfo, Rejection,
    RoomChange, ServiceDescription,
};
use super::engine::WasmEngine;
use super::output::PluginLog;
use super::plugin::Plugin;
use super::slice::{CallClock, WaitedTooLong};
use super::state::{RoomLink, RoomState};
use super::text::{MAX_PLUGIN_TEXT, bounded};
use crate::client::ClientId;
use crate::limits::Limits;

/// Why a callback into a plugin failed: the reason its clients are given,
/// and its kind. The room that produced it is disposed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GuestError(pub String, pub Failure);

/// The kind of a [`GuestError`], as metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The call ran (or waited) past its deadline.
    Deadline,
    /// The room hit its memory limit.
    Memory,
    /// The plugin panicked or trapped.
    Trap,
    /// `init` refused to start the room (or to restore its snapshot).
    Refused,
    /// The plugin could not be instantiated.
    Instantiate,
    /// The host failed (a bug, contained to the room).
    Host,
    /// The room's storage could not be loaded or a commit failed.
    Storage,
}

impl Failure {
    /// A short label: `deadline`, `memory`, `trap`, `refused`,
    /// `instantiate`, `host` or `storage`.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Deadline => "deadline",
            Failure::Memory => "memory",
            Failure::Trap => "trap",
            Failure::Refused => "refused",
            Failure::Instantiate => "instantiate",
            Failure::Host => "host",
            Failure::Storage => "storage",
        }
    }
}

/// A live instance of a plugin for one room.
///
/// Its calls are futures: drive them on a tokio runtime with timers enabled
/// (a call that waits on the host is bounded by a timer).
pub struct RoomInstance {
    store: Store<RoomState>,
    room: Room,
    clock: Arc<CallClock>,
    limits_text: LimitsText,
}

/// Limits as they appear in error messages.
struct LimitsText {
    deadline_ms: u128,
    memory_mib: usize,
}

/// Calls export `$call` with `$args` through the room's CPU clock.
macro_rules! call {
    ($self:ident, $call:ident($($arg:expr),*)) => {{
        $self.store.data_mut().last_error_log = None;
        $self.store.set_epoch_deadline(1);
        let exports = $self.room.roomhost_room_service();
        let started = std::time::Instant::now();
        let result = $self
            .clock
            .run(exports.$call(&mut $self.store, $($arg),*))
            .await;
        // `call_message` → `message`: the export's name.
        const NAME: &str = stringify!($call).split_at("call_".len()).1;
        let elapsed = started.elapsed();
        $self.store.data_mut().record_call(NAME, elapsed);
        $self.store.data().log.flush();
        result.map_err(|error| $self.describe(error))
    }};
}

impl RoomInstance {
    /// Instantiates `plugin` for a new room. Does not call `init`.
    pub async fn instantiate(
        engine: &WasmEngine,
        plugin: &Plugin,
        limits: &Limits,
        link: Option<RoomLink>,
    ) -> Result<RoomInstance, GuestError> {
        let log = PluginLog::new(engine.plugin_log_lines());
        let state = RoomState::new(limits, link, plugin.description(), log);
        let mut store = Store::new(engine.engine(), state);
        store.limiter(|state| &mut state.limiter);
        let clock = CallClock::new(engine.call_deadline(), engine.ticks().clone());
        let (ticking, lanes) = (clock.clone(), engine.lanes().clone());
        store.epoch_deadline_callback(move |_| Ok(ticking.on_tick(&lanes)));
        store.set_epoch_deadline(1);
        let pre = plugin.pre().ok_or_else(|| {
            GuestError(
                "the plugin is native, not a wasm component".into(),
                Failure::Instantiate,
            )
        })?;
        let started = std::time::Instant::now();
        let room = clock
            .run(pre.instantiate_async(&mut store))
            .await
            .map_err(|error| {
                GuestError(
                    format!("cannot instantiate the plugin: {error}"),
                    Failure::Instantiate,
                )
            })?;
        store.data().record_instantiate(started.elapsed());
        Ok(RoomInstance {
            store,
            room,
            clock,
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

    /// CPU time the room's calls have used so far.
    pub fn cpu_time(&self) -> Duration {
        self.clock.total()
    }

    /// Calls `describe`: what the service is.
    pub async fn describe_service(&mut self) -> Result<ServiceDescription, GuestError> {
        call!(self, call_describe())
    }

    /// Calls `init`. A plugin that refuses to start (or to restore
    /// `info.restored`) fails the call with its reason, like a trap: either
    /// way the instance is unusable.
    pub async fn init(&mut self, info: &InitInfo) -> Result<(), GuestError> {
        self.state().in_init = true;
        let result = call!(self, call_init(info));
        self.state().in_init = false;
        result?.map_err(|reason| {
            let reason = bounded(reason, MAX_PLUGIN_TEXT);
            let reason = if info.restored.is_some() {
                format!("it refused the snapshot: {reason}")
            } else {
                format!("the plugin refused to start the room: {reason}")
            };
            GuestError(reason, Failure::Refused)
        })
    }

    /// Calls `room-changed` (lobby only).
    pub async fn room_changed(&mut self, change: &RoomChange) -> Result<(), GuestError> {
        call!(self, call_room_changed(change))
    }

    /// Calls `connect`; the inner result is the plugin's accept or reject.
    pub async fn connect(
        &mut self,
        client: &ClientInfo,
    ) -> Result<Result<(), Rejection>, GuestError> {
        call!(self, call_connect(client))
    }

    /// Calls `message`.
    pub async fn message(&mut self, client: ClientId, msg: &Frame) -> Result<(), GuestError> {
        call!(self, call_message(client, msg))
    }

    /// Calls `disconnect`.
    pub async fn disconnect(
        &mut self,
        client: ClientId,
        reason: DisconnectReason,
    ) -> Result<(), GuestError> {
        call!(self, call_disconnect(client, reason))
    }

    /// Calls `timer`.
    pub async fn timer(&mut self, id: u64) -> Result<(), GuestError> {
        call!(self, call_timer(id))
    }

    /// Calls `reconnect`.
    pub async fn reconnect(&mut self, client: ClientId, token: &str) -> Result<(), GuestError> {
        call!(self, call_reconnect(client, token))
    }

    /// Calls `snapshot`; the inner result is the plugin's state (`None`:
    /// snapshots not supported) or why it cannot give it.
    pub async fn snapshot(&mut self) -> Result<Result<Option<Vec<u8>>, String>, GuestError> {
        call!(self, call_snapshot())
    }

    /// Calls `request`.
    pub async fn request(&mut self, request: &HttpRequest) -> Result<HttpResponse, GuestError> {
        call!(self, call_request(request))
    }

    /// Turns a wasmtime error into the reason the room's clients are given.
    fn describe(&mut self, error: wasmtime::Error) -> GuestError {
        tracing::debug!(error = format!("{error:?}"), "plugin call failed");
        let state = self.store.data_mut();
        let (reason, kind) = if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            let deadline = self.limits_text.deadline_ms;
            let reason = format!("plugin exceeded its {deadline} ms call deadline");
            (reason, Failure::Deadline)
        } else if error.downcast_ref::<WaitedTooLong>().is_some() {
            let deadline = self.limits_text.deadline_ms;
            let reason = format!(
                "plugin waited (a WASI sleep or poll) past its {deadline} ms call deadline"
            );
            (reason, Failure::Deadline)
        } else if state.limiter.exceeded {
            let memory = self.limits_text.memory_mib;
            let reason = format!("plugin exceeded its {memory} MiB memory limit");
            (reason, Failure::Memory)
        } else if let Some(log) = state.last_error_log.take() {
            (format!("plugin failed: {log}"), Failure::Trap)
        } else if let Some(trap) = error.downcast_ref::<Trap>() {
            (format!("plugin trapped: {trap}"), Failure::Trap)
        } else {
            (format!("plugin failed: {error}"), Failure::Trap)
        };
        GuestError(bounded(reason, MAX_PLUGIN_TEXT), kind)
    }
}
