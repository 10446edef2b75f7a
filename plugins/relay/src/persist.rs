//! The session record's copy in the room's storage, so a session's history
//! outlives a host restart.
//!
//! ```text
//! r/{seq:016x}   one record entry: `c` (command) or `a` (activate), then
//!                its `data` as JSON text
//! ```
//!
//! Storage holds exactly the record's entries: each relayed frame is stored
//! (and the entries it evicted deleted) in the event that relayed it, so the
//! host commits them before the frame reaches the viewers. The record's
//! bounds (`max_record_entries`, `max_record_bytes`) bound what is stored.
//! When storage refuses an entry because the room's storage is full, the
//! oldest entries are dropped (from the record too) until it fits; an entry
//! storage cannot hold at all (beyond its cap on one value) is relayed but
//! not recorded. Either way the record never holds what storage lacks.

use roomhost_sdk::{Storage, StorageError, Write};
use serde_json::Value;

use crate::record::{Entry, Kind, Pushed, Record};

/// The prefix of the record's entries.
pub const PREFIX: &str = "r/";

fn key(seq: u64) -> Vec<u8> {
    format!("{PREFIX}{seq:016x}").into_bytes()
}

fn encode(entry: &Entry) -> Vec<u8> {
    let mut value = vec![match entry.kind {
        Kind::Command => b'c',
        Kind::Activate => b'a',
    }];
    value.extend(entry.data.to_string().into_bytes());
    value
}

/// The sequence number, kind and data of a stored entry.
fn decode(key: &[u8], value: &[u8]) -> Option<(u64, Kind, Value)> {
    let hex = std::str::from_utf8(key.strip_prefix(PREFIX.as_bytes())?).ok()?;
    let seq = u64::from_str_radix(hex, 16).ok()?;
    let (tag, data) = value.split_first()?;
    let kind = match tag {
        b'c' => Kind::Command,
        b'a' => Kind::Activate,
        _ => return None,
    };
    Some((seq, kind, serde_json::from_slice(data).ok()?))
}

/// Fills `record` from storage, oldest first. Entries beyond the record's
/// bounds (lowered since they were stored) and entries that cannot be read
/// are deleted; returns how many entries could not be read.
pub fn load(storage: &mut Storage<'_>, record: &mut Record) -> usize {
    let mut stale = Vec::new();
    let mut unreadable = 0;
    for (key, value) in storage.list_all(PREFIX) {
        match decode(&key, &value) {
            Some((seq, kind, data)) => {
                let pushed = record.push_at(seq, kind, data);
                stale.extend(pushed.evicted.into_iter().map(self::key));
            }
            None => {
                unreadable += 1;
                stale.push(key);
            }
        }
    }
    // Deletions only shrink the room: never refused.
    let _ = storage.batch(stale.into_iter().map(Write::Delete).collect());
    unreadable
}

/// Stores what `pushed` changed in `record`. When the room's storage is
/// full, drops the oldest entries until the new one fits; returns why an
/// entry was not stored (it is then dropped from the record too).
pub fn save(
    storage: &mut Storage<'_>,
    record: &mut Record,
    pushed: Pushed,
) -> Result<(), StorageError> {
    let mut writes: Vec<Write> = pushed
        .evicted
        .into_iter()
        .map(|s| Write::Delete(key(s)))
        .collect();
    let newest = pushed
        .kept
        .and_then(|seq| record.entries().next_back().filter(|e| e.seq() == seq));
    let Some(newest) = newest else {
        let _ = storage.batch(writes);
        return Ok(());
    };
    let value = encode(newest);
    let size = key(newest.seq()).len() + value.len();
    let put = Write::Put(key(newest.seq()), value);
    writes.push(put.clone());
    let refused = match storage.batch(writes.clone()) {
        Ok(()) => return Ok(()),
        Err(refused) => refused,
    };
    writes.pop();
    if let StorageError::RoomFull { needed, limit } = refused
        && size <= limit
    {
        // Free what the write lacks, oldest first, keeping the new entry.
        let mut missing = needed.saturating_sub(limit);
        while missing > 0 && record.len() > 1 {
            let Some(oldest) = record.pop_oldest() else {
                break;
            };
            let oldest_key = key(oldest.seq());
            missing = missing.saturating_sub(oldest_key.len() + encode(&oldest).len());
            writes.push(Write::Delete(oldest_key));
        }
        writes.push(put);
        if storage.batch(writes.clone()).is_ok() {
            return Ok(());
        }
        writes.pop();
    }
    record.pop_newest();
    let _ = storage.batch(writes);
    Err(refused)
}

/// Deletes every stored entry of `record` (before it is cleared).
pub fn clear(storage: &mut Storage<'_>, record: &Record) {
    let writes = record
        .entries()
        .map(|e| Write::Delete(key(e.seq())))
        .collect();
    let _ = storage.batch(writes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_read_back() {
        let mut record = Record::new(10, 1000);
        record.push(Kind::Activate, json!({"id": "1abc"}));
        let entry = record.entries().next_back().cloned();
        let entry = entry.expect("kept");
        assert_eq!(
            decode(&key(entry.seq()), &encode(&entry)),
            Some((0, Kind::Activate, json!({"id": "1abc"})))
        );
        assert_eq!(decode(b"r/zz", b"c1"), None);
        assert_eq!(decode(&key(1), b"x1"), None);
        assert!(key(9) < key(10));
    }
}
