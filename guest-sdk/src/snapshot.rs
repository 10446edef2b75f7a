//! How a room's state crosses a hot reload: [`Reloadable`].
//!
//! On reload the host asks every live room for a snapshot, starts the new
//! version with it, and re-attaches the room's clients, timers and info
//! without calling `connect` again. `#[room_service]` decides where the
//! snapshot comes from:
//!
//! - `#[room_service(snapshot = serde)]`: the service type is serialized
//!   with serde (as JSON) and deserialized into the new version. The type
//!   must implement `Serialize` and `Deserialize`; fields marked
//!   `#[serde(skip)]` come back as their `Default`.
//! - `#[room_service]`: [`RoomService::snapshot`] and
//!   [`RoomService::restore`] decide. Their defaults say "not supported",
//!   and the host then reloads the room by starting the new version fresh
//!   and replaying `connect` for each client.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{InitInfo, Room, RoomService};

/// A service whose state can cross a hot reload. Implemented by
/// [`#[room_service]`](crate::room_service); do not implement it by hand
/// (override [`RoomService::snapshot`] and [`RoomService::restore`]
/// instead).
pub trait Reloadable: RoomService {
    /// The room's state, `Ok(None)` when the service does not keep state
    /// across reloads, or why it cannot be saved.
    fn save(&self) -> Result<Option<Vec<u8>>, String>;

    /// A service value rebuilt from `snapshot`, in place of `init`.
    fn load(room: &mut Room<'_>, info: &InitInfo, snapshot: &[u8]) -> Result<Self, String>;
}

/// Creates a room's service value the way the host starts an instance: from
/// the snapshot in `info.restored` when there is one, else `Default` plus
/// `init`. Shared by the wasm export and native drivers; a restore error is
/// theirs to report (the wasm export traps, so the host keeps the old
/// version).
#[doc(hidden)]
pub fn start<S: Reloadable>(room: &mut Room<'_>, info: &InitInfo) -> Result<S, String> {
    match &info.restored {
        Some(snapshot) => S::load(room, info, snapshot)
            .map_err(|error| format!("restoring the room's state failed: {error}")),
        None => {
            let mut service = S::default();
            service.init(room, info);
            Ok(service)
        }
    }
}

/// `#[room_service(snapshot = serde)]`'s snapshot: the value as JSON.
#[doc(hidden)]
pub fn serde_save<S: Serialize>(service: &S) -> Result<Option<Vec<u8>>, String> {
    serde_json::to_vec(service)
        .map(Some)
        .map_err(|error| format!("cannot serialize the room's state: {error}"))
}

/// `#[room_service(snapshot = serde)]`'s restore.
#[doc(hidden)]
pub fn serde_load<S: DeserializeOwned>(snapshot: &[u8]) -> Result<S, String> {
    serde_json::from_slice(snapshot)
        .map_err(|error| format!("cannot restore the room's state: {error}"))
}
