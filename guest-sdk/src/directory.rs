//! The service's room directory as the lobby sees it: [`RoomEntry`] and
//! [`RoomChange`].

use serde_json::Value;

/// One room of the service, as [`Room::rooms`](crate::Room::rooms) lists it
/// and [`RoomChange::Updated`] reports it.
///
/// ```
/// use roomhost_sdk::RoomEntry;
///
/// let entry = RoomEntry::new("ABC123", 3, serde_json::json!({ "viewers": 2 }));
/// assert_eq!(entry.info["viewers"], 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomEntry {
    /// The room's id.
    pub room_id: String,
    /// How many clients are connected to it.
    pub clients: u32,
    /// The room's [`set_info`](crate::Room::set_info) metadata;
    /// [`Value::Null`] if unset (or, defensively, if the host's text is not
    /// valid JSON).
    pub info: Value,
}

impl RoomEntry {
    /// An entry for room `room_id` with `clients` clients and `info`.
    pub fn new(room_id: impl Into<String>, clients: u32, info: Value) -> Self {
        Self {
            room_id: room_id.into(),
            clients,
            info,
        }
    }

    /// An entry whose `info` is parsed from the host's JSON text.
    pub(crate) fn from_json_text(room_id: String, clients: u32, info: &str) -> Self {
        Self::new(
            room_id,
            clients,
            serde_json::from_str(info).unwrap_or(Value::Null),
        )
    }
}

/// What changed in the service's directory, delivered to the lobby by
/// [`RoomService::room_changed`](crate::RoomService::room_changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// A room was created, or its client count or info changed: its new
    /// entry.
    Updated(RoomEntry),
    /// A room ended; the payload is its id.
    Closed(String),
}

impl RoomChange {
    /// The id of the room that changed.
    pub fn room_id(&self) -> &str {
        match self {
            Self::Updated(entry) => &entry.room_id,
            Self::Closed(room_id) => room_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_text_is_parsed_leniently() {
        let entry = RoomEntry::from_json_text("r".into(), 1, r#"{"a":1}"#);
        assert_eq!(entry.info["a"], 1);
        assert_eq!(
            RoomEntry::from_json_text("r".into(), 1, "null").info,
            Value::Null
        );
        assert_eq!(
            RoomEntry::from_json_text("r".into(), 1, "{oops").info,
            Value::Null
        );
        assert_eq!(RoomChange::Closed("x".into()).room_id(), "x");
    }
}
