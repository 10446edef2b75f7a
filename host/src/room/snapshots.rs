//! Durable snapshots: a snapshot-based service made durable by
//! configuration (`ServiceSpec::durable_snapshots`). The host saves a room's
//! `snapshot` in storage, under the service's own snapshot keyspace
//! (`{service}#snapshot`, a name no service can have), and a room that
//! starts again restores from it. Best effort by design: a failed save is
//! logged and the room goes on; what changed since the last save is lost in
//! a crash.

use std::sync::Arc;

use roomhost_rules::storage::Changes;

use super::body::RoomBody;
use super::meta::RoomMeta;
use crate::storage::{RoomCommit, Storage};
use crate::wasm::{Failure, GuestError};

/// The entry a room's snapshot is kept under.
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// Where `service`'s snapshots live in the backend.
fn keyspace(service: &str) -> Arc<str> {
    format!("{service}#snapshot").into()
}

/// The room's saved snapshot, if any.
pub(super) async fn load(
    storage: &Storage,
    meta: &RoomMeta,
) -> Result<Option<Vec<u8>>, GuestError> {
    let stored = storage
        .load(&keyspace(&meta.key.service), &meta.key.room)
        .await
        .map_err(|error| {
            GuestError(
                format!("cannot load the room's saved snapshot: {error}"),
                Failure::Storage,
            )
        })?;
    Ok(stored
        .entries
        .into_iter()
        .find(|(key, _)| key == SNAPSHOT_KEY)
        .map(|(_, value)| value))
}

/// Asks the room for its snapshot and stores it. Only a trap in `snapshot`
/// is an error (the instance is unusable then).
pub(super) async fn save(
    instance: &mut RoomBody,
    storage: &Storage,
    meta: &RoomMeta,
) -> Result<(), GuestError> {
    let snapshot = match instance.snapshot().await? {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => {
            tracing::warn!("durable snapshots are on, but the service has no snapshot to save");
            return Ok(());
        }
        Err(reason) => {
            tracing::warn!(%reason, "the room refused its snapshot; the last saved one stays");
            return Ok(());
        }
    };
    let mut changes = Changes::default();
    changes
        .entries
        .insert(SNAPSHOT_KEY.to_vec(), Some(snapshot));
    let commit = RoomCommit {
        service: keyspace(&meta.key.service),
        room: meta.key.room.clone(),
        changes,
    };
    if let Err(error) = storage.commit(commit).await {
        tracing::error!(%error, "cannot save the room's snapshot; the last saved one stays");
    }
    Ok(())
}
