//! Rooms: the table of live rooms and the actor that runs each one.
//!
//! A room is one plugin instance driven by one task (its actor) that owns the
//! wasmtime store and drains a bounded inbox of events. Connections talk to a
//! room only through that inbox; the room talks to them only through their
//! bounded outbound queues.

mod actor;
mod directory;
pub mod timers;

pub use directory::{JoinError, RoomListing, Rooms};

use crate::client::{ClientId, ClientSender};
use crate::wasm::{DisconnectReason, GuestMessage};

/// A client asking to join a room.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The client's writing side.
    pub sender: ClientSender,
    /// The request path, e.g. `/ws/chat/lobby`.
    pub path: String,
    /// The raw query string (no `?`).
    pub query: String,
    /// A verified identity, when the host knows one.
    pub identity: Option<String>,
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
        reply: tokio::sync::oneshot::Sender<Result<(), JoinError>>,
    },
    Frame {
        client: ClientId,
        message: GuestMessage,
    },
    Disconnect {
        client: ClientId,
        reason: LeaveReason,
    },
}

impl From<LeaveReason> for DisconnectReason {
    fn from(reason: LeaveReason) -> Self {
        match reason {
            LeaveReason::Closed => DisconnectReason::Closed,
            LeaveReason::Lost => DisconnectReason::Lost,
        }
    }
}
