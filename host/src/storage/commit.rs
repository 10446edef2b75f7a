//! [`Storage`]: the host's handle on a [`Backend`]. Loads run on tokio's
//! blocking pool; commits go to one storage thread that groups them.
//!
//! Group commit: the thread takes every commit queued while the previous
//! group was being written, and writes them as one backend transaction (one
//! fsync for the embedded store). Under load, many rooms share each fsync;
//! when idle, a lone commit is written at once. Each room has at most one
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
        let result = backend.commit(&batch);
        if let Err(error) = &result {
            tracing::error!(%error, rooms = size, "storage commit failed");
        }
        for (queued, done) in waiting {
            let timing = CommitTiming {
                latency: queued.elapsed(),
                group: size,
            };
            let _ = done.send(result.clone().map(|()| timing));
        }
    }
}
