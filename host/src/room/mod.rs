//! Rooms: the table of live rooms and the actor that runs each one.
//!
//! A room is one plugin instance driven by one task (its actor) that owns the
//! wasmtime store and drains a bounded inbox of events. Connections talk to a
//! room only through that inbox; the room talks to them only through their
//! bounded outbound queues.

mod actor;
mod body;
mod creation_rate;
mod directory;
mod notices;
mod reload;
pub mod timers;

pub use directory::{JoinError, RoomListing, Rooms};
pub(crate) use directory::{RoomHandle, RoomKey};
pub use reload::{ReloadReport, RoomReload};

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::client::{ClientId, ClientSender};
use crate::wasm::{
    DisconnectReason, GuestHandoff, GuestHttpRequest, GuestHttpResponse, GuestMessage, Plugin,
};

/// The room id of a service's lobby. URL room ids are never empty, so no
/// client can reach the lobby by id.
pub(crate) const LOBBY: &str = "";

/// A client asking to join a room.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The client's writing side.
    pub sender: ClientSender,
    /// The request path, e.g. `/ws/chat/lobby`.
    pub path: String,
    /// The raw query string (no `?`).
    pub query: String,
    /// A verified identity (the token's subject), when the host knows one.
    pub identity: Option<String>,
    /// The verified token's claims as JSON text, when the service requires
    /// a token.
    pub claims: Option<String>,
    /// Whether the client's token grants only read access to the room.
    pub read_only: bool,
    /// Set when the client arrives by transfer.
    pub(crate) handoff: Option<GuestHandoff>,
    /// The client's address; rooms it makes the host create count against
    /// its `room_creations_per_minute`.
    pub(crate) address: Option<std::net::IpAddr>,
}

impl ConnectRequest {
    /// The client's id.
    pub fn id(&self) -> ClientId {
        self.sender.id()
    }
}

/// Why a client left, as the host saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The client sent a close frame or ended the connection cleanly.
    Closed,
    /// The connection failed, idled out or was too slow.
    Lost,
}

/// What a room's inbox carries.
pub(crate) enum RoomEvent {
    Connect {
        request: ConnectRequest,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Frame {
        client: ClientId,
        message: GuestMessage,
    },
    Disconnect {
        client: ClientId,
        reason: LeaveReason,
    },
    /// A transferred client's connection is switching rooms: the room hands
    /// back the frames that reached it after the transfer, in order.
    Depart {
        client: ClientId,
        reply: oneshot::Sender<Vec<GuestMessage>>,
    },
    /// Lobby only: directory changes are waiting (see `notices`).
    LobbyNotices,
    /// Answered once `init` has run (used to start lobbies eagerly).
    Started {
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    /// An HTTP request addressed to the room.
    Request {
        request: GuestHttpRequest,
        reply: oneshot::Sender<Result<GuestHttpResponse, String>>,
    },
    /// Hot reload: move the room onto `plugin`, keeping its clients.
    Reload {
        plugin: Arc<Plugin>,
        reply: oneshot::Sender<RoomReload>,
    },
    /// Makes the room's task panic, to prove a host bug stays contained
    /// (feature `fault-injection`, for tests only).
    #[cfg(feature = "fault-injection")]
    Panic,
}

impl From<LeaveReason> for DisconnectReason {
    fn from(reason: LeaveReason) -> Self {
        match reason {
            LeaveReason::Closed => DisconnectReason::Closed,
            LeaveReason::Lost => DisconnectReason::Lost,
        }
    }
}
