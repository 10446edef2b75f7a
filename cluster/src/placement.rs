//! [`NodePlacement`]: the host's [`Placement`] on this node's [`Leases`].
//! A room is here when this node claims it, elsewhere when another live
//! node owns it; a room that ends here is forgotten at once and its
//! ownership row deleted by a background thread (the host calls
//! [`Placement::release`] under its room table's lock, where nothing may
//! block). The node serves rooms while its lease is valid for at least
//! [`NodePlacement::margin`] more by its own clock, so it closes its rooms
//! before the lease can lapse, not after.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use roomhost_host::placement::{NodeView, Place, Placement, PlacementError, RoomEntry};

use crate::leases::Location;
use crate::{ClusterError, Leases};

/// A room whose ownership row is to be deleted: service, room, epoch.
type Release = (String, String, i64);

/// Rooms placed by this node's leases.
#[derive(Debug)]
pub struct NodePlacement {
    leases: Arc<Leases>,
    peer_key: String,
    margin: Duration,
    releases: Mutex<Sender<Release>>,
}

impl NodePlacement {
    /// Placement on `leases` (joined), with the cluster's peer key read from
    /// the database. Starts the thread that deletes released rooms' rows; it
    /// ends when this is dropped.
    pub fn new(leases: Arc<Leases>) -> Result<NodePlacement, ClusterError> {
        let peer_key = leases.peer_key()?;
        let (releases, queue) = mpsc::channel::<Release>();
        let releasing = leases.clone();
        std::thread::Builder::new()
            .name("roomhost-release".into())
            .spawn(move || {
                for (service, room, epoch) in queue {
                    if let Err(error) = releasing.release_epoch(&service, &room, epoch) {
                        // The row stays until this node's lease lapses.
                        tracing::warn!(%error, service, room, "cannot release a room");
                    }
                }
            })
            .map_err(|error| {
                ClusterError::Config(format!("cannot start the release thread: {error}"))
            })?;
        // A quarter of the lease: well below what is left after a normal
        // renewal (two thirds of it, by default), enough to close rooms.
        let margin = leases.config().lease / 4;
        Ok(NodePlacement {
            leases,
            peer_key,
            margin,
            releases: Mutex::new(releases),
        })
    }

    /// How much lease must be left for the node to serve rooms.
    pub fn margin(&self) -> Duration {
        self.margin
    }
}

impl Placement for NodePlacement {
    fn place(&self, service: &str, room: &str) -> Result<Place, PlacementError> {
        match self.leases.locate(service, room) {
            Ok(location) => Ok(place(location)),
            Err(ClusterError::LeaseLost(_)) => Err(PlacementError::NotServing),
            Err(other) => Err(unavailable(other)),
        }
    }

    fn owner(&self, service: &str, room: &str) -> Result<Option<Place>, PlacementError> {
        match self.leases.live_owner(service, room) {
            Ok(found) => Ok(found.map(place)),
            Err(error) => Err(unavailable(error)),
        }
    }

    fn release(&self, service: &str, room: &str) {
        let Some(epoch) = self.leases.forget(service, room) else {
            return;
        };
        let queued = self
            .releases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send((service.to_owned(), room.to_owned(), epoch));
        if queued.is_err() {
            tracing::warn!(
                service,
                room,
                "the release thread is gone: the room stays claimed until the lease lapses"
            );
        }
    }

    fn publish(&self, changed: &[RoomEntry]) -> Result<(), PlacementError> {
        let rows: Vec<_> = changed
            .iter()
            .map(|entry| {
                let clients = i32::try_from(entry.clients).unwrap_or(i32::MAX);
                (
                    entry.service.clone(),
                    entry.room.clone(),
                    clients,
                    entry.info.clone(),
                )
            })
            .collect();
        self.leases.publish(&rows).map_err(unavailable)
    }

    fn others(&self, services: &[String]) -> Result<Vec<RoomEntry>, PlacementError> {
        let rows = self.leases.others(services).map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(service, room, clients, info)| RoomEntry {
                service,
                room,
                clients: u32::try_from(clients).unwrap_or_default(),
                info,
            })
            .collect())
    }

    fn holds(&self, service: &str, room: &str) -> bool {
        self.leases.claims().epoch(service, room).is_some()
    }

    fn generation(&self) -> u64 {
        self.leases.generation()
    }

    fn peers(&self) -> Result<Vec<(u64, String)>, PlacementError> {
        self.leases.peers().map_err(unavailable)
    }

    fn serving(&self) -> bool {
        self.leases.lease_valid_for(self.margin)
    }

    fn node_number(&self) -> u64 {
        self.leases.number()
    }

    fn run(&self) -> u64 {
        self.leases.run()
    }

    fn nodes(&self) -> Result<Vec<NodeView>, PlacementError> {
        self.leases.nodes().map_err(unavailable)
    }

    fn node_id(&self) -> &str {
        self.leases.node_id()
    }

    fn peer_key(&self) -> &str {
        &self.peer_key
    }
}

/// A location as the host's placement says it.
fn place(location: Location) -> Place {
    match location {
        Location::Here { .. } => Place::Here,
        Location::Elsewhere { node, address } => Place::Elsewhere { node, address },
    }
}

fn unavailable(error: ClusterError) -> PlacementError {
    PlacementError::Unavailable(error.to_string())
}
