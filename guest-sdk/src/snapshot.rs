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
//!
//! # Changing the shape of the state
//!
//! A snapshot is taken by the old version and read by the new one, so the
//! new version must read what the old one wrote. With `snapshot = serde`
//! (JSON), most changes are safe when written with serde's attributes:
//!
//! - **Adding a field**: give it `#[serde(default)]` (or put
//!   `#[serde(default)]` on the struct), so a snapshot without it loads
//!   with the field's `Default`.
//! - **Renaming a field**: `#[serde(alias = "old_name")]` reads both names.
//! - **Removing a field**: just remove it; unknown fields are ignored
//!   (unless the type has `#[serde(deny_unknown_fields)]`).
//! - **Changing a field's type**: add a new field (with a default) and
//!   stop using the old one, or deserialize with
//!   `#[serde(deserialize_with = ...)]` from either form.
//!
//! ```
//! use roomhost_sdk::{RoomService, room_service};
//! use serde::{Deserialize, Serialize};
//!
//! // Version 2 of a service whose version 1 was `struct Board { cells: Vec<u8> }`.
//! #[derive(Default, Serialize, Deserialize)]
//! #[room_service(snapshot = serde)]
//! struct Board {
//!     #[serde(alias = "cells")]
//!     squares: Vec<u8>,
//!     #[serde(default)]
//!     moves: u32,
//! }
//!
//! impl RoomService for Board {}
//!
//! // A version-1 snapshot loads into version 2.
//! let old = br#"{"cells":[0,1,2]}"#;
//! let board: Board = serde_json::from_slice(old).unwrap();
//! assert_eq!((board.squares.len(), board.moves), (3, 0));
//! ```
//!
//! When the new version cannot read a snapshot, the room stays on the old
//! version, and `roomhost dev` reports it with the reason: for serde,
//! `cannot restore the room's state: missing field ...` naming the field.
//! Test a change with [`TestRoom::reload`](crate::testing::TestRoom::reload)
//! or by restoring an old snapshot with
//! [`TestRoomBuilder::restored`](crate::testing::TestRoomBuilder::restored).

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
/// `init`. Shared by the wasm export and native drivers. The error is the
/// service's own reason: `init`'s, or for a restore, the snapshot's
/// (`cannot restore the room's state: ...`); the host reports it (a failed
/// restore keeps the room on the old version).
#[doc(hidden)]
pub fn start<S: Reloadable>(room: &mut Room<'_>, info: &InitInfo) -> Result<S, String> {
    match &info.restored {
        Some(snapshot) => S::load(room, info, snapshot),
        None => {
            let mut service = S::default();
            service.init(room, info)?;
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
