//! The room's awareness table (who is here, their cursors and names), with
//! the semantics of y-protocols' `applyAwarenessUpdate` and
//! `removeAwarenessStates`, plus which connection controls which awareness
//! client id.
//!
//! The wire form is yrs's [`AwarenessUpdate`]; the table is kept here
//! rather than in `yrs::sync::Awareness` so that it can be ordered,
//! snapshotted with its clocks, and remove a departed connection's states
//! without bumping their clocks, exactly as the reference server does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use roomhost_sdk::ClientId;

use serde::de::IgnoredAny;
use serde_json::Value;
use yrs::ClientID;
use yrs::sync::AwarenessUpdate;
use yrs::sync::awareness::AwarenessUpdateEntry;

/// How long an awareness state lives without renewal by default (30 s, the
/// y-protocols `outdatedTimeout`).
pub const DEFAULT_AWARENESS_TIMEOUT_MS: u64 = 30_000;
/// The default cap on the live awareness states of a room.
pub const DEFAULT_MAX_AWARENESS_STATES: usize = 256;
/// The default cap on the awareness ids one connection controls (a
/// y-websocket client has one; a few more allow several documents sharing
/// one connection).
pub const DEFAULT_MAX_AWARENESS_PER_CONNECTION: usize = 4;

/// An awareness client id (a Yjs `doc.clientID`), not a connection.
pub type AwarenessId = u64;

/// What the table knows about one awareness client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The latest clock seen.
    pub clock: u32,
    /// The state as JSON text; `None` once removed (the clock is kept so an
    /// older update cannot bring it back).
    pub state: Option<Arc<str>>,
    /// When it was last set, in milliseconds since the epoch.
    pub last_updated: u64,
}

/// One entry of an incoming awareness update, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The awareness client id.
    pub id: AwarenessId,
    /// Its clock.
    pub clock: u32,
    /// The JSON state, `None` for `null` (removal).
    pub state: Option<Arc<str>>,
}

/// An incoming awareness update, checked: the entries to apply, and why
/// the others were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// The entries to apply, in id order.
    pub changes: Vec<Change>,
    /// Why each dropped entry was dropped.
    pub dropped: Vec<String>,
}

/// The caps of an awareness table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most live states in the room.
    pub max_states: usize,
    /// The most awareness ids one connection controls.
    pub max_per_connection: usize,
    /// How long a state lives without renewal, in milliseconds (`0`: until
    /// its connection leaves). A removed entry (kept for its clock) is
    /// forgotten this long after its removal, or after
    /// [`DEFAULT_AWARENESS_TIMEOUT_MS`] when this is `0`.
    pub timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_states: DEFAULT_MAX_AWARENESS_STATES,
            max_per_connection: DEFAULT_MAX_AWARENESS_PER_CONNECTION,
            timeout_ms: DEFAULT_AWARENESS_TIMEOUT_MS,
        }
    }
}

impl Limits {
    /// How long a removed entry is kept.
    fn retention_ms(self) -> u64 {
        match self.timeout_ms {
            0 => DEFAULT_AWARENESS_TIMEOUT_MS,
            timeout => timeout,
        }
    }
}

/// What [`Presence::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The ids whose entry changed, to broadcast.
    pub changed: Vec<AwarenessId>,
    /// Why each dropped change was dropped (a cap).
    pub dropped: Vec<String>,
}

/// The bytes of an awareness frame around its entries: the message type,
/// the body's length and the entry count (varints below 2^35).
const FRAME_OVERHEAD: usize = 1 + 5 + 5;

/// The size of a varint.
fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

/// The largest awareness frame that carries one state of `json_bytes`
/// bytes (the id and clock at their longest).
pub const fn frame_bytes_for_state(json_bytes: usize) -> usize {
    FRAME_OVERHEAD + 10 + 5 + 5 + json_bytes
}

/// The awareness table of one room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    entries: BTreeMap<AwarenessId, Entry>,
    owners: BTreeMap<AwarenessId, ClientId>,
    limits: Limits,
}

/// Checks an incoming update. An entry whose state is not JSON makes the
/// whole update malformed (`Err`, nothing is applied); a state larger than
/// `max_bytes` is dropped, and the other entries are kept.
pub fn check(update: &AwarenessUpdate, max_bytes: usize) -> Result<Checked, String> {
    let mut checked = Checked::default();
    for (id, entry) in &update.clients {
        let id = id.get();
        let json: &str = &entry.json;
        // `IgnoredAny` checks the syntax without building the value, and
        // accepts escaped lone surrogates (`"\ud800"`), which
        // `JSON.stringify` emits for a string cut inside a pair; parsing
        // into a `Value` would refuse them.
        serde_json::from_str::<IgnoredAny>(json)
            .map_err(|err| format!("awareness state of {id} is not JSON: {err}"))?;
        if json.len() > max_bytes {
            checked.dropped.push(format!(
                "awareness state of {id} is {} bytes; the limit is {max_bytes}",
                json.len()
            ));
            continue;
        }
        let state = (!is_null(json)).then(|| entry.json.clone());
        checked.changes.push(Change {
            id,
            clock: entry.clock,
            state,
        });
    }
    checked.changes.sort_by_key(|change| change.id);
    checked.dropped.sort();
    Ok(checked)
}

/// Whether valid JSON text `json` is `null` (a removal).
fn is_null(json: &str) -> bool {
    json.trim_matches([' ', '\t', '\n', '\r']) == "null"
}

/// Parses a stored state for display. A state with escaped lone surrogates
/// (which a `Value` refuses) is shown with each replaced by U+FFFD, as
/// `TextEncoder` does in JavaScript.
fn parse_state(json: &str) -> Value {
    serde_json::from_str(json)
        .or_else(|_| serde_json::from_str(&replace_lone_surrogates(json)))
        .unwrap_or(Value::Null)
}

/// `json` with every escaped lone surrogate (`\udXXX` not part of a pair)
/// replaced by `\ufffd`.
fn replace_lone_surrogates(json: &str) -> String {
    let unit = |at: usize| {
        json.get(at..at + 4)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2; // `\"`, `\\`, `\n`...: skip both characters
            continue;
        }
        match unit(i + 2) {
            Some(0xD800..=0xDBFF)
                if bytes.get(i + 6..i + 8) == Some(&b"\\u"[..])
                    && matches!(unit(i + 8), Some(0xDC00..=0xDFFF)) =>
            {
                i += 12;
            }
            Some(0xD800..=0xDFFF) => {
                out.push_str(&json[copied..i]);
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
            }
            _ => i += 2,
        }
    }
    out.push_str(&json[copied..]);
    out
}

impl Presence {
    /// An empty table with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Applies checked changes sent by connection `from` at time `now`, as
    /// `applyAwarenessUpdate` does: a change wins if its clock is newer, or
    /// if it removes a live state at the same clock. Returns the ids whose
    /// entry changed (added, renewed, updated or removed), to broadcast.
    ///
    /// A connection that sets a state controls that id from then on (its
    /// states are removed when it leaves); a removal ends the control.
    /// A new state beyond the room's cap, or beyond the ids the connection
    /// may control, is dropped. A removal of an id the table does not know
    /// is not stored.
    pub fn apply(&mut self, from: ClientId, changes: Vec<Change>, now: u64) -> Applied {
        self.prune(now);
        let mut applied = Applied::default();
        let mut live = self.len();
        let mut controlled = self.owners.values().filter(|&&o| o == from).count();
        for change in changes {
            let id = change.id;
            let Some(known) = self.entries.get(&id) else {
                if change.state.is_none() {
                    continue; // the reference reports nothing either
                }
                if let Err(reason) = self.admit(id, live, controlled) {
                    applied.dropped.push(reason);
                    continue;
                }
                self.set(change, from, now);
                applied.changed.push(id);
                live += 1;
                controlled += 1;
                continue;
            };
            let is_live = known.state.is_some();
            let newer = known.clock < change.clock;
            let removes = known.clock == change.clock && change.state.is_none() && is_live;
            if !(newer || removes) {
                continue;
            }
            let owned = self.owners.get(&id) == Some(&from);
            if change.state.is_some() {
                if !is_live && let Err(reason) = self.admit(id, live, controlled) {
                    applied.dropped.push(reason);
                    continue;
                }
                if is_live && !owned && controlled >= self.limits.max_per_connection {
                    applied
                        .dropped
                        .push(self.too_many_for_connection(id, controlled));
                    continue;
                }
                live += usize::from(!is_live);
                controlled += usize::from(!owned);
            } else {
                live -= usize::from(is_live);
                controlled -= usize::from(owned);
            }
            self.set(change, from, now);
            // The reference reports a removal for any known id, even one
            // already removed.
            applied.changed.push(id);
        }
        applied
    }

    /// Whether a new live state for `id` fits, with `live` states in the
    /// room and `controlled` ids controlled by the sender.
    fn admit(&self, id: AwarenessId, live: usize, controlled: usize) -> Result<(), String> {
        if live >= self.limits.max_states {
            return Err(format!(
                "awareness state of {id}: the room has {live} states, the limit \
                 (max_awareness_states)"
            ));
        }
        if controlled >= self.limits.max_per_connection {
            return Err(self.too_many_for_connection(id, controlled));
        }
        Ok(())
    }

    fn too_many_for_connection(&self, id: AwarenessId, controlled: usize) -> String {
        format!(
            "awareness state of {id}: the connection already controls {controlled} awareness \
             ids, the limit (max_awareness_per_connection)"
        )
    }

    /// Stores a winning change from `from`.
    fn set(&mut self, change: Change, from: ClientId, now: u64) {
        if change.state.is_some() {
            self.owners.insert(change.id, from);
        } else {
            self.owners.remove(&change.id);
        }
        self.entries.insert(
            change.id,
            Entry {
                clock: change.clock,
                state: change.state,
                last_updated: now,
            },
        );
    }

    /// Removes the live states that connection `client` controls (it left)
    /// at `now`, keeping their clocks. Returns the removed ids, to
    /// broadcast.
    pub fn remove_client(&mut self, client: ClientId, now: u64) -> Vec<AwarenessId> {
        let ids: Vec<AwarenessId> = self
            .owners
            .iter()
            .filter(|&(_, owner)| *owner == client)
            .map(|(&id, _)| id)
            .collect();
        self.prune(now);
        self.remove(&ids, now)
    }

    /// Removes the live states not renewed for the timeout at `now`.
    /// Returns the removed ids, to broadcast.
    pub fn expire(&mut self, now: u64) -> Vec<AwarenessId> {
        let timeout = self.limits.timeout_ms;
        if timeout == 0 {
            return Vec::new();
        }
        let ids: Vec<AwarenessId> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                entry.state.is_some() && now.saturating_sub(entry.last_updated) >= timeout
            })
            .map(|(&id, _)| id)
            .collect();
        self.prune(now);
        self.remove(&ids, now)
    }

    /// When the oldest live state expires (in ms since the epoch), if any
    /// does.
    pub fn next_expiry(&self) -> Option<u64> {
        let timeout = self.limits.timeout_ms;
        if timeout == 0 {
            return None;
        }
        self.entries
            .values()
            .filter(|entry| entry.state.is_some())
            .map(|entry| entry.last_updated.saturating_add(timeout))
            .min()
    }

    fn remove(&mut self, ids: &[AwarenessId], now: u64) -> Vec<AwarenessId> {
        let mut removed = Vec::new();
        for id in ids {
            self.owners.remove(id);
            if let Some(entry) = self.entries.get_mut(id)
                && entry.state.take().is_some()
            {
                entry.last_updated = now;
                removed.push(*id);
            }
        }
        removed
    }

    /// Forgets removed entries (kept so that an older update cannot bring
    /// a state back) once they are older than the retention, and the oldest
    /// beyond `max_states` of them, so that churn cannot grow the table.
    fn prune(&mut self, now: u64) {
        let retention = self.limits.retention_ms();
        self.entries.retain(|_, entry| {
            entry.state.is_some() || now.saturating_sub(entry.last_updated) < retention
        });
        let mut removed: Vec<(u64, AwarenessId)> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.state.is_none())
            .map(|(&id, entry)| (entry.last_updated, id))
            .collect();
        if removed.len() > self.limits.max_states {
            removed.sort_unstable();
            let excess = removed.len() - self.limits.max_states;
            for (_, id) in &removed[..excess] {
                self.entries.remove(id);
            }
        }
    }

    /// Awareness updates carrying the current clock and state (`null` when
    /// removed) of each of `ids` that the table knows, split so that each
    /// makes a frame of at most `max_frame_bytes`.
    pub fn updates_for(&self, ids: &[AwarenessId], max_frame_bytes: usize) -> Vec<AwarenessUpdate> {
        let mut updates = Vec::new();
        let mut clients = HashMap::new();
        let mut size = FRAME_OVERHEAD;
        for &id in ids {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            let json = entry.state.clone().unwrap_or_else(|| Arc::from("null"));
            let bytes = varint_len(id)
                + varint_len(entry.clock.into())
                + varint_len(json.len() as u64)
                + json.len();
            if !clients.is_empty() && size + bytes > max_frame_bytes {
                updates.push(AwarenessUpdate {
                    clients: std::mem::take(&mut clients),
                });
                size = FRAME_OVERHEAD;
            }
            size += bytes;
            clients.insert(
                ClientID::new(id),
                AwarenessUpdateEntry {
                    clock: entry.clock,
                    json,
                },
            );
        }
        if !clients.is_empty() {
            updates.push(AwarenessUpdate { clients });
        }
        updates
    }

    /// Updates carrying every live state (none when there is none), split
    /// as [`Presence::updates_for`] does.
    pub fn live_updates(&self, max_frame_bytes: usize) -> Vec<AwarenessUpdate> {
        let ids: Vec<AwarenessId> = self.live().map(|(id, _)| id).collect();
        self.updates_for(&ids, max_frame_bytes)
    }

    /// The live states, in id order.
    pub fn live(&self) -> impl Iterator<Item = (AwarenessId, &str)> {
        self.entries
            .iter()
            .filter_map(|(&id, entry)| Some((id, entry.state.as_deref()?)))
    }

    /// The live states as JSON: `[{"client": id, "state": {...}}]`.
    pub fn to_json(&self) -> Value {
        self.live()
            .map(|(id, json)| {
                let state = parse_state(json);
                serde_json::json!({ "client": id, "state": state })
            })
            .collect()
    }

    /// Every entry, removed ones included (for snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (AwarenessId, &Entry)> {
        self.entries.iter().map(|(&id, entry)| (id, entry))
    }

    /// Which connection controls each id (for snapshots).
    pub fn owners(&self) -> impl Iterator<Item = (AwarenessId, ClientId)> {
        self.owners.iter().map(|(&id, &owner)| (id, owner))
    }

    /// Rebuilds a table from a snapshot's entries and owners.
    pub fn from_parts(
        entries: impl IntoIterator<Item = (AwarenessId, Entry)>,
        owners: impl IntoIterator<Item = (AwarenessId, ClientId)>,
        limits: Limits,
    ) -> Self {
        Self {
            entries: entries.into_iter().collect(),
            owners: owners.into_iter().collect(),
            limits,
        }
    }

    /// How many live states there are.
    pub(crate) fn len(&self) -> usize {
        self.live().count()
    }

    /// Whether there is no live state.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.live().next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_replaced_for_display() {
        let cases = [
            (r#""a\ud800b""#, r#""a\ufffdb""#),
            (r#""\udc00""#, r#""\ufffd""#),
            (r#""\ud83d\ude00""#, r#""\ud83d\ude00""#),
            (r#""\ud83d\u0041""#, r#""\ufffd\u0041""#),
            (r#""\\ud800""#, r#""\\ud800""#),
            (r#"{"\ud800":"\udbff"}"#, r#"{"\ufffd":"\ufffd"}"#),
            (r#""é\ud800""#, r#""é\ufffd""#),
        ];
        for (json, expected) in cases {
            assert_eq!(replace_lone_surrogates(json), expected, "{json}");
        }
        assert_eq!(
            parse_state(r#"{"name":"a\ud800"}"#),
            serde_json::json!({"name": "a\u{fffd}"})
        );
    }

    #[test]
    fn null_is_a_removal_with_any_json_whitespace() {
        assert!(is_null("null"));
        assert!(is_null(" \n null\t"));
        assert!(!is_null("\"null\""));
        assert!(!is_null("{}"));
    }
}
