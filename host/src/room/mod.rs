//! Rooms: the table of live rooms and the actor that runs each one.
//!
//! A room is one plugin instance driven by one task (its actor) that owns the
//! wasmtime store and drains a bounded inbox of events. Connections talk to a
//! room only through that inbox; the room talks to them only through their
//! bounded outbound queues.
//!
//! Dependencies run one way: `directory` (what the rest of the host calls)
//! starts `actor`s; an actor drives its `body` through `callbacks` and
//! `reload`, and reports to the `table`; `rollout` drives reloads through
//! the directory. `meta`, `notices` and `creation_rate` are leaves.

mod actor;
mod body;
mod callbacks;
mod cluster_rooms;
mod creation_rate;
mod directory;
mod meta;
mod notices;
mod reload;
mod remote;
mod remote_clients;
mod rollout;
mod snapshots;
mod table;

pub use directory::Rooms;
pub(crate) use meta::RoomHandle;
pub use meta::RoomListing;
pub use reload::RoomReload;
pub(crate) use remote::Arrival;
pub(crate) use remote_clients::FRAME_KIND_HEADER;
pub use rollout::ReloadReport;

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::client::{ClientId, ClientSender};
use crate::wasm::{
    DisconnectReason, GuestHandoff, GuestHttpRequest, GuestHttpResponse, GuestMessage, Plugin,
};

/// The room id of a service's lobby (see `roomhost_rules::LOBBY_ROOM_ID`).
pub(crate) const LOBBY: &str = roomhost_rules::LOBBY_ROOM_ID;

/// Why a client could not join a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The plugin's `connect` rejected the client.
    #[error("{reason}")]
    Rejected {
        /// The close code the client gets (`4000..=4999`, or 1008).
        code: u16,
        /// The plugin's reason.
        reason: String,
    },
    /// The process holds `max_rooms` rooms already, or the service its
    /// share of them.
    #[error("room limit reached ({0} rooms)")]
    RoomLimit(usize),
    /// The client's address created `room_creations_per_minute` rooms in
    /// the last minute.
    #[error("room creation rate limit reached ({0} per minute per address)")]
    CreationRate(usize),
    /// The room failed while starting or while handling the connect.
    #[error("{0}")]
    RoomFailed(String),
    /// A resume token was unknown, spent or expired, or its client is gone.
    #[error("resume refused: {0}")]
    ResumeRefused(String),
    /// The room does not exist and the join may not create it. Worded as
    /// the rules' transfer refusal, since a client coming back from such a
    /// join is told this reason.
    #[error("{}", roomhost_rules::checks::TransferRefusal::NoSuchRoom)]
    NoSuchRoom(String),
    /// Another node of the cluster owns the room (the caller forwards to
    /// it, or refuses).
    #[error("room lives on node {node} ({address})")]
    Elsewhere {
        /// The owner's id.
        node: String,
        /// Where the owner is reached.
        address: String,
    },
    /// The cluster could not place the room (this node's lease is not
    /// live, or the database is unreachable): try again later.
    #[error("{0}")]
    Unplaced(String),
    /// This node's claim on the room went between placing it and starting
    /// it (the room ended and gave it up, or the lease lapsed); the join
    /// places the room again.
    #[error("the room's claim went while it was starting: try again")]
    Unclaimed,
}

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
    /// The token that lets a new connection take this client's place, when
    /// the service allows reconnection.
    pub(crate) resume_token: Option<String>,
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
#[non_exhaustive]
pub enum LeaveReason {
    /// The client sent a close frame or ended the connection cleanly.
    Closed,
    /// The connection failed, idled out or was too slow.
    Lost,
}

/// A client back after a lost connection: the connection it is on now, and
/// its next resume token.
pub(crate) struct ReturningClient {
    pub(crate) sender: ClientSender,
    pub(crate) token: String,
}

/// What a room's inbox carries.
///
/// The large, rare payloads are boxed: a tokio channel allocates its first
/// block of 32 slots when it is created, so every room's inbox held 32
/// events' worth (8 KiB at 256 bytes an event) from its start (issue 19);
/// at 48 bytes it is 1.6 KiB.
/// The hot variant, `Frame`, stays inline.
pub(crate) enum RoomEvent {
    Connect {
        request: Box<ConnectRequest>,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Frame {
        client: ClientId,
        message: GuestMessage,
    },
    Disconnect {
        client: ClientId,
        reason: LeaveReason,
        /// The connection that ended (see `ClientSender::connection`): a
        /// client that reconnected meanwhile is not affected.
        connection: usize,
        /// Answered when the room keeps the client waiting to reconnect;
        /// dropped otherwise. Only then does its seat outlive the connection.
        held: Option<oneshot::Sender<()>>,
    },
    /// A suspended (or not yet noticed as lost) client is back.
    Resume {
        client: Box<ReturningClient>,
        reply: oneshot::Sender<Result<(), String>>,
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
        request: Box<GuestHttpRequest>,
        reply: oneshot::Sender<Result<GuestHttpResponse, String>>,
    },
    /// Ends the room: its clients are closed with `code` and `reason` (a
    /// reload brought a version of the service without a lobby).
    Close { code: u16, reason: String },
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

#[cfg(test)]
mod tests {
    use super::RoomEvent;

    /// Every room's inbox allocates a block of 32 events when it is
    /// created: an event that grows grows every room (see `RoomEvent`).
    #[test]
    fn a_room_event_stays_small() {
        let size = std::mem::size_of::<RoomEvent>();
        assert!(size <= 48, "RoomEvent is {size} bytes");
    }
}
