//! Native rooms: the comparison baseline for benchmarks (feature
//! `native-baseline`, off by default).
//!
//! A native room is driven by the same actor, room table, connections and
//! client queues as a wasm room. Only the boundary differs: instead of a
//! wasmtime store and a component instance, the actor calls a
//! [`NativeService`], which calls the very [`RoomState`] methods a plugin's
//! imports reach (`host::Host::send`, `broadcast`, ...; see
//! [`crate::wasm::imports`]). So a frame takes exactly the same path in
//! both, minus the wasm call, the copies into and out of linear memory and
//! the sandbox checks.
//!
//! Native code is not sandboxed: no deadline, no memory cap. A panic in a
//! callback is caught and disposes the room, like a trap. Serve native rooms
//! only to measure the cost of the sandbox (`bench/baseline`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::ClientId;
use crate::limits::Limits;
use crate::wasm::guest::{
    ClientInfo, DisconnectReason, Frame, HttpRequest, HttpResponse, InitInfo, Rejection, RoomChange,
};
use crate::wasm::{Failure, GuestError, PluginLog, RoomLink, RoomState};

/// A room service compiled natively: one value per room, called with the
/// room's [`RoomState`] where a plugin would call its imports. The methods
/// mirror the WIT `service` exports.
pub trait NativeService: Send + 'static {
    /// `init`: called once, before anything else; `Err` refuses to start.
    fn init(&mut self, state: &mut RoomState, info: &InitInfo) -> Result<(), String>;
    /// `connect`: accept (`Ok`) or reject.
    fn connect(&mut self, state: &mut RoomState, client: &ClientInfo) -> Result<(), Rejection>;
    /// `message`: a frame from a member.
    fn message(&mut self, state: &mut RoomState, client: ClientId, frame: &Frame);
    /// `disconnect`: a member left.
    fn disconnect(&mut self, state: &mut RoomState, client: ClientId, reason: DisconnectReason);
    /// `timer`: a timer the room set fired.
    fn timer(&mut self, state: &mut RoomState, id: u64);
    /// `room-changed` (lobby only).
    fn room_changed(&mut self, state: &mut RoomState, change: &RoomChange);
    /// `request`: an HTTP request addressed to the room.
    fn request(&mut self, state: &mut RoomState, request: &HttpRequest) -> HttpResponse;
}

/// Makes one [`NativeService`] value per room.
pub type NativeFactory = Arc<dyn Fn() -> Box<dyn NativeService> + Send + Sync>;

/// A [`NativeFactory`] as a [`ServiceSpec`](crate::ServiceSpec) field:
/// compared by identity, shown without its contents.
#[derive(Clone)]
pub struct NativeCode(pub NativeFactory);

impl std::fmt::Debug for NativeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NativeCode(..)")
    }
}

impl PartialEq for NativeCode {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A live native room: the host-side state and the service value.
pub struct NativeRoom {
    state: RoomState,
    service: Box<dyn NativeService>,
    cpu: Duration,
}

impl NativeRoom {
    /// A fresh room of `factory`'s service. Does not call `init`.
    pub fn new(factory: &NativeFactory, limits: &Limits, link: Option<RoomLink>) -> NativeRoom {
        NativeRoom {
            state: RoomState::new(
                limits,
                link,
                crate::wasm::Description::default(),
                PluginLog::new(limits.plugin_log_lines),
            ),
            service: factory(),
            cpu: Duration::ZERO,
        }
    }

    /// The host-side state: members, timers, info.
    pub fn state(&mut self) -> &mut RoomState {
        &mut self.state
    }

    /// Calls `init`.
    pub async fn init(&mut self, info: &InitInfo) -> Result<(), GuestError> {
        self.state.in_init = true;
        let result = self.call(|service, state| service.init(state, info));
        self.state.in_init = false;
        result?.map_err(|reason| {
            GuestError(
                format!("the plugin refused to start the room: {reason}"),
                Failure::Refused,
            )
        })
    }

    /// Calls `room-changed`.
    pub async fn room_changed(&mut self, change: &RoomChange) -> Result<(), GuestError> {
        self.call(|service, state| service.room_changed(state, change))
    }

    /// Calls `connect`; the inner result is the service's accept or reject.
    pub async fn connect(
        &mut self,
        client: &ClientInfo,
    ) -> Result<Result<(), Rejection>, GuestError> {
        self.call(|service, state| service.connect(state, client))
    }

    /// Calls `message`.
    pub async fn message(&mut self, client: ClientId, msg: &Frame) -> Result<(), GuestError> {
        self.call(|service, state| service.message(state, client, msg))
    }

    /// Calls `disconnect`.
    pub async fn disconnect(
        &mut self,
        client: ClientId,
        reason: DisconnectReason,
    ) -> Result<(), GuestError> {
        self.call(|service, state| service.disconnect(state, client, reason))
    }

    /// Calls `timer`.
    pub async fn timer(&mut self, id: u64) -> Result<(), GuestError> {
        self.call(|service, state| service.timer(state, id))
    }

    /// Native rooms never declare a grace period, so they are never
    /// suspended and never reconnect.
    pub async fn reconnect(&mut self, _client: ClientId, _token: &str) -> Result<(), GuestError> {
        Ok(())
    }

    /// Calls `request`.
    pub async fn request(&mut self, request: &HttpRequest) -> Result<HttpResponse, GuestError> {
        self.call(|service, state| service.request(state, request))
    }

    /// Time the room's callbacks have used.
    pub fn cpu_time(&self) -> Duration {
        self.cpu
    }

    /// Runs a callback; a panic becomes the room's failure, as a trap would.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut dyn NativeService, &mut RoomState) -> R,
    ) -> Result<R, GuestError> {
        let NativeRoom {
            state,
            service,
            cpu,
        } = self;
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| f(service.as_mut(), state)));
        *cpu += started.elapsed();
        result.map_err(|panic| {
            GuestError(
                format!(
                    "native room panicked: {}",
                    crate::contain::panic_message(panic.as_ref())
                ),
                Failure::Trap,
            )
        })
    }
}
