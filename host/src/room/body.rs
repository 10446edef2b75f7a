//! What a room actor drives: a wasm instance or, with the `native-baseline`
//! feature, a native room (the benchmark baseline). Both expose the same
//! callbacks and the same [`RoomState`], so the actor, the reload path and
//! the client queues do not know which one they hold. Without the feature
//! the enum has one variant and every dispatch compiles to a direct call.

use std::time::Duration;

use crate::client::ClientId;
use crate::limits::Limits;
use crate::wasm::guest::{
    ClientInfo, DisconnectReason, Frame, HttpRequest, HttpResponse, InitInfo, Rejection, RoomChange,
};
use crate::wasm::{GuestError, Plugin, RoomInstance, RoomLink, RoomState, WasmEngine};

/// A room's code and state.
// The native variant holds its `RoomState` inline (the wasm one keeps it in
// the store): boxing it would add an indirection only the baseline pays.
#[cfg_attr(feature = "native-baseline", allow(clippy::large_enum_variant))]
pub(crate) enum RoomBody {
    Wasm(RoomInstance),
    #[cfg(feature = "native-baseline")]
    Native(crate::native::NativeRoom),
}

/// Runs `$call` on whichever room the body holds.
macro_rules! each {
    ($body:expr, $room:ident => $call:expr) => {
        match $body {
            RoomBody::Wasm($room) => $call,
            #[cfg(feature = "native-baseline")]
            RoomBody::Native($room) => $call,
        }
    };
}

impl RoomBody {
    /// A new room running `plugin` (wasm, or native code for a native
    /// plugin). Does not call `init`.
    pub(crate) async fn instantiate(
        engine: &WasmEngine,
        plugin: &Plugin,
        limits: &Limits,
        link: Option<RoomLink>,
    ) -> Result<RoomBody, GuestError> {
        #[cfg(feature = "native-baseline")]
        if let Some(factory) = plugin.native_factory() {
            return Ok(RoomBody::Native(crate::native::NativeRoom::new(
                factory, limits, link,
            )));
        }
        RoomInstance::instantiate(engine, plugin, limits, link)
            .await
            .map(RoomBody::Wasm)
    }

    pub(crate) fn state(&mut self) -> &mut RoomState {
        each!(self, room => room.state())
    }

    /// CPU time the room's callbacks have used.
    pub(crate) fn cpu_time(&self) -> Duration {
        each!(self, room => room.cpu_time())
    }

    pub(crate) async fn init(&mut self, info: &InitInfo) -> Result<(), GuestError> {
        each!(self, room => room.init(info).await)
    }

    pub(crate) async fn room_changed(&mut self, change: &RoomChange) -> Result<(), GuestError> {
        each!(self, room => room.room_changed(change).await)
    }

    pub(crate) async fn connect(
        &mut self,
        client: &ClientInfo,
    ) -> Result<Result<(), Rejection>, GuestError> {
        each!(self, room => room.connect(client).await)
    }

    pub(crate) async fn message(
        &mut self,
        client: ClientId,
        msg: &Frame,
    ) -> Result<(), GuestError> {
        each!(self, room => room.message(client, msg).await)
    }

    pub(crate) async fn disconnect(
        &mut self,
        client: ClientId,
        reason: DisconnectReason,
    ) -> Result<(), GuestError> {
        each!(self, room => room.disconnect(client, reason).await)
    }

    pub(crate) async fn timer(&mut self, id: u64) -> Result<(), GuestError> {
        each!(self, room => room.timer(id).await)
    }

    pub(crate) async fn reconnect(
        &mut self,
        client: ClientId,
        token: &str,
    ) -> Result<(), GuestError> {
        each!(self, room => room.reconnect(client, token).await)
    }

    /// The room's state for a hot reload. Native rooms never reload: they
    /// answer as a plugin refusing its snapshot does.
    pub(crate) async fn snapshot(&mut self) -> Result<Result<Option<Vec<u8>>, String>, GuestError> {
        match self {
            RoomBody::Wasm(room) => room.snapshot().await,
            #[cfg(feature = "native-baseline")]
            RoomBody::Native(_) => Ok(Err("native rooms do not reload".to_owned())),
        }
    }

    pub(crate) async fn request(
        &mut self,
        request: &HttpRequest,
    ) -> Result<HttpResponse, GuestError> {
        each!(self, room => room.request(request).await)
    }
}
