//! [`Storage`]: the host's handle on a [`Backend`]. Loads run on tokio's
//! blocking pool; commits go to one storage thread that groups them.
//!
//! Group commit: the thread takes every commit queued while the previous
//! group was being written, and writes them as one backend transaction (one
//! fsync for the embedded store). Under load, many rooms share each fsync;
//! when idle, a lone commit is written at once. A group refused because one
//! of its rooms is fenced (a cluster node lost it) is written again room by
//! room, so only the fenced room's commit fails. Each room has at most one
//! commit in flight (its actor waits for it before the next event), so the
//! queue holds at most one commit per live room.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Backend, RoomCommit, StorageError, StoredRoom};

/// The most commits written in one group: bounds a transaction's size.
const MAX_GROUP: usize = 4096;

struct Pending {
    commit: RoomCommit,
    queued: Instant,
    done: oneshot::Sender<Result<CommitTiming, StorageError>>,
}

/// What a commit cost, for metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommitTiming {
    /// From queuing to durable.
    pub(crate) latency: Duration,
    /// Commits in the group it was written with.
    pub(crate) group: usize,
}

/// Loads rooms from a backend and commits their changes, grouped.
pub(crate) struct Storage {
    backend: Arc<dyn Backend>,
    queue: mpsc::UnboundedSender<Pending>,
}

impl Storage {
    /// Starts the storage thread for `backend`. It ends when the last
    /// handle is dropped, after writing what is queued.
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Storage {
        let (queue, commits) = mpsc::unbounded_channel();
        let writer = backend.clone();
        std::thread::Builder::new()
            .name("roomhost-storage".into())
            .spawn(move || write_groups(&*writer, commits))
            .map(drop)
            .unwrap_or_else(|error| {
                // Without the thread every commit fails and rooms that
                // write are disposed: loud, not silent.
                tracing::error!(%error, "cannot start the storage thread");
            });
        Storage { backend, queue }
    }

    /// The backend.
    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// What room `room` of `service` stores.
    pub(crate) async fn load(&self, service: &str, room: &str) -> Result<StoredRoom, StorageError> {
        let backend = self.backend.clone();
        let (service, room) = (service.to_owned(), room.to_owned());
        tokio::task::spawn_blocking(move || backend.load(&service, &room))
            .await
            .unwrap_or_else(|error| Err(StorageError::Backend(format!("load failed: {error}"))))
    }

    /// Whether room `room` of `service` stores anything.
    pub(crate) async fn has_data(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        let backend = self.backend.clone();
        let (service, room) = (service.to_owned(), room.to_owned());
        tokio::task::spawn_blocking(move || backend.has_data(&service, &room))
            .await
            .unwrap_or_else(|error| Err(StorageError::Backend(format!("lookup failed: {error}"))))
    }

    /// Commits one room's changes; returns once they are durable, with what
    /// the commit cost.
    pub(crate) async fn commit(&self, commit: RoomCommit) -> Result<CommitTiming, StorageError> {
        let (done, result) = oneshot::channel();
        let pending = Pending {
            commit,
            queued: Instant::now(),
            done,
        };
        self.queue.send(pending).map_err(|_| StorageError::Closed)?;
        result.await.map_err(|_| StorageError::Closed)?
    }
}

/// The storage thread: writes queued commits in groups until every handle
/// is gone.
fn write_groups(backend: &dyn Backend, mut commits: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = commits.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match commits.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let size = group.len();
        let mut waiting = Vec::with_capacity(size);
        let batch: Vec<RoomCommit> = group
            .into_iter()
            .map(|pending| {
                waiting.push((pending.queued, pending.done));
                pending.commit
            })
            .collect();
        let results = match backend.commit(&batch) {
            // A room another node now owns must not fail the rooms it was
            // grouped with: the group is written again one room at a time.
            Err(StorageError::Fenced(_)) if size > 1 => batch
                .iter()
                .map(|commit| backend.commit(std::slice::from_ref(commit)))
                .collect(),
            result => vec![result; size],
        };
        for ((queued, done), result) in waiting.into_iter().zip(results) {
            if let Err(error) = &result {
                tracing::error!(%error, rooms = size, "storage commit failed");
            }
            let timing = CommitTiming {
                latency: queued.elapsed(),
                group: size,
            };
            let _ = done.send(result.map(|()| timing));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::storage::{MemoryBackend, StoredRoomSummary};

    /// A backend that fences room "lost" and otherwise stores in memory.
    #[derive(Debug, Default)]
    struct Fencing {
        inner: MemoryBackend,
        calls: Mutex<Vec<usize>>,
    }

    impl Backend for Fencing {
        fn load(&self, service: &str, room: &str) -> Result<StoredRoom, StorageError> {
            self.inner.load(service, room)
        }
        fn commit(&self, commits: &[RoomCommit]) -> Result<(), StorageError> {
            self.calls.lock().unwrap().push(commits.len());
            if commits.iter().any(|commit| &*commit.room == "lost") {
                return Err(StorageError::Fenced("another node owns it".into()));
            }
            self.inner.commit(commits)
        }
        fn rooms(&self) -> Result<Vec<StoredRoomSummary>, StorageError> {
            self.inner.rooms()
        }
        fn delete_room(&self, service: &str, room: &str) -> Result<bool, StorageError> {
            self.inner.delete_room(service, room)
        }
        fn backup(&self, to: &std::path::Path) -> Result<u64, StorageError> {
            self.inner.backup(to)
        }
        fn is_durable(&self) -> bool {
            false
        }
        fn describe(&self) -> String {
            "fencing".into()
        }
    }

    fn put(room: &str) -> RoomCommit {
        let mut changes = roomhost_rules::storage::Changes::default();
        changes.entries.insert(b"k".to_vec(), Some(b"v".to_vec()));
        RoomCommit {
            service: "chat".into(),
            room: room.into(),
            changes,
        }
    }

    #[test]
    fn a_fenced_room_fails_alone_in_its_group() {
        let backend = Arc::new(Fencing::default());
        let (queue, commits) = mpsc::unbounded_channel();
        let mut results = Vec::new();
        for room in ["a", "lost", "b"] {
            let (done, result) = oneshot::channel();
            queue
                .send(Pending {
                    commit: put(room),
                    queued: Instant::now(),
                    done,
                })
                .unwrap();
            results.push(result);
        }
        drop(queue);
        write_groups(&*backend, commits);
        let outcomes: Vec<_> = results
            .into_iter()
            .map(|mut result| result.try_recv().unwrap().map(|_| ()))
            .collect();
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
        assert!(matches!(outcomes[1], Err(StorageError::Fenced(_))));
        assert_eq!(*backend.calls.lock().unwrap(), vec![3, 1, 1, 1]);
        assert!(!backend.load("chat", "a").unwrap().is_empty());
    }
}
