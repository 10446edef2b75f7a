//! The rooms other nodes of a cluster run, as this node's lobbies see them.
//!
//! Every [`SYNC_EVERY`] a task publishes the entries of this node's rooms
//! that changed (clients, info) through the placement and, when a lobby runs
//! here, reads the other nodes' rooms of its service: the lobby's `rooms()`
//! lists them beside this node's, and each change since the last read
//! reaches it as a `room-changed` notice, as a change on this node does. A
//! remote change is thus seen within about two sync periods; a local one at
//! once. The same sync reads the live nodes' addresses, for sends to
//! their clients (`remote_clients`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::meta::lock;
use super::remote_clients::RemoteClients;
use super::table::RoomTable;
use crate::placement::{RoomEntry, SharedPlacement};
use crate::wasm::{GuestRoomChange, GuestRoomEntry};

/// How often a node publishes its rooms and reads the others'.
pub(crate) const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Every this many syncs a node publishes all its rooms, changed or not.
const FULL_PUBLISH_EVERY: u32 = 20;

/// A room's entry: clients and info.
type Entry = (u32, String);

/// The other nodes' rooms, per service with a lobby here, as last read.
#[derive(Default)]
pub(crate) struct ClusterRooms {
    others: Mutex<HashMap<String, BTreeMap<String, Entry>>>,
}

impl ClusterRooms {
    /// The rooms of `service` other nodes run, as the directory lists them.
    pub(crate) fn entries(&self, service: &str) -> Vec<GuestRoomEntry> {
        lock(&self.others)
            .get(service)
            .map(|rooms| {
                rooms
                    .iter()
                    .map(|(room, (clients, info))| GuestRoomEntry {
                        room_id: room.clone(),
                        clients: *clients,
                        info: info.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces what is known of the other nodes' rooms of `services` and
    /// tells each service's lobby what changed.
    fn update(&self, table: &RoomTable, services: &[String], read: Vec<RoomEntry>) {
        let mut fresh: HashMap<String, BTreeMap<String, Entry>> = services
            .iter()
            .map(|service| (service.clone(), BTreeMap::new()))
            .collect();
        for entry in read {
            if let Some(rooms) = fresh.get_mut(&entry.service) {
                rooms.insert(entry.room, (entry.clients, entry.info));
            }
        }
        let mut others = lock(&self.others);
        for (service, rooms) in &fresh {
            let before = others.get(service);
            let name: Arc<str> = service.as_str().into();
            for (room, entry) in rooms {
                if before.and_then(|before| before.get(room)) != Some(entry) {
                    let change = GuestRoomChange::Updated(GuestRoomEntry {
                        room_id: room.clone(),
                        clients: entry.0,
                        info: entry.1.clone(),
                    });
                    table.notify_lobby(&name, change);
                }
            }
            for room in before.into_iter().flat_map(BTreeMap::keys) {
                if !rooms.contains_key(room) && !table.is_live(service, room) {
                    table.notify_lobby(&name, GuestRoomChange::Closed(room.clone()));
                }
            }
        }
        *others = fresh;
    }
}

/// Keeps `cluster_rooms`, the live nodes `remote_clients` relays to and
/// the database in step until `shutdown`.
pub(crate) fn spawn_sync(
    table: Arc<RoomTable>,
    (cluster_rooms, remote_clients): (Arc<ClusterRooms>, Arc<RemoteClients>),
    placement: SharedPlacement,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SYNC_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What the database holds of this node's rooms, as last published.
        let mut published: HashMap<(String, String), Entry> = HashMap::new();
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !placement.serving() {
                continue;
            }
            // Now and then every entry again: a room that ended and started
            // again between two syncs has a fresh ownership row to fill.
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(FULL_PUBLISH_EVERY) {
                published.clear();
            }
            let mut now = HashMap::new();
            let mut changed = Vec::new();
            let mut lobbies = Vec::new();
            for (service, entry, lobby) in table.all_entries() {
                if lobby {
                    lobbies.push(service);
                    continue;
                }
                let key = (service, entry.room_id);
                let value = (entry.clients, entry.info);
                if published.get(&key) != Some(&value) {
                    changed.push(RoomEntry {
                        service: key.0.clone(),
                        room: key.1.clone(),
                        clients: value.0,
                        info: value.1.clone(),
                    });
                }
                now.insert(key, value);
            }
            let asking = placement.clone();
            let services = lobbies.clone();
            let synced = tokio::task::spawn_blocking(move || {
                asking.publish(&changed)?;
                let peers = asking.peers()?;
                if services.is_empty() {
                    return Ok::<_, crate::placement::PlacementError>((Vec::new(), peers));
                }
                Ok((asking.others(&services)?, peers))
            })
            .await;
            match synced {
                Ok(Ok((read, peers))) => {
                    published = now;
                    cluster_rooms.update(&table, &lobbies, read);
                    remote_clients.set_peers(peers);
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot sync rooms with the cluster"),
                Err(error) => tracing::warn!(%error, "room sync failed"),
            }
        }
    });
}
