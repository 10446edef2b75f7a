//! The document's root-level shared types: what kind each one is, and the
//! whole document as JSON.
//!
//! A root that the server only received from peers has no declared kind in
//! yrs (Yjs sends a root by name only; `getText`/`getMap` decide its kind on
//! the client). [`settle`] infers it from the content, as yrs's own prelim
//! conversion does, and fixes it in the server's document, so that the JSON
//! view and REST edits see the same kind the clients use. A root that is
//! empty and was never declared has no knowable kind: [`Kind::Unknown`],
//! shown as `null`.

use serde_json::{Map, Value};
use yrs::branch::BranchPtr;
use yrs::types::{AsPrelim, ToJson};
use yrs::{
    Array, ArrayRef, GetString, In, MapRef, Out, ReadTxn, TextRef, TransactionMut, WriteTxn,
    XmlFragmentRef, XmlTextRef,
};

use crate::json::any_to_json;

/// The kind of a root-level shared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `Y.Text`.
    Text,
    /// `Y.Map`.
    Map,
    /// `Y.Array`.
    Array,
    /// `Y.XmlFragment` (or a root `Y.XmlElement`).
    XmlFragment,
    /// `Y.XmlText`.
    XmlText,
    /// Not declared here and empty: cannot be told.
    Unknown,
}

impl Kind {
    /// The kind's name in messages (`text`, `map`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Map => "map",
            Self::Array => "array",
            Self::XmlFragment => "xml fragment",
            Self::XmlText => "xml text",
            Self::Unknown => "unknown",
        }
    }

    /// The kind's code in snapshots.
    pub fn code(self) -> u8 {
        match self {
            Self::Text => 1,
            Self::Map => 2,
            Self::Array => 3,
            Self::XmlFragment => 4,
            Self::XmlText => 5,
            Self::Unknown => 0,
        }
    }

    /// The kind with snapshot code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Unknown,
            1 => Self::Text,
            2 => Self::Map,
            3 => Self::Array,
            4 => Self::XmlFragment,
            5 => Self::XmlText,
            _ => return None,
        })
    }
}

/// The kind of root value `out`.
fn kind_of<T: ReadTxn>(txn: &T, out: &Out) -> Kind {
    match out {
        Out::YText(_) => Kind::Text,
        Out::YMap(_) => Kind::Map,
        Out::YArray(_) => Kind::Array,
        Out::YXmlFragment(_) | Out::YXmlElement(_) => Kind::XmlFragment,
        Out::YXmlText(_) => Kind::XmlText,
        Out::UndefinedRef(branch) => infer(txn, *branch),
        _ => Kind::Unknown,
    }
}

/// Infers the kind of an undeclared root from its content.
fn infer<T: ReadTxn>(txn: &T, branch: BranchPtr) -> Kind {
    match Out::UndefinedRef(branch).as_prelim(txn) {
        In::Text(_) => Kind::Text,
        In::XmlText(_) => Kind::XmlText,
        In::XmlElement(_) | In::XmlFragment(_) => Kind::XmlFragment,
        In::Map(entries) if !entries.is_empty() => Kind::Map,
        In::Array(_) => {
            let array = ArrayRef::from(branch);
            match array.get(txn, 0) {
                None => Kind::Unknown,
                Some(Out::YXmlElement(_) | Out::YXmlText(_)) => Kind::XmlFragment,
                Some(_) => Kind::Array,
            }
        }
        _ => Kind::Unknown,
    }
}

/// The kind of root `name`, or `None` if the document has no such root.
pub fn root_kind<T: ReadTxn>(txn: &T, name: &str) -> Option<Kind> {
    txn.root_refs()
        .find(|(root, _)| *root == name)
        .map(|(_, out)| kind_of(txn, &out))
}

/// Every root with its kind, sorted by name.
pub fn kinds<T: ReadTxn>(txn: &T) -> Vec<(String, Kind)> {
    let mut kinds: Vec<(String, Kind)> = txn
        .root_refs()
        .map(|(name, out)| (name.to_owned(), kind_of(txn, &out)))
        .collect();
    kinds.sort();
    kinds
}

/// Declares undeclared roots whose kind the content tells, so the document
/// keeps treating them as that kind (even once emptied). Cheap when every
/// root is declared. Produces no update.
pub fn settle(txn: &mut TransactionMut<'_>) {
    let undeclared: Vec<(String, Kind)> = txn
        .root_refs()
        .filter_map(|(name, out)| match out {
            Out::UndefinedRef(branch) => Some((name.to_owned(), infer(txn, branch))),
            _ => None,
        })
        .collect();
    for (name, kind) in undeclared {
        declare(txn, &name, kind);
    }
}

/// Declares root `name` as `kind` (no-op for [`Kind::Unknown`], and for a
/// root already declared).
pub fn declare(txn: &mut TransactionMut<'_>, name: &str, kind: Kind) {
    match kind {
        Kind::Text => drop(txn.get_or_insert_text(name)),
        Kind::Map => drop(txn.get_or_insert_map(name)),
        Kind::Array => drop(txn.get_or_insert_array(name)),
        Kind::XmlFragment => drop(txn.get_or_insert_xml_fragment(name)),
        // yrs has no root XML text constructor; the content tells it anyway.
        Kind::XmlText | Kind::Unknown => {}
    }
}

/// The document as JSON: `{root name: value}`. Texts and XML are strings,
/// maps objects, arrays arrays; an unknown root is `null`.
pub fn to_json<T: ReadTxn>(txn: &T) -> Value {
    let mut roots = Map::new();
    for (name, out) in txn.root_refs() {
        let value = match &out {
            Out::UndefinedRef(branch) => undeclared_json(txn, *branch),
            other => any_to_json(&other.to_json(txn)),
        };
        roots.insert(name.to_owned(), value);
    }
    Value::Object(roots)
}

fn undeclared_json<T: ReadTxn>(txn: &T, branch: BranchPtr) -> Value {
    match infer(txn, branch) {
        Kind::Text => Value::String(TextRef::from(branch).get_string(txn)),
        Kind::XmlText => Value::String(XmlTextRef::from(branch).get_string(txn)),
        Kind::XmlFragment => Value::String(XmlFragmentRef::from(branch).get_string(txn)),
        Kind::Map => any_to_json(&MapRef::from(branch).to_json(txn)),
        Kind::Array => any_to_json(&ArrayRef::from(branch).to_json(txn)),
        Kind::Unknown => Value::Null,
    }
}
