//! [`MemoryBackend`]: stored rooms in the process's memory, lost when it
//! exits. For `--data-dir none`, tests and embedders that want storage's
//! semantics without a file.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{Backend, RoomCommit, StorageError, StoredRoom, StoredRoomSummary};

/// Stored rooms in memory. Not durable: everything is lost with the process.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    rooms: Mutex<BTreeMap<(String, String), Room>>,
}

#[derive(Debug, Default)]
struct Room {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    timers: BTreeMap<u64, u64>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn rooms(&self) -> MutexGuard<'_, BTreeMap<(String, String), Room>> {
        // A panic elsewhere while holding the lock leaves the map whole.
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Backend for MemoryBackend {
    fn load(&self, service: &str, room: &str) -> Result<StoredRoom, StorageError> {
        let rooms = self.rooms();
        let Some(stored) = rooms.get(&(service.to_owned(), room.to_owned())) else {
            return Ok(StoredRoom::default());
        };
        Ok(StoredRoom {
            entries: stored
                .entries
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            timers: stored.timers.iter().map(|(id, due)| (*id, *due)).collect(),
        })
    }

    fn commit(&self, commits: &[RoomCommit]) -> Result<(), StorageError> {
        let mut rooms = self.rooms();
        for commit in commits {
            let key = (commit.service.to_string(), commit.room.to_string());
            let room = rooms.entry(key.clone()).or_default();
            for (entry, value) in &commit.changes.entries {
                match value {
                    Some(value) => room.entries.insert(entry.clone(), value.clone()),
                    None => room.entries.remove(entry),
                };
            }
            for (id, due) in &commit.changes.timers {
                match due {
                    Some(due) => room.timers.insert(*id, *due),
                    None => room.timers.remove(id),
                };
            }
            if room.entries.is_empty() && room.timers.is_empty() {
                rooms.remove(&key);
            }
        }
        Ok(())
    }

    fn rooms(&self) -> Result<Vec<StoredRoomSummary>, StorageError> {
        Ok(MemoryBackend::rooms(self)
            .iter()
            .map(|((service, room), stored)| StoredRoomSummary {
                service: service.clone(),
                room: room.clone(),
                entries: stored.entries.len() as u64,
                bytes: stored
                    .entries
                    .iter()
                    .map(|(key, value)| (key.len() + value.len()) as u64)
                    .sum(),
                timers: stored.timers.len() as u64,
                next_timer_ms: stored.timers.values().min().copied(),
            })
            .collect())
    }

    fn delete_room(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        Ok(self
            .rooms()
            .remove(&(service.to_owned(), room.to_owned()))
            .is_some())
    }

    fn backup(&self, _to: &std::path::Path) -> Result<u64, StorageError> {
        Err(StorageError::Backend(
            "the in-memory store has no file to back up (the server runs with --no-storage)"
                .to_owned(),
        ))
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        "in memory (not durable: lost when the process exits)".to_owned()
    }
}
