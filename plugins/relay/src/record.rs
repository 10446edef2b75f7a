//! The session record: every `command` and `activate` the room relayed, in
//! order, bounded by entry count and bytes, each with its sequence number
//! (its key in storage, see [`persist`](crate::persist)).

use std::collections::VecDeque;

use serde_json::Value;

/// What a recorded frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `{"type":"command","data":...}` frame.
    Command,
    /// A `{"type":"activate","data":...}` frame.
    Activate,
}

impl Kind {
    /// The frame's `type`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Activate => "activate",
        }
    }
}

/// One relayed frame: its kind and its `data` value, exactly as the host
/// sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The frame's type.
    pub kind: Kind,
    /// The frame's `data` field.
    pub data: Value,
    /// What the entry counts towards the byte bound: the length of `data`
    /// as JSON text.
    bytes: usize,
    /// The entry's sequence number: one more than the entry before it.
    seq: u64,
}

impl Entry {
    /// The entry's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// What a [`Record::push`] changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pushed {
    /// The new entry's sequence number, when it was kept.
    pub kept: Option<u64>,
    /// The sequence numbers of the entries dropped to make room.
    pub evicted: Vec<u64>,
}

/// The last relayed `command`/`activate` frames, oldest first. Holds at most
/// `max_entries` entries whose `data` totals at most `max_bytes` bytes of
/// JSON text; the oldest entries are dropped to make room.
#[derive(Debug, Clone)]
pub struct Record {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// The sequence number of the next entry.
    next_seq: u64,
}

impl Record {
    /// An empty record with these bounds.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
            next_seq: 0,
        }
    }

    /// Appends a frame, then drops the oldest entries until the bounds hold
    /// (an entry larger than `max_bytes` on its own is therefore not kept).
    pub fn push(&mut self, kind: Kind, data: Value) -> Pushed {
        self.push_at(self.next_seq, kind, data)
    }

    /// [`Record::push`] with sequence number `seq` (the next entries count
    /// on from it): for entries read back from storage.
    pub fn push_at(&mut self, seq: u64, kind: Kind, data: Value) -> Pushed {
        let bytes = data.to_string().len();
        self.entries.push_back(Entry {
            kind,
            data,
            bytes,
            seq,
        });
        self.next_seq = seq.saturating_add(1);
        self.bytes += bytes;
        let mut evicted = Vec::new();
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.pop_oldest() else {
                break;
            };
            evicted.push(oldest.seq);
        }
        let kept = self.entries.back().map(|e| e.seq).filter(|s| *s == seq);
        evicted.retain(|evicted| *evicted != seq);
        Pushed { kept, evicted }
    }

    /// Removes and returns the oldest entry.
    pub fn pop_oldest(&mut self) -> Option<Entry> {
        let oldest = self.entries.pop_front()?;
        self.bytes -= oldest.bytes;
        Some(oldest)
    }

    /// Removes and returns the newest entry.
    pub fn pop_newest(&mut self) -> Option<Entry> {
        let newest = self.entries.pop_back()?;
        self.bytes -= newest.bytes;
        Some(newest)
    }

    /// The recorded entries, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter()
    }

    /// How many entries are recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes the recorded entries count for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The `commands` list of a `history` reply built from the record, in
    /// relay order: a `command` entry as its `data`, unchanged (what a
    /// host's own reply lists, normally the command string); an `activate`
    /// entry as the frame `{"type":"activate","data":...}`, so a viewer can
    /// tell it from a command and replay it in place.
    pub fn history_commands(&self) -> Vec<Value> {
        self.entries
            .iter()
            .map(|entry| match entry.kind {
                Kind::Command => entry.data.clone(),
                Kind::Activate => serde_json::json!({ "type": "activate", "data": entry.data }),
            })
            .collect()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_newest_entries_within_the_count() {
        let mut record = Record::new(3, usize::MAX);
        for i in 0..5 {
            record.push(Kind::Command, json!(format!("c{i}")));
        }
        assert_eq!(
            record.history_commands(),
            [json!("c2"), json!("c3"), json!("c4")]
        );
        assert_eq!(record.len(), 3);
    }

    #[test]
    fn keeps_the_newest_entries_within_the_bytes() {
        // "aaaa" is 6 bytes of JSON text.
        let mut record = Record::new(100, 13);
        record.push(Kind::Command, json!("aaaa"));
        record.push(Kind::Activate, json!("bbbb"));
        assert_eq!(record.bytes(), 12);
        record.push(Kind::Command, json!("cccc"));
        assert_eq!(record.len(), 2);
        assert_eq!(record.bytes(), 12);
        assert_eq!(
            record.history_commands(),
            [json!({"type": "activate", "data": "bbbb"}), json!("cccc")]
        );
        // Too big on its own: nothing is kept.
        record.push(Kind::Command, json!("x".repeat(20)));
        assert!(record.is_empty());
        assert_eq!(record.bytes(), 0);
    }

    #[test]
    fn pushes_report_what_they_kept_and_evicted() {
        let mut record = Record::new(2, 10);
        assert_eq!(record.push(Kind::Command, json!("a")).kept, Some(0));
        record.push(Kind::Command, json!("b"));
        let pushed = record.push(Kind::Command, json!("c"));
        assert_eq!(
            pushed,
            Pushed {
                kept: Some(2),
                evicted: vec![0]
            }
        );
        // Too big on its own: not kept, and the others are gone too.
        let pushed = record.push(Kind::Command, json!("x".repeat(20)));
        assert_eq!(
            pushed,
            Pushed {
                kept: None,
                evicted: vec![1, 2]
            }
        );
        // Read back from storage: the next entries count on.
        record.push_at(41, Kind::Command, json!("d"));
        assert_eq!(record.push(Kind::Command, json!("e")).kept, Some(42));
    }

    #[test]
    fn replays_commands_and_activations_in_order() {
        let mut record = Record::new(10, 1000);
        record.push(Kind::Command, json!("load 1abc"));
        record.push(Kind::Activate, json!("1abc"));
        record.push(Kind::Command, json!("color red"));
        assert_eq!(
            record.history_commands(),
            [
                json!("load 1abc"),
                json!({"type": "activate", "data": "1abc"}),
                json!("color red"),
            ]
        );
        assert_eq!(record.entries().count(), 3);
        record.clear();
        assert!(record.is_empty());
        assert!(record.history_commands().is_empty());
    }
}
