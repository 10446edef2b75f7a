//! The room's awareness table (who is here, their cursors and names), with
//! the semantics of y-protocols' `applyAwarenessUpdate` and
//! `removeAwarenessStates`, plus which connection controls which awareness
//! client id.
//!
//! The wire form is yrs's [`AwarenessUpdate`]; the table is kept here
//! rather than in `yrs::sync::Awareness` so that it can be ordered,
//! snapshotted with its clocks, and remove a departed connection's states
//! without bumping their clocks, exactly as the reference server does.

use std::collections::BTreeMap;
use std::sync::Arc;

use roomhost_sdk::ClientId;
use serde_json::Value;
use yrs::ClientID;
use yrs::sync::AwarenessUpdate;
use yrs::sync::awareness::AwarenessUpdateEntry;

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

/// Why an awareness update was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A state is not valid JSON.
    Malformed(String),
    /// A state is larger than the cap.
    TooLarge {
        /// The awareness client id.
        id: AwarenessId,
        /// Its size in bytes.
        bytes: usize,
    },
}

/// The awareness table of one room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    entries: BTreeMap<AwarenessId, Entry>,
    owners: BTreeMap<AwarenessId, ClientId>,
}

/// Checks an incoming update: every state must be JSON of at most
/// `max_bytes` bytes. Nothing is applied when one entry fails.
pub fn check(update: &AwarenessUpdate, max_bytes: usize) -> Result<Vec<Change>, Refusal> {
    let mut changes = Vec::with_capacity(update.clients.len());
    for (id, entry) in &update.clients {
        let id = id.get();
        let json: &str = &entry.json;
        if json.len() > max_bytes {
            return Err(Refusal::TooLarge {
                id,
                bytes: json.len(),
            });
        }
        let value: Value = serde_json::from_str(json).map_err(|err| {
            Refusal::Malformed(format!("awareness state of {id} is not JSON: {err}"))
        })?;
        let state = (!value.is_null()).then(|| entry.json.clone());
        changes.push(Change {
            id,
            clock: entry.clock,
            state,
        });
    }
    changes.sort_by_key(|change| change.id);
    Ok(changes)
}

impl Presence {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies checked changes sent by connection `from` at time `now`, as
    /// `applyAwarenessUpdate` does: a change wins if its clock is newer, or
    /// if it removes a live state at the same clock. Returns the ids whose
    /// entry changed (added, renewed, updated or removed), to broadcast.
    ///
    /// A connection that sets a state controls that id from then on (its
    /// states are removed when it leaves); a removal ends the control.
    pub fn apply(&mut self, from: ClientId, changes: Vec<Change>, now: u64) -> Vec<AwarenessId> {
        let mut changed = Vec::new();
        for change in changes {
            let known = self.entries.get(&change.id);
            let current_clock = known.map_or(0, |entry| entry.clock);
            let is_live = known.is_some_and(|entry| entry.state.is_some());
            let newer = current_clock < change.clock;
            let removes = current_clock == change.clock && change.state.is_none() && is_live;
            if !(newer || removes) {
                continue;
            }
            let was_known = known.is_some();
            let sets = change.state.is_some();
            self.entries.insert(
                change.id,
                Entry {
                    clock: change.clock,
                    state: change.state,
                    last_updated: now,
                },
            );
            if sets {
                self.owners.insert(change.id, from);
            } else {
                self.owners.remove(&change.id);
            }
            // The reference reports a removal for any known id, even one
            // already removed; an unknown id that arrives removed is silent.
            if sets || was_known {
                changed.push(change.id);
            }
        }
        changed
    }

    /// Removes the live states that connection `client` controls (it left),
    /// keeping their clocks. Returns the removed ids, to broadcast.
    pub fn remove_client(&mut self, client: ClientId) -> Vec<AwarenessId> {
        let ids: Vec<AwarenessId> = self
            .owners
            .iter()
            .filter(|&(_, owner)| *owner == client)
            .map(|(&id, _)| id)
            .collect();
        self.remove(&ids)
    }

    /// Removes the live states not renewed for `timeout_ms` at `now`.
    /// Returns the removed ids, to broadcast.
    pub fn expire(&mut self, now: u64, timeout_ms: u64) -> Vec<AwarenessId> {
        let ids: Vec<AwarenessId> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                entry.state.is_some() && now.saturating_sub(entry.last_updated) >= timeout_ms
            })
            .map(|(&id, _)| id)
            .collect();
        self.remove(&ids)
    }

    /// When the oldest live state expires (in ms since the epoch), if any.
    pub fn next_expiry(&self, timeout_ms: u64) -> Option<u64> {
        self.entries
            .values()
            .filter(|entry| entry.state.is_some())
            .map(|entry| entry.last_updated.saturating_add(timeout_ms))
            .min()
    }

    fn remove(&mut self, ids: &[AwarenessId]) -> Vec<AwarenessId> {
        let mut removed = Vec::new();
        for id in ids {
            self.owners.remove(id);
            if let Some(entry) = self.entries.get_mut(id)
                && entry.state.take().is_some()
            {
                removed.push(*id);
            }
        }
        removed
    }

    /// An update carrying the current clock and state (`null` when removed)
    /// of each of `ids` that the table knows.
    pub fn update_for(&self, ids: &[AwarenessId]) -> AwarenessUpdate {
        let clients = ids
            .iter()
            .filter_map(|id| {
                let entry = self.entries.get(id)?;
                let json = entry.state.clone().unwrap_or_else(|| Arc::from("null"));
                Some((
                    ClientID::new(*id),
                    AwarenessUpdateEntry {
                        clock: entry.clock,
                        json,
                    },
                ))
            })
            .collect();
        AwarenessUpdate { clients }
    }

    /// An update carrying every live state, or `None` when there is none.
    pub fn live_update(&self) -> Option<AwarenessUpdate> {
        let ids: Vec<AwarenessId> = self.live().map(|(id, _)| id).collect();
        (!ids.is_empty()).then(|| self.update_for(&ids))
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
                let state = serde_json::from_str(json).unwrap_or(Value::Null);
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
    ) -> Self {
        Self {
            entries: entries.into_iter().collect(),
            owners: owners.into_iter().collect(),
        }
    }

    /// How many live states there are.
    pub fn len(&self) -> usize {
        self.live().count()
    }

    /// Whether there is no live state.
    pub fn is_empty(&self) -> bool {
        self.live().next().is_none()
    }
}
