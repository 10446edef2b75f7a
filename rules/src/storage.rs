//! A room's stored data as the room sees it, written once for the host and
//! the SDK's test harness.
//!
//! [`RoomStore`] holds a room's entries (byte keys to byte values) and its
//! durable timers in memory, applies the caps ([`StorageLimits`]) with the
//! errors a plugin sees ([`StorageRefusal`]), and records what changed since
//! the last commit ([`Changes`]). The host loads a store from its backend
//! when a room starts and hands the changes to the backend after every
//! event; the harness keeps one per test room. Both therefore refuse the
//! same writes with the same messages.
//!
//! A refused write changes nothing: an oversized value never replaces (or
//! destroys) what was stored under its key.
//!
//! ```
//! use roomhost_rules::storage::{RoomStore, StorageLimits, StorageRefusal, Write};
//!
//! let mut store = RoomStore::new(StorageLimits {
//!     max_room_bytes: 16,
//!     ..StorageLimits::default()
//! });
//! store.put(b"a".to_vec(), b"1234".to_vec()).unwrap();
//! // Too big for the room: refused, and "a" keeps its value.
//! let refused = store.put(b"a".to_vec(), vec![0; 20]).unwrap_err();
//! assert!(matches!(refused, StorageRefusal::RoomFull { .. }));
//! assert_eq!(store.get(b"a"), Some(&b"1234"[..]));
//! // A batch applies whole or not at all.
//! store
//!     .apply(vec![Write::Delete(b"a".to_vec()), Write::Put(b"b".to_vec(), b"xy".to_vec())])
//!     .unwrap();
//! assert_eq!(store.list(b"", None, 10), vec![(b"b".to_vec(), b"xy".to_vec())]);
//! assert_eq!(store.take_changes().entries.len(), 2);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::fmt;
use std::ops::Bound;

use crate::limits::{
    MAX_ROOM_STORAGE_BYTES, MAX_STORAGE_KEY_BYTES, MAX_STORAGE_LIST_BYTES,
    MAX_STORAGE_LIST_ENTRIES, MAX_STORAGE_VALUE_BYTES,
};

/// The caps on one room's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageLimits {
    /// The longest key, in bytes (`max_storage_key_bytes`).
    pub max_key_bytes: usize,
    /// The largest value, in bytes (`max_storage_value_bytes`).
    pub max_value_bytes: usize,
    /// The most the room may store, keys plus values (`max_room_storage_bytes`).
    pub max_room_bytes: usize,
}

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            max_key_bytes: MAX_STORAGE_KEY_BYTES,
            max_value_bytes: MAX_STORAGE_VALUE_BYTES,
            max_room_bytes: MAX_ROOM_STORAGE_BYTES,
        }
    }
}

/// Why a write was refused. Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageRefusal {
    /// A key longer than `max_storage_key_bytes`.
    KeyTooLarge {
        /// The key's length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A value larger than `max_storage_value_bytes`.
    ValueTooLarge {
        /// The value's size in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The writes awaiting the current commit (keys and values, deleted
    /// keys included) would pass twice `max_room_storage_bytes`: one event
    /// may rewrite a full room, but cannot pile up changes without bound by
    /// deleting what it put. Reported to a plugin as `room-full`.
    TooManyChanges {
        /// What would await the commit after the write, in bytes.
        pending: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The room would store more than `max_room_storage_bytes`.
    RoomFull {
        /// What the room would store after the write, in bytes.
        needed: usize,
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for StorageRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyTooLarge { len, limit } => write!(
                f,
                "storage key is {len} bytes; the limit is {limit} (max_storage_key_bytes)"
            ),
            Self::ValueTooLarge { len, limit } => write!(
                f,
                "storage value is {len} bytes; the limit is {limit} (max_storage_value_bytes)"
            ),
            Self::TooManyChanges { pending, limit } => write!(
                f,
                "this event's writes awaiting their commit would reach {pending} bytes; the \
                 limit is {limit} (twice max_room_storage_bytes); nothing was written"
            ),
            Self::RoomFull { needed, limit } => write!(
                f,
                "the room would store {needed} bytes; the limit is {limit} \
                 (max_room_storage_bytes); nothing was written"
            ),
        }
    }
}

impl Error for StorageRefusal {}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Stores a value under a key, replacing what was there.
    Put(Vec<u8>, Vec<u8>),
    /// Removes a key (absent keys are ignored).
    Delete(Vec<u8>),
}

/// What changed in a room's storage since the last commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Each changed key with its new value (`None`: deleted).
    pub entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Each changed durable timer with its due time in Unix milliseconds
    /// (`None`: cancelled or fired).
    pub timers: BTreeMap<u64, Option<u64>>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.timers.is_empty()
    }

    /// The bytes of keys and values written.
    pub fn bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len))
            .sum()
    }
}

/// A room's stored entries and durable timers, with the changes that await
/// their commit.
#[derive(Debug, Clone, Default)]
pub struct RoomStore {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    timers: BTreeMap<u64, u64>,
    bytes: usize,
    limits: StorageLimits,
    changes: Changes,
    /// The bytes of `changes.entries` (keys, and values of puts).
    pending: usize,
}

impl RoomStore {
    /// An empty store under `limits`.
    pub fn new(limits: StorageLimits) -> RoomStore {
        RoomStore {
            limits,
            ..RoomStore::default()
        }
    }

    /// A store holding what a backend loaded, with no changes pending. The
    /// caps apply to later writes only: data stored under larger limits
    /// stays readable.
    pub fn loaded(
        limits: StorageLimits,
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
        timers: impl IntoIterator<Item = (u64, u64)>,
    ) -> RoomStore {
        let entries: BTreeMap<Vec<u8>, Vec<u8>> = entries.into_iter().collect();
        let bytes = entries
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum();
        RoomStore {
            entries,
            timers: timers.into_iter().collect(),
            bytes,
            limits,
            changes: Changes::default(),
            pending: 0,
        }
    }

    /// The caps this store applies.
    pub fn limits(&self) -> StorageLimits {
        self.limits
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Stores `value` under `key`. Refused, changing nothing, when the key
    /// or the value is too large or the room would exceed its total.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StorageRefusal> {
        self.apply(vec![Write::Put(key, value)])
    }

    /// Removes `key`; whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let Some(value) = self.entries.remove(key) else {
            return false;
        };
        self.bytes -= key.len() + value.len();
        self.record(key.to_vec(), None);
        true
    }

    /// Applies `writes` in order, all or none: every write is checked, and
    /// the room's total after the last one, before anything changes.
    pub fn apply(&mut self, writes: Vec<Write>) -> Result<(), StorageRefusal> {
        let after = self.check(&writes)?;
        for write in writes {
            match write {
                Write::Put(key, value) => {
                    self.record(key.clone(), Some(value.clone()));
                    self.entries.insert(key, value);
                }
                // `after` already accounts for it: no byte arithmetic here,
                // where a key put earlier in the batch would not add up.
                Write::Delete(key) => {
                    if self.entries.remove(&key).is_some() {
                        self.record(key, None);
                    }
                }
            }
        }
        self.bytes = after;
        Ok(())
    }

    /// Records a change awaiting the commit, keeping `pending` in step.
    fn record(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let size = key.len() + value.as_ref().map_or(0, Vec::len);
        let key_len = key.len();
        if let Some(old) = self.changes.entries.insert(key, value) {
            self.pending -= key_len + old.map_or(0, |old| old.len());
        }
        self.pending += size;
    }

    /// The room's total after `writes`, or why they are refused.
    fn check(&self, writes: &[Write]) -> Result<usize, StorageRefusal> {
        let mut sizes: HashMap<&[u8], Option<usize>> = HashMap::new();
        let mut total = self.bytes;
        for write in writes {
            let (key, new) = match write {
                Write::Put(key, value) => {
                    if key.len() > self.limits.max_key_bytes {
                        return Err(StorageRefusal::KeyTooLarge {
                            len: key.len(),
                            limit: self.limits.max_key_bytes,
                        });
                    }
                    if value.len() > self.limits.max_value_bytes {
                        return Err(StorageRefusal::ValueTooLarge {
                            len: value.len(),
                            limit: self.limits.max_value_bytes,
                        });
                    }
                    (key, Some(key.len() + value.len()))
                }
                Write::Delete(key) => (key, None),
            };
            let old = match sizes.get(key.as_slice()) {
                Some(size) => *size,
                None => self.entries.get(key).map(|value| key.len() + value.len()),
            };
            total = total - old.unwrap_or(0) + new.unwrap_or(0);
            sizes.insert(key, new);
        }
        if total > self.limits.max_room_bytes && total > self.bytes {
            return Err(StorageRefusal::RoomFull {
                needed: total,
                limit: self.limits.max_room_bytes,
            });
        }
        // An upper bound: writes that replace pending changes count whole.
        let pending = writes.iter().fold(self.pending, |pending, write| {
            pending.saturating_add(match write {
                Write::Put(key, value) => key.len() + value.len(),
                Write::Delete(key) => key.len(),
            })
        });
        let limit = self.limits.max_room_bytes.saturating_mul(2);
        if pending > limit {
            return Err(StorageRefusal::TooManyChanges { pending, limit });
        }
        Ok(total)
    }

    /// Entries whose key starts with `prefix`, in key order, after
    /// `start_after` when given: at most `limit` of them (0 or more than
    /// [`MAX_STORAGE_LIST_ENTRIES`] mean that many) and about
    /// [`MAX_STORAGE_LIST_BYTES`]; an empty page means there are no more.
    pub fn list(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let limit = match limit {
            0 => MAX_STORAGE_LIST_ENTRIES,
            limit => limit.min(MAX_STORAGE_LIST_ENTRIES),
        };
        let start = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_vec()),
            _ => Bound::Included(prefix.to_vec()),
        };
        let mut page = Vec::new();
        let mut bytes = 0;
        for (key, value) in self.entries.range((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) || page.len() == limit {
                break;
            }
            bytes += key.len() + value.len();
            if bytes > MAX_STORAGE_LIST_BYTES && !page.is_empty() {
                break;
            }
            page.push((key.clone(), value.clone()));
        }
        page
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
    }

    /// The bytes stored, keys plus values.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the room stores no entries and no durable timers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.timers.is_empty()
    }

    /// Records durable timer `id`, due at `due_ms` (Unix milliseconds).
    pub fn set_timer(&mut self, id: u64, due_ms: u64) {
        self.timers.insert(id, due_ms);
        self.changes.timers.insert(id, Some(due_ms));
    }

    /// Forgets durable timer `id` (fired or cancelled); whether it was there.
    pub fn clear_timer(&mut self, id: u64) -> bool {
        if self.timers.remove(&id).is_none() {
            return false;
        }
        self.changes.timers.insert(id, None);
        true
    }

    /// The durable timers: id and due time in Unix milliseconds.
    pub fn timers(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.timers.iter().map(|(id, due)| (*id, *due))
    }

    /// Whether writes await their commit.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Takes the writes made since the last call, for the backend to commit.
    pub fn take_changes(&mut self) -> Changes {
        self.pending = 0;
        std::mem::take(&mut self.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(max_room_bytes: usize) -> RoomStore {
        RoomStore::new(StorageLimits {
            max_key_bytes: 4,
            max_value_bytes: 8,
            max_room_bytes,
        })
    }

    #[test]
    fn oversized_writes_change_nothing() {
        let mut store = small(100);
        store.put(b"k".to_vec(), b"old".to_vec()).unwrap();
        store.take_changes();
        assert_eq!(
            store.put(b"k".to_vec(), vec![0; 9]),
            Err(StorageRefusal::ValueTooLarge { len: 9, limit: 8 })
        );
        assert_eq!(
            store.put(b"kkkkk".to_vec(), vec![]),
            Err(StorageRefusal::KeyTooLarge { len: 5, limit: 4 })
        );
        assert_eq!(store.get(b"k"), Some(&b"old"[..]));
        assert!(!store.has_changes());
    }

    #[test]
    fn a_batch_is_checked_whole_before_it_applies() {
        let mut store = small(10);
        store.put(b"a".to_vec(), b"1234".to_vec()).unwrap();
        // Ends at 11 bytes: refused, though the first write alone fits.
        let refused = store.apply(vec![
            Write::Put(b"b".to_vec(), b"12".to_vec()),
            Write::Put(b"c".to_vec(), b"123".to_vec()),
        ]);
        assert_eq!(
            refused,
            Err(StorageRefusal::RoomFull {
                needed: 5 + 3 + 4,
                limit: 10
            })
        );
        assert_eq!(store.get(b"b"), None);
        // Freeing space in the same batch makes it fit.
        store
            .apply(vec![
                Write::Delete(b"a".to_vec()),
                Write::Put(b"b".to_vec(), b"12".to_vec()),
                Write::Put(b"c".to_vec(), b"123".to_vec()),
            ])
            .unwrap();
        assert_eq!(store.bytes(), 7);
        let changes = store.take_changes();
        assert_eq!(changes.entries.get(&b"a"[..]), Some(&None));
        assert_eq!(changes.entries.len(), 3);
    }

    #[test]
    fn a_key_put_and_deleted_in_one_batch_leaves_nothing() {
        let mut store = small(100);
        store
            .apply(vec![
                Write::Put(b"k".to_vec(), b"12345678".to_vec()),
                Write::Delete(b"k".to_vec()),
            ])
            .unwrap();
        assert_eq!((store.bytes(), store.get(b"k")), (0, None));
    }

    #[test]
    fn one_event_cannot_pile_up_changes_by_deleting_what_it_put() {
        let mut store = small(40);
        // Each round leaves a 2-byte deleted key awaiting the commit, though
        // the room stores nothing.
        let refused = (0..=255u8).find_map(|i| match store.put(vec![b'k', i], b"v".to_vec()) {
            Err(refused) => Some((i, refused)),
            Ok(()) => {
                assert!(store.delete(&[b'k', i]));
                None
            }
        });
        assert!(
            matches!(
                refused,
                Some((38.., StorageRefusal::TooManyChanges { limit: 80, .. }))
            ),
            "{refused:?}"
        );
        assert_eq!(store.bytes(), 0);
        store.take_changes();
        store.put(b"k".to_vec(), b"v".to_vec()).unwrap();
    }

    #[test]
    fn a_room_over_a_lowered_cap_may_still_shrink() {
        let mut store = RoomStore::loaded(
            StorageLimits {
                max_room_bytes: 4,
                ..StorageLimits::default()
            },
            [(b"a".to_vec(), b"123456".to_vec())],
            [],
        );
        store.put(b"a".to_vec(), b"12".to_vec()).unwrap();
        assert_eq!(store.bytes(), 3);
    }

    #[test]
    fn listing_pages_by_prefix() {
        let mut store = RoomStore::new(StorageLimits::default());
        for key in ["a/1", "a/2", "a/3", "b/1"] {
            store.put(key.into(), b"v".to_vec()).unwrap();
        }
        let keys = |page: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<String> {
            page.into_iter()
                .map(|(key, _)| String::from_utf8(key).unwrap())
                .collect()
        };
        assert_eq!(keys(store.list(b"a/", None, 2)), ["a/1", "a/2"]);
        assert_eq!(keys(store.list(b"a/", Some(b"a/2"), 2)), ["a/3"]);
        assert!(store.list(b"a/", Some(b"a/3"), 2).is_empty());
        assert_eq!(keys(store.list(b"", None, 0)).len(), 4);
    }

    #[test]
    fn durable_timers_are_changes_too() {
        let mut store = RoomStore::new(StorageLimits::default());
        store.set_timer(7, 1_000);
        assert!(!store.is_empty());
        assert_eq!(store.take_changes().timers.get(&7), Some(&Some(1_000)));
        assert!(store.clear_timer(7));
        assert!(!store.clear_timer(7));
        assert_eq!(store.take_changes().timers.get(&7), Some(&None));
        assert!(store.is_empty());
    }
}
