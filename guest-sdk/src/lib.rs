//! Write [roomhost] room services in Rust.
//!
//! roomhost is a WebSocket server in which every room is an instance of a
//! WebAssembly component: the *room service*. This crate is everything a
//! service author needs:
//!
//! - [`RoomService`], the trait with one callback per room event (`init`,
//!   `connect`, `message`, `disconnect`, `timer`, and for the lobby
//!   `room_changed`), plus `request` for HTTP calls to a room and
//!   `snapshot`/`restore` for hot reload, each with a working default;
//! - [`#[room_service]`](room_service), which exports a type implementing it
//!   as the component's service;
//! - [`Room`], the context each callback gets to send frames, close clients,
//!   set timers, read the clock, log, publish listing metadata, list the
//!   service's rooms, move clients between them and verify tokens;
//! - [`testing::TestRoom`], a native harness to unit-test a service with
//!   plain `cargo test`.
//!
//! The crate generates the WIT bindings (`roomhost:room@0.4.0`) itself, so a
//! plugin crate depends on `roomhost-sdk` (plus `serde`/`serde_json` if it
//! uses JSON) and nothing else.
//!
//! # Example
//!
//! A room that counts votes sent as JSON and announces the result every ten
//! seconds:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//!
//! use roomhost_sdk::{ClientId, InitInfo, Message, Room, RoomService, TimerId, room_service};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Vote {
//!     option: String,
//! }
//!
//! #[derive(Default)]
//! #[room_service]
//! pub struct Poll {
//!     votes: BTreeMap<ClientId, String>,
//! }
//!
//! const ANNOUNCE: TimerId = 1;
//!
//! impl RoomService for Poll {
//!     fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
//!         room.info(&format!("poll {} open", info.room_id));
//!         room.set_timer(ANNOUNCE, Duration::from_secs(10))
//!             .map_err(|err| err.to_string())
//!     }
//!
//!     fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
//!         match message.parse_json::<Vote>() {
//!             Ok(vote) => {
//!                 self.votes.insert(client, vote.option);
//!             }
//!             Err(err) => room.send(
//!                 client,
//!                 Message::json(&serde_json::json!({ "error": err.to_string() })),
//!             ),
//!         }
//!     }
//!
//!     fn timer(&mut self, room: &mut Room<'_>, _timer: TimerId) {
//!         let mut tally = BTreeMap::<&str, u32>::new();
//!         for option in self.votes.values() {
//!             *tally.entry(option).or_default() += 1;
//!         }
//!         room.broadcast(Message::json(&tally), &[]);
//!         let _ = room.set_timer(ANNOUNCE, Duration::from_secs(10));
//!     }
//! }
//! ```
//!
//! # Building
//!
//! A plugin is a `cdylib` crate compiled for `wasm32-wasip2`, which produces
//! a component directly:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"] # rlib: lets `cargo test` build it natively
//!
//! [dependencies]
//! # not on crates.io yet: point at a checkout (or use `git = "..."`)
//! roomhost-sdk = { path = "../roomhost/guest-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"
//! ```
//!
//! Then `roomhost build` in the crate, or by hand:
//!
//! ```text
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2
//! # -> target/wasm32-wasip2/release/<crate>.wasm
//! ```
//!
//! # Testing
//!
//! The [`testing`] module runs a service natively and records what it does:
//!
//! ```
//! # use roomhost_sdk::{ClientId, Message, Room, RoomService, room_service};
//! # #[derive(Default)]
//! # #[room_service]
//! # struct Echo;
//! # impl RoomService for Echo {
//! #     fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
//! #         room.send(client, message);
//! #     }
//! # }
//! use roomhost_sdk::testing::TestRoom;
//!
//! // `Echo` sends every frame back to its sender.
//! let mut room = TestRoom::<Echo>::new();
//! let alice = room.connect();
//! let bob = room.connect();
//! room.message(alice, "hi");
//! assert_eq!(room.take_sent(alice), ["hi"]);
//! assert!(room.take_sent(bob).is_empty());
//! ```
//!
//! # Host semantics
//!
//! - **Instances.** The host creates one service value per room (with
//!   `Default`), calls `init` once before anything else, and drops it when
//!   the room is disposed (no clients and no pending timers, or a crash).
//!   State lives in the service value; nothing survives a restart unless the
//!   host restores it (see [`InitInfo::restored`]).
//! - **One call at a time.** Callbacks never run concurrently, and a
//!   callback cannot be interrupted by another. A call that runs too long or
//!   uses too much memory is aborted and the room disposed.
//! - **Ordering.** Everything a callback does through [`Room`] is queued and
//!   applied in call order once the callback returns; frames reach each
//!   client in the order they were sent. A broadcast goes to the clients
//!   connected at the moment of the call, minus the `except` list.
//! - **Clients.** [`ClientId`]s are unique per host process and never reused.
//!   During `connect` the new client already counts as connected (it can be
//!   sent to, and broadcasts reach it unless excluded); rejecting it closes
//!   the connection with the [`Rejection`]'s code (1008 unless it names one
//!   in `4000..=4999`) and reason, after any frames sent to it during
//!   `connect` (a client that arrived by transfer is returned to the
//!   sending room instead; see below). After `disconnect` the client has
//!   left the room; unless the reason is `Transferred` it has left the
//!   service too, and sends to it are ignored. Sending to an unknown client
//!   is not an error. A frame
//!   larger than [`limits::MAX_PLUGIN_FRAME_BYTES`] (16 MiB) is not sent:
//!   [`Room::try_send`] and [`Room::try_broadcast`] return a [`SendError`],
//!   [`Room::send`] and [`Room::broadcast`] log it. Clients may send at most
//!   [`limits::MAX_FRAME_BYTES`] (64 KiB) per frame; the two limits are
//!   separate, so a room can send state far larger than any client frame.
//! - **Closing.** [`Room::close`] takes code 1000 or `3000..=4999` (others
//!   become 1000) and a reason of up to [`limits::MAX_CLOSE_REASON_BYTES`]
//!   bytes (longer ones are truncated). Frames sent before the close are
//!   delivered first; the client receives nothing after it, and the room
//!   gets `disconnect(client, Kicked)` after the current callback returns.
//! - **Timers.** Timer ids are chosen by the service; setting a pending id
//!   replaces it. Delays are whole milliseconds (rounded up), at most a
//!   year. Timers fire in deadline order. A timer fires
//!   once; re-arm it from the `timer` callback for a periodic tick. A room
//!   holds at most [`limits::MAX_TIMERS`] pending timers, and a room with
//!   pending timers stays alive without clients.
//! - **Metadata.** [`Room::set_info`] publishes JSON (at most
//!   [`limits::MAX_INFO_BYTES`]) listed by the host's `GET /rooms`.
//! - **Limits.** The values in [`limits`] are the host's defaults; an
//!   operator can change them, so handle the errors instead of relying on
//!   exact numbers.
//! - **Panics.** A panicking callback aborts the room: the panic message is
//!   logged at error level as `panic: ...` and reported as the reason the
//!   room was disposed; its clients are disconnected.
//! - **Time.** A callback may use 100 ms of CPU (the host's
//!   `call_deadline`); past that the room is disposed like a panic. Long
//!   callbacks are legal: every 2 ms the host lets other rooms run, and the
//!   time a callback waits for its turn does not count.
//! - **Printing.** `println!`/`eprintln!` (WASI stdout/stderr) go to the
//!   host's log at info/warn, line by line, tagged with the room, like
//!   [`Room::info`] and friends. A room may log 100 lines per second (the
//!   host's `plugin_log_lines`); more are dropped and counted. Plugins get
//!   clocks, randomness and stdio from WASI, no files, sockets or
//!   environment; a plugin importing `wasi:sockets` or `wasi:http` is refused
//!   when it loads.
//!
//! # The lobby and hand-off
//!
//! A service can pick rooms for its clients instead of letting the URL
//! decide:
//!
//! - **The lobby.** A service that declares one ([`RoomService::LOBBY`],
//!   or [`LobbyAndRooms`]) has a *lobby*: clients connecting to the service
//!   root (`/ws` or `/ws/{service}`) attach to it, an instance initialised
//!   with [`InitInfo::lobby`] set and an empty room id. Without one, the
//!   root answers 404. During `init` the lobby may claim the server root `/` as well with
//!   [`Room::serve_root`], for clients that connect to `ws://HOST/`.
//! - **Reaching any client.** [`Room::send`] reaches any client of the
//!   service wherever it is, not only this room's; [`Room::broadcast`] only
//!   reaches this room's clients.
//! - **Transfer.** [`Room::transfer`] moves a client of this room to another
//!   room of the service (or the lobby), creating it on request. The call
//!   checks synchronously and fails, with nothing happening, when the client
//!   is not in this room, the target is this room (or the lobby transfers to
//!   the lobby), the room id is empty or longer than
//!   [`limits::MAX_ROOM_ID_BYTES`], `create` is false and the room does
//!   not exist, or the target is the lobby of a service without one; the
//!   [`TransferError`] says which. A transfer of the client whose `connect`
//!   is running waits until it is accepted. On success the client leaves this room at once (broadcasts
//!   no longer reach it; `send` still does), this room gets
//!   `disconnect(client, Transferred)` after the current callback, and the
//!   target gets `connect` with [`ClientInfo::handoff`] set to a [`Handoff`]
//!   naming this room in `from_room` (`None` from the lobby) and carrying the
//!   bytes. The client id stays the same, and frames the client sends
//!   meanwhile reach the target in order.
//! - **Rejection.** If the target rejects the client (or, for
//!   `create: false`, ended in the meantime), the connection stays open: the
//!   client comes back to the sending room through `connect`, with
//!   `handoff.rejected` set to the reason, `from_room` naming the room that
//!   rejected it and the original data.
//! - **The directory.** [`Room::rooms`] lists the service's live rooms (not
//!   the lobby) with their client counts and [`Room::set_info`] metadata. A
//!   room created by a transfer appears once the transfer completed, not when
//!   `transfer` returns. The lobby is told about every change through
//!   [`RoomService::room_changed`].
//!
//! # Authentication
//!
//! When the operator gives the host a token key (`roomhost serve
//! --jwt-secret ...`), a service can check JSON Web Tokens that arrive
//! inside its own messages: [`Room::auth_enabled`] says whether a key is
//! configured, and [`Room::verify_token`] returns a token's claims or the
//! host's reason for refusing it. The secret never enters the plugin; the
//! host checks the HS256 signature, `exp` (with 60 s of leeway by default),
//! and the configured audience and issuer. In the harness,
//! [`TestRoomBuilder::auth`](testing::TestRoomBuilder::auth) with a
//! [`TestAuth`](testing::TestAuth) decides what verification returns.
//!
//! [roomhost]: https://github.com/roomhost/roomhost

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

// Lets the generated bindings name this crate `roomhost_sdk` from inside it,
// with the same paths that work from plugin crates.
extern crate self as roomhost_sdk;

#[doc(hidden)]
#[allow(missing_docs, missing_debug_implementations)]
// Generated by wit-bindgen: the canonical ABI glue is unsafe by nature.
#[allow(unsafe_code)]
pub mod bindings;

mod client;
mod directory;
mod export;
mod http;
mod init;
pub mod limits;
mod lobby;
mod message;
mod rejection;
mod room;
mod service;
mod snapshot;
mod storage;
pub mod testing;

pub use client::{ClientId, ClientInfo, DisconnectReason, Handoff};
pub use directory::{RoomChange, RoomEntry};
pub use http::{HttpRequest, HttpResponse};
pub use init::InitInfo;
pub use lobby::LobbyAndRooms;
pub use message::Message;
pub use rejection::Rejection;
pub use room::{
    AuthError, ClientStateError, ClientStateRefusal, InfoError, LogLevel, Room, SendError,
    ServeRootError, TimerError, TimerId, TransferError,
};
pub use roomhost_sdk_macros::room_service;
pub use service::RoomService;
pub use snapshot::Reloadable;
pub use storage::{Storage, StorageError, StorageJsonError, Write};

/// Support code for `#[room_service]` and the generated bindings. Not public
/// API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::__export_room as export;
    pub use crate::export::{Export, assert_room_service};
    pub use crate::room::Backend;
    pub use crate::snapshot::{serde_load, serde_save, start};
    pub use wit_bindgen;

    /// A [`Room`](crate::Room) whose effects go to `backend`: lets a host
    /// run a service natively (the benchmark baseline).
    pub fn room<'a>(
        room_id: &'a str,
        lobby: bool,
        backend: &'a mut dyn Backend,
    ) -> crate::Room<'a> {
        crate::Room::new(room_id, lobby, backend)
    }
}
