//! The session record: every `command` and `activate` the room relayed, in
//! order, bounded by entry count and bytes.

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
}

impl Record {
    /// An empty record with these bounds.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Appends a frame, then drops the oldest entries until the bounds hold
    /// (an entry larger than `max_bytes` on its own is therefore not kept).
    pub fn push(&mut self, kind: Kind, data: Value) {
        let bytes = data.to_string().len();
        self.entries.push_back(Entry { kind, data, bytes });
        self.bytes += bytes;
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.bytes;
        }
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
