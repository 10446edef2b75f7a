//! The document's durable copy in the room's storage: its key layout, the
//! log of updates appended with every change, and compaction.
//!
//! ```text
//! doc/{i:08x}    the compacted document, cut into chunks of at most
//!                CHUNK_BYTES: a collab snapshot (see `snapshot`) holding
//!                the document as a v1 update and its root kinds, with no
//!                presence and no clients
//! u/{seq:016x}   one v1 update the document integrated after that, in order
//! ```
//!
//! Every change (a client's update, a REST edit) appends what the document
//! integrated (the updates that are fanned out) under the next sequence
//! numbers, in the event that applied it: the host commits them with the
//! event, before the fan-out and the HTTP answer are released, so an edit
//! any client saw is stored. When the log reaches `compact_after_updates`
//! entries or `compact_after_bytes` bytes, the whole document is encoded
//! into `doc/` and the log deleted, in one batch; the same happens when the
//! room ends with a log. A room that starts again loads `doc/` and replays
//! the log before it takes its first client.
//!
//! A refused write (the room's storage full) is retried once as a
//! compaction, which replaces the log by the document's state and usually
//! takes less room. When that is refused too, the document goes back to what
//! is stored, and the change is refused: nobody receives it, a client's
//! update is dropped like one beyond `max_doc_bytes`, a REST edit gets 507.

use std::fmt;

use roomhost_sdk::{Room, Storage, StorageError, Write};

use crate::Collab;
use crate::document::{DocError, Document, Settings};
use crate::roots;
use crate::snapshot::Snapshot;

/// The prefix of the compacted document's chunks.
pub const DOC_PREFIX: &str = "doc/";
/// The prefix of the log's updates.
pub const LOG_PREFIX: &str = "u/";
/// The largest chunk of the compacted document, in bytes: well within the
/// host's cap on one value (1 MiB by default).
pub const CHUNK_BYTES: usize = 512 * 1024;

/// What the room knows about its stored copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Log {
    /// The sequence number of the oldest update in the log.
    first: u64,
    /// The sequence number the next update gets.
    next: u64,
    /// The bytes of the log's updates.
    bytes: usize,
    /// How many chunks the compacted document takes.
    chunks: usize,
}

/// The stored copy, as read when a room starts.
#[derive(Debug, Default)]
pub struct Stored {
    /// The compacted document, if any.
    pub state: Option<Snapshot>,
    /// The log, oldest first.
    pub updates: Vec<Vec<u8>>,
    /// Where the log stands.
    pub log: Log,
}

/// Why the stored copy cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(String);

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the stored document cannot be read: {}", self.0)
    }
}

fn doc_key(index: usize) -> Vec<u8> {
    format!("{DOC_PREFIX}{index:08x}").into_bytes()
}

fn log_key(seq: u64) -> Vec<u8> {
    format!("{LOG_PREFIX}{seq:016x}").into_bytes()
}

/// The sequence number in a log key.
fn log_seq(key: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(key.strip_prefix(LOG_PREFIX.as_bytes())?).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

impl Stored {
    /// Reads the stored copy.
    pub fn read(storage: &mut Storage<'_>) -> Result<Self, Unreadable> {
        let chunks = storage.list_all(DOC_PREFIX);
        let state = if chunks.is_empty() {
            None
        } else {
            let record: Vec<u8> = chunks.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            Some(Snapshot::decode(&record).map_err(Unreadable)?)
        };
        let entries = storage.list_all(LOG_PREFIX);
        let mut log = Log {
            chunks: chunks.len(),
            ..Log::default()
        };
        let mut updates = Vec::with_capacity(entries.len());
        for (key, update) in entries {
            let seq = log_seq(&key)
                .ok_or_else(|| Unreadable(format!("a log key that is not u/{{seq}}: {key:?}")))?;
            if updates.is_empty() {
                log.first = seq;
            }
            log.next = seq.saturating_add(1);
            log.bytes = log.bytes.saturating_add(update.len());
            updates.push(update);
        }
        Ok(Stored {
            state,
            updates,
            log,
        })
    }

    /// The document the stored copy holds.
    pub fn document(&self, settings: Settings) -> Result<Document, Unreadable> {
        let unreadable = |err: DocError| Unreadable(err.to_string());
        let mut doc = match &self.state {
            Some(state) => Document::restore(settings, &state.doc, &state.kinds),
            None => Ok(Document::new(settings)),
        }
        .map_err(unreadable)?;
        doc.replay(&self.updates).map_err(unreadable)?;
        Ok(doc)
    }
}

impl Log {
    /// How many updates the log holds.
    pub fn entries(&self) -> u64 {
        self.next.saturating_sub(self.first)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.chunks == 0 && self.entries() == 0
    }

    /// The bytes of the log's updates.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends `updates` to the log, all or none.
    pub fn append(
        &mut self,
        storage: &mut Storage<'_>,
        updates: &[Vec<u8>],
    ) -> Result<(), StorageError> {
        let writes = (self.next..)
            .zip(updates)
            .map(|(seq, update)| Write::Put(log_key(seq), update.clone()))
            .collect();
        storage.batch(writes)?;
        self.next = self.next.saturating_add(updates.len() as u64);
        self.bytes = self
            .bytes
            .saturating_add(updates.iter().map(Vec::len).sum::<usize>());
        Ok(())
    }

    /// Replaces the compacted document with `record` and deletes the log,
    /// in one batch.
    pub fn compact(
        &mut self,
        storage: &mut Storage<'_>,
        record: &[u8],
    ) -> Result<(), StorageError> {
        let parts: Vec<&[u8]> = record.chunks(CHUNK_BYTES).collect();
        let mut writes: Vec<Write> = (self.first..self.next)
            .map(|seq| Write::Delete(log_key(seq)))
            .collect();
        writes.extend((parts.len()..self.chunks).map(|index| Write::Delete(doc_key(index))));
        writes.extend(
            parts
                .iter()
                .enumerate()
                .map(|(index, part)| Write::Put(doc_key(index), part.to_vec())),
        );
        storage.batch(writes)?;
        *self = Log {
            first: self.next,
            next: self.next,
            bytes: 0,
            chunks: parts.len(),
        };
        Ok(())
    }
}

impl Collab {
    /// Stores the updates a change integrated, compacting when the log is
    /// due. When the write is refused, compacts instead; when that is
    /// refused too, puts the document back to what is stored and returns
    /// why (the change must then reach nobody).
    pub(crate) fn save(
        &mut self,
        room: &mut Room<'_>,
        updates: &[Vec<u8>],
    ) -> Result<(), DocError> {
        if updates.is_empty() {
            return Ok(());
        }
        let refused = match self.log.append(&mut room.storage(), updates) {
            Ok(()) => {
                if self.log.entries() >= self.config.compact_after_updates
                    || self.log.bytes() >= self.config.compact_after_bytes
                {
                    self.compact(room);
                }
                return Ok(());
            }
            Err(refused) => refused,
        };
        if self.try_compact(room).is_ok() {
            return Ok(());
        }
        // The document holds a change storage does not: go back to what is
        // stored, so that nothing later builds on it.
        let settings = self.doc.settings();
        match Stored::read(&mut room.storage()).and_then(|stored| stored.document(settings)) {
            Ok(doc) => self.doc = doc,
            Err(err) => room.warn(&format!("cannot go back to the stored document: {err}")),
        }
        Err(DocError::Unsaved(refused.to_string()))
    }

    /// Compacts the log, logging a refusal (the log then stays as it is,
    /// and nothing is lost).
    pub(crate) fn compact(&mut self, room: &mut Room<'_>) {
        if let Err(err) = self.try_compact(room) {
            room.warn(&format!("cannot compact the stored document: {err}"));
        }
    }

    /// Writes the whole document as the compacted copy, deleting the log.
    fn try_compact(&mut self, room: &mut Room<'_>) -> Result<(), StorageError> {
        let record = {
            let txn = yrs::Transact::transact(self.doc.doc());
            Snapshot {
                client_id: self.doc.client_id(),
                doc: self.doc.encode(),
                kinds: roots::kinds(&txn),
                ..Snapshot::default()
            }
        }
        .encode();
        self.log.compact(&mut room.storage(), &record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_sequence_and_read_back() {
        assert!(log_key(9) < log_key(10));
        assert!(log_key(0xff) < log_key(0x100));
        assert_eq!(log_seq(&log_key(0x1234)), Some(0x1234));
        assert_eq!(log_seq(b"u/zz"), None);
        assert_eq!(log_seq(b"doc/00000000"), None);
        assert!(doc_key(9) < doc_key(10));
    }
}
