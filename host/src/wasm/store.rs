//! The `storage` imports: a room's reads and writes go to its in-memory
//! [`RoomStore`](roomhost_rules::storage::RoomStore), which applies the caps
//! and records the changes the actor commits after the event.

use roomhost_rules::checks;
use roomhost_rules::storage::{StorageRefusal, Write};

use super::bindings::roomhost::room::storage::{self, Entry, OverLimit, StorageError};
use super::state::{RoomState, unix_millis};

impl storage::Host for RoomState {
    fn get(&mut self, key: Vec<u8>) -> Option<Vec<u8>> {
        self.room.store.get(&key).map(<[u8]>::to_vec)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StorageError> {
        self.room.store.put(key, value).map_err(into_wit)
    }

    fn delete(&mut self, key: Vec<u8>) -> bool {
        self.room.store.delete(&key)
    }

    fn batch(&mut self, writes: Vec<storage::Write>) -> Result<(), StorageError> {
        let writes = writes
            .into_iter()
            .map(|write| match write {
                storage::Write::Put(Entry { key, value }) => Write::Put(key, value),
                storage::Write::Delete(key) => Write::Delete(key),
            })
            .collect();
        self.room.store.apply(writes).map_err(into_wit)
    }

    fn list_prefix(
        &mut self,
        prefix: Vec<u8>,
        start_after: Option<Vec<u8>>,
        limit: u32,
    ) -> Vec<Entry> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.room
            .store
            .list(&prefix, start_after.as_deref(), limit)
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect()
    }

    fn size(&mut self) -> u64 {
        u64::try_from(self.room.store.bytes()).unwrap_or(u64::MAX)
    }

    fn set_durable_timer(&mut self, id: u64, delay_ms: u64) -> Result<(), String> {
        let delay = checks::timer_delay(delay_ms);
        self.room
            .timers
            .set(id, delay)
            .map_err(|error| error.to_string())?;
        let due = unix_millis(std::time::SystemTime::now())
            .saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self.room.store.set_timer(id, due);
        Ok(())
    }
}

/// The rules' refusal as the contract's `storage-error`.
fn into_wit(refusal: StorageRefusal) -> StorageError {
    let over = |size: usize, limit: usize| OverLimit {
        size: u64::try_from(size).unwrap_or(u64::MAX),
        limit: u64::try_from(limit).unwrap_or(u64::MAX),
    };
    match refusal {
        StorageRefusal::KeyTooLarge { len, limit } => StorageError::KeyTooLarge(over(len, limit)),
        StorageRefusal::ValueTooLarge { len, limit } => {
            StorageError::ValueTooLarge(over(len, limit))
        }
        StorageRefusal::RoomFull { needed, limit } => StorageError::RoomFull(over(needed, limit)),
        StorageRefusal::TooManyChanges { pending, limit } => {
            StorageError::RoomFull(over(pending, limit))
        }
        // The rules may refuse in new ways; the contract's closest kind.
        _ => StorageError::RoomFull(over(0, 0)),
    }
}
