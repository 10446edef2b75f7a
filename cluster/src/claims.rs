//! [`Claims`]: the rooms this node holds, each with the fencing epoch it
//! claimed it with. Written by [`Leases`](crate::Leases) (claim, release,
//! lease lost), read by [`PostgresBackend`](crate::PostgresBackend), which
//! writes a room only under the epoch recorded here.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Room → epoch, for the rooms this node claimed.
#[derive(Debug, Default)]
pub struct Claims {
    rooms: Mutex<HashMap<String, HashMap<String, i64>>>,
}

impl Claims {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, i64>>> {
        // The map is whole after any panic: every change is one call.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The epoch this node holds `room` of `service` with, if it does.
    pub fn epoch(&self, service: &str, room: &str) -> Option<i64> {
        self.lock().get(service)?.get(room).copied()
    }

    /// Records a claim.
    pub(crate) fn insert(&self, service: &str, room: &str, epoch: i64) {
        self.lock()
            .entry(service.to_owned())
            .or_default()
            .insert(room.to_owned(), epoch);
    }

    /// Forgets a claim; the epoch it had.
    pub(crate) fn remove(&self, service: &str, room: &str) -> Option<i64> {
        let mut rooms = self.lock();
        let per_service = rooms.get_mut(service)?;
        let epoch = per_service.remove(room);
        if per_service.is_empty() {
            rooms.remove(service);
        }
        epoch
    }

    /// Forgets every claim (the lease lapsed, or the node joined again).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Every claim: service, room, epoch.
    pub fn list(&self) -> Vec<(String, String, i64)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .flat_map(|(service, rooms)| {
                rooms
                    .iter()
                    .map(|(room, epoch)| (service.clone(), room.clone(), *epoch))
            })
            .collect();
        all.sort();
        all
    }
}
