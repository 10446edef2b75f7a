//! The parties as the service's directory shows them: the listing metadata
//! each party publishes ([`PartyInfo`]) and the `room_list` built from it.
//!
//! A party publishes `{id, name, count, media_id?, members, created_at,
//! closed}` with `set_info` whenever its membership changes. The lobby,
//! told of every change through `room_changed`, uses it both for the
//! `room_list` payload and to know which clients are in parties, so that it
//! can push `room_list` to every client of the service.

use std::collections::BTreeMap;

use roomhost_sdk::{ClientId, RoomEntry};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most bytes of `room_list` entries sent in one frame: the host drops
/// frames over 64 KiB, so a very long list is cut short rather than lost.
pub const MAX_LIST_BYTES: usize = 60 * 1024;

/// A party's listing metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartyInfo {
    /// The party id (a UUID).
    pub id: String,
    /// The party's name.
    pub name: String,
    /// How many clients are in it.
    pub count: usize,
    /// The Jellyfin item it plays, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// Its clients, host included.
    #[serde(default)]
    pub members: Vec<ClientId>,
    /// When it was created (ms), to list parties oldest first.
    #[serde(default)]
    pub created_at: u64,
    /// Set once the party has closed: it is no longer listed or joinable.
    #[serde(default)]
    pub closed: bool,
}

impl PartyInfo {
    /// The listing of directory entry `entry`, if it is an open party.
    pub fn from_entry(entry: &RoomEntry) -> Option<Self> {
        let mut info = Self::deserialize(&entry.info).ok()?;
        if info.closed || info.count == 0 {
            return None;
        }
        // The directory's id is authoritative.
        info.id.clone_from(&entry.room_id);
        Some(info)
    }

    /// The `room_list` entry: `{id, name, count, media_id?}`.
    pub fn listing(&self) -> Value {
        let mut entry = serde_json::json!({
            "id": self.id,
            "name": self.name,
            "count": self.count,
        });
        if let (Some(media_id), Some(object)) = (&self.media_id, entry.as_object_mut()) {
            object.insert("media_id".into(), Value::String(media_id.clone()));
        }
        entry
    }
}

/// The open parties of a directory listing, by id.
pub fn parties_of(entries: &[RoomEntry]) -> BTreeMap<String, PartyInfo> {
    entries
        .iter()
        .filter_map(PartyInfo::from_entry)
        .map(|info| (info.id.clone(), info))
        .collect()
}

/// The `room_list` payload for `parties`: oldest first, cut short to fit
/// [`MAX_LIST_BYTES`].
pub fn room_list<'a>(parties: impl IntoIterator<Item = &'a PartyInfo>) -> Value {
    let mut parties: Vec<&PartyInfo> = parties.into_iter().collect();
    parties.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut bytes = 0;
    let mut list = Vec::with_capacity(parties.len());
    for party in parties {
        let entry = party.listing();
        bytes += entry.to_string().len() + 1;
        if bytes > MAX_LIST_BYTES {
            break;
        }
        list.push(entry);
    }
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(id: &str, created_at: u64) -> PartyInfo {
        PartyInfo {
            id: id.into(),
            name: format!("Room de {id}"),
            count: 1,
            media_id: None,
            members: vec![1],
            created_at,
            closed: false,
        }
    }

    #[test]
    fn only_open_parties_are_listed() {
        let open = serde_json::to_value(info("a", 1)).unwrap_or_default();
        let mut closed = info("b", 2);
        closed.closed = true;
        let closed = serde_json::to_value(closed).unwrap_or_default();
        let entries = vec![
            RoomEntry::new("a", 1, open),
            RoomEntry::new("b", 0, closed),
            RoomEntry::new("c", 0, Value::Null),
            RoomEntry::new("d", 0, json!({"viewers": 1})),
        ];
        let parties = parties_of(&entries);
        assert_eq!(parties.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn lists_oldest_first_and_omit_absent_media() {
        let mut b = info("b", 1);
        b.media_id = Some("0123456789abcdef0123456789abcdef".into());
        let a = info("a", 2);
        assert_eq!(
            room_list([&a, &b]),
            json!([
                {"id": "b", "name": "Room de b", "count": 1, "media_id": "0123456789abcdef0123456789abcdef"},
                {"id": "a", "name": "Room de a", "count": 1},
            ])
        );
    }

    #[test]
    fn long_lists_are_cut_to_fit_a_frame() {
        let parties: Vec<PartyInfo> = (0..2000).map(|i| info(&format!("{i:036}"), i)).collect();
        let list = room_list(&parties);
        let len = list.as_array().map_or(0, Vec::len);
        assert!(len > 100 && len < 2000, "{len}");
        assert!(list.to_string().len() <= MAX_LIST_BYTES);
    }
}
