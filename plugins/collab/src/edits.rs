//! Edits made over HTTP without a Yjs client: text inserts and deletes, map
//! sets and deletes, and clearing the whole document. Each runs as one
//! transaction of the server's own client id, so it reaches connected
//! clients as an ordinary update.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use yrs::{
    Any, Array, GetString, Map, ReadTxn, Text, Transact, TransactionMut, WriteTxn, XmlFragment,
};

use crate::document::{DocError, Document};
use crate::json::json_to_any;
use crate::roots::{self, Kind};

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// The request is invalid (HTTP 400).
    Invalid(String),
    /// The root exists with another kind (HTTP 409).
    WrongKind {
        /// The root's name.
        name: String,
        /// Its kind.
        kind: Kind,
        /// The kind the edit needs.
        wanted: Kind,
    },
    /// The document refused the change (HTTP 413 for its size).
    Doc(DocError),
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(reason) => f.write_str(reason),
            Self::WrongKind { name, kind, wanted } => write!(
                f,
                "root {name:?} is a {}, not a {}",
                kind.name(),
                wanted.name()
            ),
            Self::Doc(err) => err.fmt(f),
        }
    }
}

impl EditError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::WrongKind { .. } => 409,
            Self::Doc(err) => err.status(),
        }
    }
}

impl From<DocError> for EditError {
    fn from(err: DocError) -> Self {
        Self::Doc(err)
    }
}

/// A text edit: `{"insert": "...", "index": n}` (index defaults to the end)
/// or `{"delete": len, "index": n}` (index defaults to 0). Offsets count
/// UTF-16 code units, like JavaScript strings and `Y.Text`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextEdit {
    /// Text to insert.
    #[serde(default)]
    pub insert: Option<String>,
    /// How many code units to delete.
    #[serde(default)]
    pub delete: Option<u32>,
    /// Where.
    #[serde(default)]
    pub index: Option<u32>,
}

/// A map edit: `{"set": {"k": value}, "delete": ["k"]}` (either or both;
/// deletes run first). Values are stored as plain JSON, like
/// `ymap.set(k, value)` with a plain object in JavaScript.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapEdit {
    /// Keys to set.
    #[serde(default)]
    pub set: Option<serde_json::Map<String, Value>>,
    /// Keys to delete.
    #[serde(default)]
    pub delete: Option<Vec<String>>,
}

/// The result of an edit: a summary for the HTTP answer and the updates to
/// fan out.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// What the root looks like now, in short.
    pub summary: Value,
    /// The updates the edit produced.
    pub updates: Vec<Vec<u8>>,
}

/// Checks that root `name` can be used as `wanted` (absent, undeclared and
/// empty, or already that kind).
fn check_kind<T: ReadTxn>(txn: &T, name: &str, wanted: Kind) -> Result<(), EditError> {
    match roots::root_kind(txn, name) {
        None | Some(Kind::Unknown) => Ok(()),
        Some(kind) if kind == wanted => Ok(()),
        Some(kind) => Err(EditError::WrongKind {
            name: name.to_owned(),
            kind,
            wanted,
        }),
    }
}

/// Whether UTF-16 offset `index` falls between two characters of `text`.
fn is_boundary(text: &str, index: u32) -> bool {
    let mut offset = 0u64;
    for ch in text.chars() {
        if offset >= u64::from(index) {
            break;
        }
        offset += ch.len_utf16() as u64;
    }
    offset == u64::from(index)
}

/// The longest root name a REST edit accepts, in bytes.
pub const MAX_ROOT_NAME_BYTES: usize = 256;

/// Refuses root names longer than [`MAX_ROOT_NAME_BYTES`]: an item at the
/// start of a root carries the root's name, so a long name makes every key
/// of a map edit cost its length.
fn check_name(name: &str) -> Result<(), EditError> {
    if name.len() > MAX_ROOT_NAME_BYTES {
        return Err(EditError::Invalid(format!(
            "the root name is {} bytes; the limit is {MAX_ROOT_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

/// About how many bytes an item adds to the encoding besides its name, key
/// and content (info byte, lengths, and the update's headers).
const ITEM_OVERHEAD: usize = 16;

/// A text edit, checked against the text as it is.
enum TextOp<'a> {
    Insert(u32, &'a str),
    Delete(u32, u32),
}

/// Checks a text edit of root `name` without touching the document (a
/// refused edit must not create the root).
fn plan_text<'a>(doc: &Document, name: &str, edit: &'a TextEdit) -> Result<TextOp<'a>, EditError> {
    let txn = doc.doc().transact();
    check_kind(&txn, name, Kind::Text)?;
    let (current, length) = match txn.get_text(name) {
        Some(text) => (text.get_string(&txn), text.len(&txn)),
        None => (String::new(), 0),
    };
    match (&edit.insert, edit.delete) {
        (Some(insert), None) => {
            let index = edit.index.unwrap_or(length);
            if index > length || !is_boundary(&current, index) {
                return Err(EditError::Invalid(format!(
                    "index {index} is not a character boundary of the {length}-unit text"
                )));
            }
            Ok(TextOp::Insert(index, insert))
        }
        (None, Some(delete)) => {
            let index = edit.index.unwrap_or(0);
            match index.checked_add(delete).filter(|&end| end <= length) {
                Some(end) if is_boundary(&current, index) && is_boundary(&current, end) => {
                    Ok(TextOp::Delete(index, delete))
                }
                _ => Err(EditError::Invalid(format!(
                    "cannot delete {delete} units at {index} from the {length}-unit text"
                ))),
            }
        }
        _ => Err(EditError::Invalid(
            "give exactly one of \"insert\" (a string) or \"delete\" (a length)".to_owned(),
        )),
    }
}

/// Applies a text edit to root `name`.
pub fn edit_text(doc: &mut Document, name: &str, edit: &TextEdit) -> Result<Edited, EditError> {
    check_name(name)?;
    let op = plan_text(doc, name, edit)?;
    let incoming = name.len() + edit.insert.as_ref().map_or(0, String::len) + ITEM_OVERHEAD;
    let (summary, updates) = doc.edit(incoming, |txn| {
        let text = txn.get_or_insert_text(name);
        match op {
            TextOp::Insert(index, chunk) => text.insert(txn, index, chunk),
            TextOp::Delete(index, len) => text.remove_range(txn, index, len),
        }
        serde_json::json!({ "name": name, "length": text.len(txn) })
    })?;
    Ok(Edited { summary, updates })
}

/// Applies a map edit to root `name`.
pub fn edit_map(doc: &mut Document, name: &str, edit: &MapEdit) -> Result<Edited, EditError> {
    if edit.set.is_none() && edit.delete.is_none() {
        return Err(EditError::Invalid(
            "give \"set\" (an object) and/or \"delete\" (a list of keys)".to_owned(),
        ));
    }
    check_name(name)?;
    // Each key set at the start of the map carries the root's name, the key
    // and the value (encoded as yrs stores it); a deleted key adds a range
    // to the delete set.
    let values: Vec<(&String, Any)> = edit
        .set
        .iter()
        .flatten()
        .map(|(key, value)| (key, json_to_any(value)))
        .collect();
    let incoming = values
        .iter()
        .map(|(key, value)| {
            let mut encoded = Vec::new();
            value.encode(&mut encoded);
            name.len() + key.len() + encoded.len() + ITEM_OVERHEAD
        })
        .chain(edit.delete.iter().flatten().map(|_| ITEM_OVERHEAD))
        .fold(0usize, usize::saturating_add);
    check_kind(&doc.doc().transact(), name, Kind::Map)?;
    let (summary, updates) = doc.edit(incoming, |txn| {
        let map = txn.get_or_insert_map(name);
        for key in edit.delete.iter().flatten() {
            map.remove(txn, key);
        }
        for (key, value) in values {
            map.insert(txn, key.as_str(), value);
        }
        serde_json::json!({ "name": name, "keys": map.len(txn) })
    })?;
    Ok(Edited { summary, updates })
}

/// Deletes the content of every root (a CRDT delete, which clients apply
/// like any other edit; the roots themselves remain, empty).
pub fn clear(doc: &mut Document) -> Result<Edited, EditError> {
    let (roots, updates) = doc.edit(0, |txn| {
        let kinds = roots::kinds(txn);
        for (name, kind) in &kinds {
            clear_root(txn, name, *kind);
        }
        kinds.len()
    })?;
    Ok(Edited {
        summary: serde_json::json!({ "cleared": roots }),
        updates,
    })
}

fn clear_root(txn: &mut TransactionMut<'_>, name: &str, kind: Kind) {
    match kind {
        Kind::Text | Kind::XmlText => {
            let text = txn.get_or_insert_text(name);
            let length = text.len(txn);
            if length > 0 {
                text.remove_range(txn, 0, length);
            }
        }
        Kind::Array => {
            let array = txn.get_or_insert_array(name);
            let length = array.len(txn);
            if length > 0 {
                array.remove_range(txn, 0, length);
            }
        }
        Kind::XmlFragment => {
            let fragment = txn.get_or_insert_xml_fragment(name);
            let length = fragment.len(txn);
            if length > 0 {
                fragment.remove_range(txn, 0, length);
            }
        }
        Kind::Map => {
            let map = txn.get_or_insert_map(name);
            let keys: Vec<String> = map.keys(txn).map(str::to_owned).collect();
            for key in keys {
                map.remove(txn, &key);
            }
        }
        Kind::Unknown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::is_boundary;

    #[test]
    fn boundaries_count_utf16_units() {
        let text = "a😀b";
        assert!(is_boundary(text, 0));
        assert!(is_boundary(text, 1));
        assert!(!is_boundary(text, 2));
        assert!(is_boundary(text, 3));
        assert!(is_boundary(text, 4));
        assert!(!is_boundary(text, 5));
    }
}
