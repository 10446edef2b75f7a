//! The WebAssembly side of the host: the wasmtime engine, compiled plugins,
//! and one sandboxed instance per room.
//!
//! Nothing in here knows about sockets. A [`RoomInstance`] takes callbacks and
//! turns the plugin's host calls into effects on [`RoomState`] (frames queued
//! to clients, timers, info), which the room actor acts on. Calls are async
//! and time-sliced (`slice`); what a plugin prints reaches the host log
//! under a rate limit (`output`); which WASI it gets is decided in `wasi`.
//! A room's storage imports (`store`) work on its in-memory store, and the
//! output of a room that uses storage waits in its gate (`gate`) until the
//! event commits.

mod bindings;
mod cache;
mod describe;
mod engine;
mod gate;
mod instance;
mod output;
mod plugin;
mod slice;
mod state;
mod store;
mod text;
mod ticker;
mod timers;
mod wasi;

pub use cache::CompileCache;
pub use engine::WasmEngine;
pub use instance::{Failure, GuestError, RoomInstance};
#[cfg(feature = "native-baseline")]
pub(crate) use output::PluginLog;
pub use plugin::{CONTRACT_VERSION, Description, Plugin, PluginError};
pub use state::RoomState;
pub(crate) use state::{PendingTransfer, unix_millis};
pub use state::{RoomLink, ServiceDirectory};
pub(crate) use text::{MAX_PLUGIN_TEXT, bounded};
pub use timers::{TimerId, Timers, TooManyTimers};

/// The WIT types as Rust values, for driving a [`RoomInstance`] directly
/// (benchmarks, embedders).
pub use bindings::roomhost::room::types as guest;

pub(crate) use bindings::roomhost::room::types::{
    ClientInfo as GuestClientInfo, DisconnectReason, Frame as GuestMessage,
    Handoff as GuestHandoff, HttpRequest as GuestHttpRequest, HttpResponse as GuestHttpResponse,
    InitInfo as GuestInitInfo, Rejection as GuestRejection, RoomChange as GuestRoomChange,
    RoomEntry as GuestRoomEntry,
};

/// The host imports as Rust traits, all implemented by [`RoomState`]. A
/// native room (feature `native-baseline`) calls these where a plugin calls
/// its imports, so frames take the same path.
pub mod imports {
    pub use super::bindings::roomhost::room::auth::Host as Auth;
    pub use super::bindings::roomhost::room::directory::Host as Directory;
    pub use super::bindings::roomhost::room::host::Host;
    pub use super::bindings::roomhost::room::storage::Host as Storage;
    /// The `storage` interface's types.
    pub use super::bindings::roomhost::room::storage::{Entry, OverLimit, StorageError, Write};
}
