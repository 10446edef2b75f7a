//! Where rooms live when the host is one node of a cluster.
//!
//! A host started with a [`Placement`] runs a room only after the placement
//! says the room is *here* (this node claimed it); a room another node owns
//! is *elsewhere*, and the host forwards the WebSocket or HTTP request to
//! that node (`http::forward`) instead of starting a second copy. Without
//! a placement (one node, the default) every room is here.
//!
//! The host also watches the placement's standing: a node that can no longer
//! vouch for its ownership (its lease is about to lapse, or lapsed) closes
//! every room's clients with 1012 so they reconnect to whichever node owns
//! the room next, and places no room until it stands again.
//!
//! Lobbies see the whole cluster: each node publishes its rooms' entries
//! through the placement and reads the other nodes' (see
//! `room::cluster_rooms`).
//!
//! The cluster crate implements the trait on PostgreSQL leases; the host
//! knows nothing of how ownership is decided.

use std::sync::Arc;

/// Where a room runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// This node holds the room: run it here.
    Here,
    /// Another node owns the room.
    Elsewhere {
        /// That node's id.
        node: String,
        /// Where other nodes reach it (`host:port`).
        address: String,
    },
}

/// A live room as lobbies see it (the directory import's entry), with
/// its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    /// The room's service.
    pub service: String,
    /// The room's id.
    pub room: String,
    /// Its clients.
    pub clients: u32,
    /// What the room says about itself (`set-info`), as JSON text.
    pub info: String,
}

/// One node as the cluster view shows it (`GET /cluster`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeView {
    /// The node's id.
    pub id: String,
    /// Its number (the high bits of its clients' ids).
    pub number: u64,
    /// Where nodes reach it.
    pub address: String,
    /// Milliseconds its lease has left by the database's clock (negative:
    /// lapsed that long ago).
    pub lease_left_ms: i64,
    /// Rooms it owns.
    pub rooms: u64,
    /// Clients of those rooms, as it last published them.
    pub clients: u64,
}

/// Why a room could not be placed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// This node cannot vouch for any room now (its lease lapsed or is about
    /// to); clients should try again, through another node.
    #[error("this node is not serving rooms now (its cluster lease is not live)")]
    NotServing,
    /// The cluster's database could not be asked.
    #[error("cannot reach the cluster database: {0}")]
    Unavailable(String),
}

/// Decides which node runs each room. Implemented by the cluster crate.
///
/// `place` and `serving` are called by the host; `place` may block (it
/// runs on a blocking thread), the others must not.
pub trait Placement: Send + Sync + std::fmt::Debug + 'static {
    /// Claims room `room` of `service` for this node when nobody live holds
    /// it, or says who does. Blocking.
    fn place(&self, service: &str, room: &str) -> Result<Place, PlacementError>;

    /// Whether this node holds a claim on room `room` of `service` now (no
    /// database round trip). The host starts a room only while it does, so
    /// a claim released or lost between placing and starting is taken
    /// again instead of the room running unclaimed.
    fn holds(&self, service: &str, room: &str) -> bool;

    /// A number that changes whenever every claim of this node was dropped
    /// (its lease lapsed, it joined again): the host then closes its rooms,
    /// even if it never saw [`Placement::serving`] turn false.
    fn generation(&self) -> u64;

    /// The live nodes' numbers and addresses. Blocking.
    fn peers(&self) -> Result<Vec<(u64, String)>, PlacementError>;

    /// Which node runs room `room` of `service` now, without claiming it:
    /// `None` when no live node does. Blocking. For requests that must not
    /// start a room (an HTTP request to a service whose requests create no
    /// rooms).
    fn owner(&self, service: &str, room: &str) -> Result<Option<Place>, PlacementError>;

    /// Room `room` of `service` ended on this node: give it up so any node
    /// may claim it. Called when the room leaves the host's table, after its
    /// last write is stored; must not block (tell the database in the
    /// background).
    fn release(&self, service: &str, room: &str);

    /// Records how this node's rooms look now (`changed`: rooms whose entry
    /// changed since the last call, or that this node started running), so
    /// other nodes' lobbies can list them. Blocking.
    fn publish(&self, changed: &[RoomEntry]) -> Result<(), PlacementError>;

    /// The rooms of `services` that other live nodes run, as they last
    /// published them. Blocking.
    fn others(&self, services: &[String]) -> Result<Vec<RoomEntry>, PlacementError>;

    /// Whether this node may run rooms now. When this turns false the host
    /// closes every room with 1012 and places nothing until it turns true.
    fn serving(&self) -> bool;

    /// This node's number in the cluster (unique, kept across its
    /// restarts): the high bits of the ids of its clients.
    fn node_number(&self) -> u64;

    /// How many times this node has started, counting this process: part
    /// of its client ids, so a restarted node does not hand out the ids of
    /// its previous run.
    fn run(&self) -> u64;

    /// Every node the cluster knows, with its lease and rooms. Blocking.
    fn nodes(&self) -> Result<Vec<NodeView>, PlacementError>;

    /// This node's id, for logs and the cluster view.
    fn node_id(&self) -> &str;

    /// The secret nodes present to each other on forwarded requests, so a
    /// node trusts the client address a peer passes on. Clients never see
    /// it.
    fn peer_key(&self) -> &str;
}

/// A placement shared by the host's parts.
pub type SharedPlacement = Arc<dyn Placement>;
