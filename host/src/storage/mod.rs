//! Durable room storage: what a room stores outlives the room instance and
//! the process.
//!
//! - [`Backend`]: where stored rooms live, as a trait so other stores can be
//!   added (a networked one for a cluster). [`EmbeddedBackend`] keeps them
//!   in one redb file under `--data-dir` (the default of `roomhost serve`);
//!   [`MemoryBackend`] keeps them in the process, lost when it exits.
//! - `Storage` (crate-private): the host's handle on a backend. It loads a room's data
//!   when the room starts and commits each room's changes through one
//!   group-commit thread, so one durable write serves every room that
//!   committed meanwhile (`commit`).
//!
//! A live room's data is held by the room itself, as a
//! [`roomhost_rules::storage::RoomStore`]: reads never wait for a backend,
//! and a backend sees only whole-room loads and batches of changes.

mod commit;
mod embedded;
mod memory;

use std::sync::Arc;

pub use embedded::{EmbeddedBackend, FILE_NAME};
pub use memory::MemoryBackend;
pub use roomhost_rules::storage::Changes;

pub(crate) use commit::Storage;

/// What a backend holds for one room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRoom {
    /// Its entries, in key order.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Its durable timers: id and due time in Unix milliseconds.
    pub timers: Vec<(u64, u64)>,
}

impl StoredRoom {
    /// Whether the room stores nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.timers.is_empty()
    }
}

/// One room's changes since its last commit.
#[derive(Debug, Clone)]
pub struct RoomCommit {
    /// The room's service.
    pub service: Arc<str>,
    /// The room's id (empty for the lobby).
    pub room: Arc<str>,
    /// What changed.
    pub changes: Changes,
}

/// A room with stored data, as [`Backend::rooms`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredRoomSummary {
    /// The room's service.
    pub service: String,
    /// The room's id (empty for the lobby).
    pub room: String,
    /// Stored entries.
    pub entries: u64,
    /// Stored bytes, keys plus values.
    pub bytes: u64,
    /// Durable timers, with the earliest due time (Unix milliseconds).
    pub timers: u64,
    /// The earliest durable timer's due time, if any.
    pub next_timer_ms: Option<u64>,
}

/// Why storage failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend failed (I/O error, corrupt file, database error).
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// The data directory is held by another process.
    #[error("the data directory is in use by another roomhost process ({0})")]
    InUse(String),
    /// The write was refused because this node no longer owns the room: in
    /// a cluster, another node claimed it with a newer epoch (or this
    /// node's lease lapsed). Nothing of the refused write was stored.
    #[error("fenced, this node does not hold the room: {0}")]
    Fenced(String),
    /// The commit thread is gone (the server is shutting down).
    #[error("storage is shut down")]
    Closed,
}

/// Where stored rooms live.
///
/// Calls block (on disk or network I/O): the host makes them on its
/// storage thread or on tokio's blocking pool, never on a runtime worker.
/// Each `commit` is one atomic, durable transaction: when it returns `Ok`,
/// every change in it survives a crash of the process or the machine.
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// What a room stores (empty when nothing).
    fn load(&self, service: &str, room: &str) -> Result<StoredRoom, StorageError>;
    /// Whether a room stores anything (entries or durable timers), without
    /// reading its data; by default through [`Backend::load`].
    fn has_data(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        self.load(service, room).map(|stored| !stored.is_empty())
    }
    /// Applies the changes of many rooms in one durable transaction: all of
    /// them, or (on `Err`) none.
    fn commit(&self, commits: &[RoomCommit]) -> Result<(), StorageError>;
    /// Every room with stored data.
    fn rooms(&self) -> Result<Vec<StoredRoomSummary>, StorageError>;
    /// Deletes what a room stores; whether it stored anything.
    fn delete_room(&self, service: &str, room: &str) -> Result<bool, StorageError>;
    /// Writes a consistent copy of everything stored to the new file `to`
    /// while the backend stays in use; the number of rooms copied.
    fn backup(&self, to: &std::path::Path) -> Result<u64, StorageError>;
    /// Whether a write that returned `Ok` survives a crash (false for the
    /// in-memory backend).
    fn is_durable(&self) -> bool;
    /// Where the data lives, for logs and `/status`.
    fn describe(&self) -> String;
}

/// A room's key in a backend's ordered keyspace: the service and room with
/// their lengths, so that one room's keys are one contiguous range and no
/// room's range holds another's.
pub(crate) fn room_prefix(service: &str, room: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(service.len() + room.len() + 8);
    for part in [service, room] {
        prefix.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        prefix.extend_from_slice(part.as_bytes());
    }
    prefix
}

/// The service and room a [`room_prefix`] names, and the rest of the key.
pub(crate) fn split_room_key(key: &[u8]) -> Option<(String, String, &[u8])> {
    let mut rest = key;
    let mut parts = Vec::with_capacity(2);
    for _ in 0..2 {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if tail.len() < len {
            return None;
        }
        let (part, tail) = tail.split_at(len);
        parts.push(String::from_utf8(part.to_vec()).ok()?);
        rest = tail;
    }
    let room = parts.pop()?;
    let service = parts.pop()?;
    Some((service, room, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_prefixes_never_nest() {
        // "a" + "bc" and "ab" + "c" would collide without the lengths.
        assert_ne!(room_prefix("a", "bc"), room_prefix("ab", "c"));
        let mut key = room_prefix("chat", "");
        key.extend_from_slice(b"k");
        assert_eq!(
            split_room_key(&key),
            Some(("chat".to_owned(), String::new(), &b"k"[..]))
        );
        assert_eq!(split_room_key(&key[..3]), None);
    }
}
