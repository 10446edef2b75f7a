//! [`EmbeddedBackend`]: stored rooms in one redb file (`roomhost.redb` in
//! the data directory). redb is a copy-on-write B-tree: a commit writes new
//! pages, fsyncs them, then flips the root, so a crash at any moment leaves
//! the last committed state (see DESIGN.md, "Durable rooms", for why redb).
//!
//! Three tables, each keyed by the room's prefix (`room_prefix`):
//! `entries` (prefix + key → value), `timers` (prefix + id → due time) and
//! `rooms` (prefix → entries, bytes, timers), the last kept in step by every
//! commit so listing rooms does not scan their data.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

use super::{
    Backend, RoomCommit, StorageError, StoredRoom, StoredRoomSummary, room_prefix, split_room_key,
};

const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
const TIMERS: TableDefinition<&[u8], u64> = TableDefinition::new("timers");
/// Per room: (entries, bytes, timers).
const ROOMS: TableDefinition<&[u8], (u64, u64, u64)> = TableDefinition::new("rooms");

/// The file name inside the data directory.
pub const FILE_NAME: &str = "roomhost.redb";

/// Stored rooms in one redb file. One process at a time may open it.
pub struct EmbeddedBackend {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn failed(error: impl Into<redb::Error>) -> StorageError {
    StorageError::Backend(error.into().to_string())
}

impl EmbeddedBackend {
    /// Opens (or creates) the store in directory `dir`, creating the
    /// directory. Fails with [`StorageError::InUse`] when another process
    /// has it open.
    pub fn open(dir: &Path) -> Result<EmbeddedBackend, StorageError> {
        std::fs::create_dir_all(dir).map_err(|error| {
            StorageError::Backend(format!("cannot create {}: {error}", dir.display()))
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                StorageError::InUse(path.display().to_string())
            }
            other => StorageError::Backend(format!("{}: {other}", path.display())),
        })?;
        // Create the tables once, so readers never meet a missing one.
        let txn = db.begin_write().map_err(failed)?;
        txn.open_table(ENTRIES).map_err(failed)?;
        txn.open_table(TIMERS).map_err(failed)?;
        txn.open_table(ROOMS).map_err(failed)?;
        txn.commit().map_err(failed)?;
        Ok(EmbeddedBackend { db, path })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The copy [`Backend::backup`] writes: the last committed state, read
    /// in one read transaction while writers go on.
    fn copy_to(&self, to: &Path) -> Result<u64, StorageError> {
        if to.exists() {
            return Err(StorageError::Backend(format!(
                "{} exists: a backup goes to a new file",
                to.display()
            )));
        }
        let copy = Database::create(to)
            .map_err(|error| StorageError::Backend(format!("{}: {error}", to.display())))?;
        let read = self.db.begin_read().map_err(failed)?;
        let write = copy.begin_write().map_err(failed)?;
        let mut rooms = 0;
        {
            let (entries, timers, summary) = (
                read.open_table(ENTRIES).map_err(failed)?,
                read.open_table(TIMERS).map_err(failed)?,
                read.open_table(ROOMS).map_err(failed)?,
            );
            let mut out = write.open_table(ENTRIES).map_err(failed)?;
            for item in entries.iter().map_err(failed)? {
                let (key, value) = item.map_err(failed)?;
                out.insert(key.value(), value.value()).map_err(failed)?;
            }
            let mut out = write.open_table(TIMERS).map_err(failed)?;
            for item in timers.iter().map_err(failed)? {
                let (key, value) = item.map_err(failed)?;
                out.insert(key.value(), value.value()).map_err(failed)?;
            }
            let mut out = write.open_table(ROOMS).map_err(failed)?;
            for item in summary.iter().map_err(failed)? {
                let (key, value) = item.map_err(failed)?;
                out.insert(key.value(), value.value()).map_err(failed)?;
                rooms += 1;
            }
        }
        write.commit().map_err(failed)?;
        Ok(rooms)
    }
}

impl Backend for EmbeddedBackend {
    fn load(&self, service: &str, room: &str) -> Result<StoredRoom, StorageError> {
        let prefix = room_prefix(service, room);
        let read = self.db.begin_read().map_err(failed)?;
        let mut stored = StoredRoom::default();
        let entries = read.open_table(ENTRIES).map_err(failed)?;
        for item in entries.range(prefix.as_slice()..).map_err(failed)? {
            let (key, value) = item.map_err(failed)?;
            let Some(key) = key.value().strip_prefix(prefix.as_slice()) else {
                break;
            };
            stored.entries.push((key.to_vec(), value.value().to_vec()));
        }
        let timers = read.open_table(TIMERS).map_err(failed)?;
        for item in timers.range(prefix.as_slice()..).map_err(failed)? {
            let (key, due) = item.map_err(failed)?;
            let Some(id) = key.value().strip_prefix(prefix.as_slice()) else {
                break;
            };
            if let Ok(id) = <[u8; 8]>::try_from(id) {
                stored.timers.push((u64::from_be_bytes(id), due.value()));
            }
        }
        Ok(stored)
    }

    fn has_data(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        // The per-room summary exists exactly while the room stores something.
        let read = self.db.begin_read().map_err(failed)?;
        let rooms = read.open_table(ROOMS).map_err(failed)?;
        let prefix = room_prefix(service, room);
        Ok(rooms.get(prefix.as_slice()).map_err(failed)?.is_some())
    }

    fn commit(&self, commits: &[RoomCommit]) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(failed)?;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(failed)?;
            let mut timers = txn.open_table(TIMERS).map_err(failed)?;
            let mut rooms = txn.open_table(ROOMS).map_err(failed)?;
            for commit in commits {
                let prefix = room_prefix(&commit.service, &commit.room);
                let (mut count, mut bytes, mut timer_count) = rooms
                    .get(prefix.as_slice())
                    .map_err(failed)?
                    .map_or((0, 0, 0), |summary| summary.value());
                let mut key = prefix.clone();
                for (entry, value) in &commit.changes.entries {
                    key.truncate(prefix.len());
                    key.extend_from_slice(entry);
                    let old = match value {
                        Some(value) => entries
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(failed)?
                            .map(|old| old.value().len()),
                        None => entries
                            .remove(key.as_slice())
                            .map_err(failed)?
                            .map(|old| old.value().len()),
                    };
                    let entry_bytes = entry.len() as u64;
                    // Saturating: a summary that drifted must not take the
                    // storage thread down.
                    if let Some(old) = old {
                        count = count.saturating_sub(1);
                        bytes = bytes.saturating_sub(entry_bytes + old as u64);
                    }
                    if let Some(value) = value {
                        count += 1;
                        bytes += entry_bytes + value.len() as u64;
                    }
                }
                for (id, due) in &commit.changes.timers {
                    key.truncate(prefix.len());
                    key.extend_from_slice(&id.to_be_bytes());
                    let old = match due {
                        Some(due) => timers.insert(key.as_slice(), *due).map_err(failed)?,
                        None => timers.remove(key.as_slice()).map_err(failed)?,
                    };
                    timer_count = timer_count.saturating_sub(u64::from(old.is_some()))
                        + u64::from(due.is_some());
                }
                if count == 0 && timer_count == 0 {
                    rooms.remove(prefix.as_slice()).map_err(failed)?;
                } else {
                    rooms
                        .insert(prefix.as_slice(), (count, bytes, timer_count))
                        .map_err(failed)?;
                }
            }
        }
        txn.commit().map_err(failed)
    }

    fn rooms(&self) -> Result<Vec<StoredRoomSummary>, StorageError> {
        let read = self.db.begin_read().map_err(failed)?;
        let rooms = read.open_table(ROOMS).map_err(failed)?;
        let timers = read.open_table(TIMERS).map_err(failed)?;
        let mut listed = Vec::new();
        for item in rooms.iter().map_err(failed)? {
            let (key, summary) = item.map_err(failed)?;
            let Some((service, room, _)) = split_room_key(key.value()) else {
                continue;
            };
            let (entries, bytes, timer_count) = summary.value();
            let mut next_timer_ms = None;
            if timer_count > 0 {
                for item in timers.range(key.value()..).map_err(failed)? {
                    let (timer, due) = item.map_err(failed)?;
                    if !timer.value().starts_with(key.value()) {
                        break;
                    }
                    let due = due.value();
                    next_timer_ms = Some(next_timer_ms.map_or(due, |next: u64| next.min(due)));
                }
            }
            listed.push(StoredRoomSummary {
                service,
                room,
                entries,
                bytes,
                timers: timer_count,
                next_timer_ms,
            });
        }
        Ok(listed)
    }

    fn delete_room(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        let stored = self.load(service, room)?;
        if stored.is_empty() {
            return Ok(false);
        }
        let changes = roomhost_rules::storage::Changes {
            entries: stored
                .entries
                .into_iter()
                .map(|(key, _)| (key, None))
                .collect(),
            timers: stored
                .timers
                .into_iter()
                .map(|(id, _)| (id, None))
                .collect(),
        };
        self.commit(&[RoomCommit {
            service: service.into(),
            room: room.into(),
            changes,
        }])?;
        Ok(true)
    }

    fn backup(&self, to: &Path) -> Result<u64, StorageError> {
        self.copy_to(to)
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("{} (redb, fsync per commit)", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use roomhost_rules::storage::Changes;

    use super::*;

    fn commit(service: &str, room: &str, puts: &[(&str, Option<&str>)]) -> RoomCommit {
        let mut changes = Changes::default();
        for (key, value) in puts {
            changes.entries.insert(
                key.as_bytes().to_vec(),
                value.map(|v| v.as_bytes().to_vec()),
            );
        }
        RoomCommit {
            service: service.into(),
            room: room.into(),
            changes,
        }
    }

    #[test]
    fn commits_survive_reopening_and_rooms_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedBackend::open(dir.path()).unwrap();
            store
                .commit(&[
                    commit("chat", "a", &[("k", Some("1")), ("j", Some("22"))]),
                    commit("chat", "ab", &[("k", Some("other"))]),
                ])
                .unwrap();
            store
                .commit(&[commit("chat", "a", &[("j", None)])])
                .unwrap();
            // A second open in the same process is refused while it is open.
            assert!(matches!(
                EmbeddedBackend::open(dir.path()),
                Err(StorageError::InUse(_))
            ));
        }
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        let a = store.load("chat", "a").unwrap();
        assert!(store.has_data("chat", "a").unwrap());
        assert!(!store.has_data("chat", "b").unwrap());
        assert_eq!(a.entries, vec![(b"k".to_vec(), b"1".to_vec())]);
        let rooms = store.rooms().unwrap();
        assert_eq!(rooms.len(), 2);
        assert_eq!((rooms[0].entries, rooms[0].bytes), (1, 2));
        assert!(store.delete_room("chat", "a").unwrap());
        assert!(store.load("chat", "a").unwrap().is_empty());
        assert_eq!(store.rooms().unwrap().len(), 1);
        let copy = dir.path().join("copy.redb");
        assert_eq!(store.backup(&copy).unwrap(), 1);
        drop(store);
        std::fs::rename(&copy, dir.path().join(FILE_NAME)).unwrap();
        let restored = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(restored.rooms().unwrap().len(), 1);
    }
}
