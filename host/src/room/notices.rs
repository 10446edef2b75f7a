//! Directory changes waiting for a service's lobby, coalesced per room.
//!
//! Rooms report to their lobby on every change in client count or info.
//! Queuing each report in the lobby's inbox would fill it under churn (a
//! thousand rooms closing at once) and drop notices. Instead the reports wait
//! here, one per room: a newer report replaces an older one, so the pending
//! set never exceeds the number of rooms, and the lobby is woken once to
//! take them all, in the order the rooms first changed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};

use crate::wasm::GuestRoomChange;

/// Pending changes of every service.
#[derive(Default)]
pub(super) struct LobbyNotices {
    pending: Mutex<HashMap<Arc<str>, Pending>>,
}

#[derive(Default)]
struct Pending {
    next_seq: u64,
    /// Room id → (when it first changed since the last take, latest change).
    changes: HashMap<String, (u64, GuestRoomChange)>,
}

impl LobbyNotices {
    /// Records `change` for `service`'s lobby. Returns whether the lobby
    /// needs waking: it had nothing pending.
    pub(super) fn record(&self, service: &Arc<str>, change: GuestRoomChange) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = pending.entry(service.clone()).or_default();
        let was_empty = pending.changes.is_empty();
        let room = match &change {
            GuestRoomChange::Updated(entry) => entry.room_id.clone(),
            GuestRoomChange::Closed(room) => room.clone(),
        };
        // A room already pending keeps its place in the order.
        match pending.changes.entry(room) {
            Entry::Occupied(mut slot) => slot.get_mut().1 = change,
            Entry::Vacant(slot) => {
                slot.insert((pending.next_seq, change));
                pending.next_seq += 1;
            }
        }
        was_empty
    }

    /// Takes `service`'s pending changes, oldest first.
    pub(super) fn take(&self, service: &str) -> Vec<GuestRoomChange> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pending) = pending.get_mut(service) else {
            return Vec::new();
        };
        let mut changes: Vec<_> = pending.changes.drain().map(|(_, change)| change).collect();
        changes.sort_unstable_by_key(|(seq, _)| *seq);
        changes.into_iter().map(|(_, change)| change).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::GuestRoomEntry;

    fn updated(room: &str, clients: u32) -> GuestRoomChange {
        GuestRoomChange::Updated(GuestRoomEntry {
            room_id: room.into(),
            clients,
            info: "null".into(),
        })
    }

    fn describe(changes: &[GuestRoomChange]) -> Vec<String> {
        changes
            .iter()
            .map(|change| match change {
                GuestRoomChange::Updated(entry) => format!("{}={}", entry.room_id, entry.clients),
                GuestRoomChange::Closed(room) => format!("{room} closed"),
            })
            .collect()
    }

    #[test]
    fn the_latest_change_per_room_is_kept_in_first_change_order() {
        let notices = LobbyNotices::default();
        let service: Arc<str> = "svc".into();
        assert!(notices.record(&service, updated("a", 1)), "first wakes");
        assert!(!notices.record(&service, updated("b", 1)));
        assert!(!notices.record(&service, updated("a", 2)));
        assert!(!notices.record(&service, GuestRoomChange::Closed("b".into())));
        assert_eq!(describe(&notices.take("svc")), ["a=2", "b closed"]);
        assert!(notices.take("svc").is_empty());
        assert!(
            notices.record(&service, updated("c", 1)),
            "empty again: wakes"
        );
        assert!(notices.take("other").is_empty());
    }

    #[test]
    fn churn_is_bounded_by_the_number_of_rooms() {
        let notices = LobbyNotices::default();
        let service: Arc<str> = "svc".into();
        for round in 0..100 {
            for room in 0..50 {
                notices.record(&service, updated(&room.to_string(), round));
            }
        }
        let changes = notices.take("svc");
        assert_eq!(changes.len(), 50);
        assert_eq!(describe(&changes)[0], "0=99");
    }
}
