//! The room's durable storage: [`Storage`], from [`Room::storage`].
//!
//! [`Room::storage`]: crate::Room::storage

use std::error::Error;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::room::{Backend, TimerError, duration_to_ms};
use crate::{Room, TimerId};

/// Why a write was refused: a key, a value or the room's total over its
/// cap. Nothing was written. Match on it rather than on its message.
pub use roomhost_rules::storage::StorageRefusal as StorageError;
/// One write of a [`Storage::batch`].
pub use roomhost_rules::storage::Write;

/// A room's durable key-value storage: byte keys to byte values, kept by
/// the host across restarts and crashes, with serde helpers.
///
/// Reads see every earlier write, including this callback's. The writes one
/// event makes (a client's frame, a timer, a connect, a request, with the
/// callbacks they cause) commit together, atomically, once it is handled;
/// the frames, closes, transfers and HTTP answers of that event reach anyone
/// only after the commit is durable, so no client sees state the host could
/// still lose. A commit that fails ends the room (its clients get close code
/// 1011).
///
/// Caps, refused with a [`StorageError`] and no change: keys up to
/// [`MAX_STORAGE_KEY_BYTES`](crate::limits::MAX_STORAGE_KEY_BYTES), values up
/// to [`MAX_STORAGE_VALUE_BYTES`](crate::limits::MAX_STORAGE_VALUE_BYTES),
/// and [`MAX_ROOM_STORAGE_BYTES`](crate::limits::MAX_ROOM_STORAGE_BYTES) of
/// keys plus values per room (the host's defaults; an operator may change
/// them).
///
/// When a room with stored data starts again (its first client or request
/// after it ended, or after a restart), its storage is loaded before `init`.
///
/// ```
/// use roomhost_sdk::{ClientId, Message, Room, RoomService, InitInfo, room_service};
///
/// #[derive(Default)]
/// #[room_service]
/// pub struct Guestbook {
///     count: u64,
/// }
///
/// impl RoomService for Guestbook {
///     fn init(&mut self, room: &mut Room<'_>, _info: &InitInfo) -> Result<(), String> {
///         // Stored data is already there when a room starts again.
///         self.count = room.storage().get_json("count").map_err(|e| e.to_string())?.unwrap_or(0);
///         Ok(())
///     }
///
///     fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
///         let Some(text) = message.as_text() else { return };
///         let key = format!("entry/{:08}", self.count);
///         let signed = room
///             .storage()
///             .batch(vec![
///                 roomhost_sdk::Write::Put(key.into_bytes(), text.as_bytes().to_vec()),
///                 roomhost_sdk::Write::Put(b"count".to_vec(), (self.count + 1).to_string().into_bytes()),
///             ]);
///         match signed {
///             // Sent once the entry is durable.
///             Ok(()) => {
///                 self.count += 1;
///                 room.send(client, format!("signed #{}", self.count));
///             }
///             Err(error) => room.send(client, format!("not signed: {error}")),
///         }
///     }
/// }
/// ```
pub struct Storage<'r> {
    backend: &'r mut dyn Backend,
}

impl<'r> Storage<'r> {
    pub(crate) fn new(backend: &'r mut dyn Backend) -> Self {
        Storage { backend }
    }

    /// The value stored under `key`.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        calls::get(&mut *self.backend, key.as_ref())
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), StorageError> {
        calls::put(&mut *self.backend, key.into(), value.into())
    }

    /// Removes `key`; whether it was there.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> bool {
        calls::delete(&mut *self.backend, key.as_ref())
    }

    /// Applies `writes` in order, all or none (every cap is checked first).
    pub fn batch(&mut self, writes: Vec<Write>) -> Result<(), StorageError> {
        calls::batch(&mut *self.backend, writes)
    }

    /// Entries whose key starts with `prefix`, in key order, after
    /// `start_after` when given: at most `limit` (0: the maximum, 1,000) and
    /// about 4 MiB. Page on with the last key returned; an empty page means
    /// there are no more.
    ///
    /// ```
    /// # use roomhost_sdk::Room;
    /// fn all_entries(room: &mut Room<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    ///     let mut all = Vec::new();
    ///     loop {
    ///         let after = all.last().map(|(key, _): &(Vec<u8>, Vec<u8>)| key.clone());
    ///         let page = room.storage().list(b"entry/", after.as_deref(), 0);
    ///         if page.is_empty() {
    ///             return all;
    ///         }
    ///         all.extend(page);
    ///     }
    /// }
    /// ```
    pub fn list(
        &mut self,
        prefix: impl AsRef<[u8]>,
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        calls::list(&mut *self.backend, prefix.as_ref(), start_after, limit)
    }

    /// Every entry whose key starts with `prefix`, in key order, read page
    /// by page with [`Storage::list`]. What a room stores is bounded by
    /// [`MAX_ROOM_STORAGE_BYTES`](crate::limits::MAX_ROOM_STORAGE_BYTES), so
    /// this is too.
    ///
    /// ```
    /// # use roomhost_sdk::Room;
    /// fn players(room: &mut Room<'_>) -> Vec<String> {
    ///     room.storage()
    ///         .list_all("player/")
    ///         .into_iter()
    ///         .map(|(_, name)| String::from_utf8_lossy(&name).into_owned())
    ///         .collect()
    /// }
    /// ```
    pub fn list_all(&mut self, prefix: impl AsRef<[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let prefix = prefix.as_ref();
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            let after = all.last().map(|(key, _)| key.clone());
            let page = self.list(prefix, after.as_deref(), 0);
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }

    /// The bytes the room stores, keys plus values.
    pub fn size(&mut self) -> u64 {
        calls::size(&mut *self.backend)
    }

    /// The JSON value stored under `key`, deserialized; `Ok(None)` when the
    /// key is absent.
    pub fn get_json<T: DeserializeOwned>(
        &mut self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<T>, StorageJsonError> {
        self.get(key)
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(StorageJsonError::Json)
    }

    /// Stores `value` under `key` as JSON.
    pub fn put_json<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: &T,
    ) -> Result<(), StorageJsonError> {
        let bytes = serde_json::to_vec(value).map_err(StorageJsonError::Json)?;
        self.put(key, bytes).map_err(StorageJsonError::Refused)
    }

    /// Schedules [`RoomService::timer(id)`](crate::RoomService::timer) after
    /// `delay` like [`Room::set_timer`], and stores it with the room's data:
    /// it survives restarts, and a host that starts after its time fires it
    /// at once, waking the room. [`Room::cancel_timer`] cancels it.
    pub fn set_durable_timer(&mut self, id: TimerId, delay: Duration) -> Result<(), TimerError> {
        calls::set_durable_timer(&mut *self.backend, id, duration_to_ms(delay))
            .map_err(TimerError::from_host)
    }
}

impl fmt::Debug for Storage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage").finish_non_exhaustive()
    }
}

/// Why a JSON read or write of [`Storage`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StorageJsonError {
    /// The value could not be serialized, or the stored bytes are not a
    /// JSON `T`.
    Json(serde_json::Error),
    /// The host refused the write; nothing was written.
    Refused(StorageError),
}

impl fmt::Display for StorageJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(error) => write!(f, "stored JSON: {error}"),
            Self::Refused(error) => error.fmt(f),
        }
    }
}

impl Error for StorageJsonError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Json(error) => Some(error),
            Self::Refused(error) => Some(error),
        }
    }
}

impl Room<'_> {
    /// The room's durable storage; see [`Storage`].
    pub fn storage(&mut self) -> Storage<'_> {
        Storage::new(self.backend_mut())
    }
}

/// Where storage calls go. In wasm, straight to the `storage` imports
/// ([`wit`]): a plugin imports `storage` only if its code uses [`Storage`],
/// and only such a plugin's rooms have their output held for commits.
/// Natively (the test harness, the benchmark baseline), through the room's
/// [`Backend`].
#[cfg(target_arch = "wasm32")]
use wit as calls;

/// The `storage` imports, with the SDK's types. Compiled everywhere (the
/// native build of the wasm backend refers to them) and reached only in wasm.
pub(crate) mod wit {
    use roomhost_rules::storage::{StorageRefusal, Write};

    use crate::TimerId;
    use crate::bindings::roomhost::room::storage;
    use crate::room::Backend;

    pub(crate) fn get(_: &mut dyn Backend, key: &[u8]) -> Option<Vec<u8>> {
        storage::get(key)
    }

    pub(crate) fn put(
        _: &mut dyn Backend,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), StorageRefusal> {
        storage::put(&key, &value).map_err(refusal)
    }

    pub(crate) fn delete(_: &mut dyn Backend, key: &[u8]) -> bool {
        storage::delete(key)
    }

    pub(crate) fn batch(_: &mut dyn Backend, writes: Vec<Write>) -> Result<(), StorageRefusal> {
        let writes: Vec<storage::Write> = writes
            .into_iter()
            .map(|write| match write {
                Write::Put(key, value) => storage::Write::Put(storage::Entry { key, value }),
                Write::Delete(key) => storage::Write::Delete(key),
            })
            .collect();
        storage::batch(&writes).map_err(refusal)
    }

    pub(crate) fn list(
        _: &mut dyn Backend,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        storage::list_prefix(prefix, start_after, limit)
            .into_iter()
            .map(|entry| (entry.key, entry.value))
            .collect()
    }

    pub(crate) fn size(_: &mut dyn Backend) -> u64 {
        storage::size()
    }

    pub(crate) fn set_durable_timer(
        _: &mut dyn Backend,
        id: TimerId,
        delay_ms: u64,
    ) -> Result<(), String> {
        storage::set_durable_timer(id, delay_ms)
    }

    /// The contract's `storage-error` as the rules' [`StorageRefusal`].
    fn refusal(error: storage::StorageError) -> StorageRefusal {
        let sizes = |over: storage::OverLimit| {
            (
                usize::try_from(over.size).unwrap_or(usize::MAX),
                usize::try_from(over.limit).unwrap_or(usize::MAX),
            )
        };
        match error {
            storage::StorageError::KeyTooLarge(over) => {
                let (len, limit) = sizes(over);
                StorageRefusal::KeyTooLarge { len, limit }
            }
            storage::StorageError::ValueTooLarge(over) => {
                let (len, limit) = sizes(over);
                StorageRefusal::ValueTooLarge { len, limit }
            }
            storage::StorageError::RoomFull(over) => {
                let (needed, limit) = sizes(over);
                StorageRefusal::RoomFull { needed, limit }
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod calls {
    use roomhost_rules::storage::{StorageRefusal, Write};

    use crate::TimerId;
    use crate::room::Backend;

    pub(super) fn get(backend: &mut dyn Backend, key: &[u8]) -> Option<Vec<u8>> {
        backend.storage_get(key)
    }

    pub(super) fn put(
        backend: &mut dyn Backend,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), StorageRefusal> {
        backend.storage_put(key, value)
    }

    pub(super) fn delete(backend: &mut dyn Backend, key: &[u8]) -> bool {
        backend.storage_delete(key)
    }

    pub(super) fn batch(
        backend: &mut dyn Backend,
        writes: Vec<Write>,
    ) -> Result<(), StorageRefusal> {
        backend.storage_batch(writes)
    }

    pub(super) fn list(
        backend: &mut dyn Backend,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        backend.storage_list(prefix, start_after, limit)
    }

    pub(super) fn size(backend: &mut dyn Backend) -> u64 {
        backend.storage_size()
    }

    pub(super) fn set_durable_timer(
        backend: &mut dyn Backend,
        id: TimerId,
        delay_ms: u64,
    ) -> Result<(), String> {
        backend.set_durable_timer(id, delay_ms)
    }
}
