//! The wire format: the JSON envelope in both directions, the error texts,
//! and payload validation.
//!
//! Input: `{"type": str, "room"?: str, "client"?: str, "payload"?: any,
//! "ts": number}`; `ts` is required, the optional fields may be absent or
//! `null`. Output: the same envelope with `ts` (the server clock unless
//! relayed) and usually `server_ts`; absent optional fields are omitted,
//! never `null`.

use roomhost_sdk::{ClientId, Message};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Error text: the frame is not a valid envelope.
pub const INVALID_FORMAT: &str = "Invalid message format";
/// Error text: the envelope's `type` is not part of the protocol.
pub const UNKNOWN_TYPE: &str = "Unknown message type";
/// Error text: the client sent more than the rate limit allows.
pub const RATE_LIMITED: &str = "Rate limit exceeded";
/// Error text: the frame is larger than `max_message_bytes`.
pub const TOO_LARGE: &str = "Message too large";
/// Error text: the party already holds `max_clients_per_room` clients.
pub const ROOM_FULL: &str = "Room is full";
/// Error text: `create_room`/`join_room` before a successful `auth`, with
/// authentication on.
pub const AUTH_REQUIRED: &str = "Authentication required";
/// Error text: an `auth` whose token the host refused (or, with
/// authentication on, that carried no token).
pub const AUTH_FAILED: &str = "Authentication failed";
/// Error text: the party could not be created (the host refused the room).
pub const CREATE_FAILED: &str = "Could not create room";

/// `room_closed` reason: the host left or disconnected.
pub const REASON_HOST_LEFT: &str = "Host left the room";
/// `room_closed` reason: the host created another party.
pub const REASON_NEW_ROOM: &str = "Host started a new room";

/// The longest playback position accepted, in seconds (24 h).
pub const MAX_POSITION: f64 = 86_400.0;
/// The longest display or party name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 500;

/// Every message type a client may send. Types outside this list get
/// [`UNKNOWN_TYPE`]; types that do not apply where the client is (a
/// `player_event` in the lobby, say) are ignored silently.
pub const CLIENT_TYPES: &[&str] = &[
    "auth",
    "ping",
    "list_rooms",
    "create_room",
    "join_room",
    "ready",
    "leave_room",
    "player_event",
    "state_update",
    "chat_message",
    "client_log",
];

/// A client's frame, parsed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Incoming {
    /// The message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The party the client means (often `""` outside one).
    #[serde(default)]
    pub room: Option<String>,
    /// The client's idea of its own id (never trusted).
    #[serde(default)]
    pub client: Option<String>,
    /// The payload (`None` when absent or `null`).
    #[serde(default)]
    pub payload: Option<Value>,
    /// The client's clock, in ms since the Unix epoch.
    #[serde(deserialize_with = "timestamp")]
    pub ts: u64,
}

/// `ts`: any non-negative JSON number (browsers send integers, but a
/// fractional clock must not break a client), truncated to whole ms.
fn timestamp<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(ms) = number.as_u64() {
        return Ok(ms);
    }
    match number.as_f64() {
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms as u64),
        _ => Err(serde::de::Error::custom("ts must be a non-negative number")),
    }
}

impl Incoming {
    /// Parses a text frame; `None` if it is not a valid envelope.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The payload field `key`, if the payload is an object holding it.
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.payload.as_ref()?.get(key)
    }

    /// The payload field `key` as a string.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.field(key).and_then(Value::as_str)
    }

    /// The envelope's `room`, if present and not empty.
    pub fn target_room(&self) -> Option<&str> {
        self.room.as_deref().filter(|room| !room.is_empty())
    }
}

/// A frame the server sends. Build it with [`Out::new`] and the `with_*`
/// methods; absent fields are omitted on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Out {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Value>,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_ts: Option<u64>,
}

impl Out {
    /// A frame of type `kind` stamped `ts = server_ts = now`.
    pub fn new(kind: &'static str, now: u64) -> Self {
        Self {
            kind,
            room: None,
            client: None,
            payload: None,
            ts: now,
            server_ts: Some(now),
        }
    }

    /// An `error` frame for `client` with `{message}`.
    pub fn error(client: ClientId, message: &str, now: u64) -> Self {
        Self::new("error", now)
            .with_client(client_id(client))
            .with_payload(serde_json::json!({ "message": message }))
    }

    /// Sets `room`.
    pub fn with_room(mut self, room: impl Into<String>) -> Self {
        self.room = Some(room.into());
        self
    }

    /// Sets or clears `room`.
    pub fn with_room_opt(mut self, room: Option<String>) -> Self {
        self.room = room;
        self
    }

    /// Sets `client`.
    pub fn with_client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// Sets or clears `client`.
    pub fn with_client_opt(mut self, client: Option<String>) -> Self {
        self.client = client;
        self
    }

    /// Sets `payload`.
    pub fn with_payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Sets or clears `payload`.
    pub fn with_payload_opt(mut self, payload: Option<Value>) -> Self {
        self.payload = payload;
        self
    }

    /// Sets `ts` (for relayed frames: the sender's clock).
    pub fn with_ts(mut self, ts: u64) -> Self {
        self.ts = ts;
        self
    }

    /// Sets `server_ts`.
    pub fn with_server_ts(mut self, server_ts: u64) -> Self {
        self.server_ts = Some(server_ts);
        self
    }

    /// The frame as JSON text.
    pub fn to_message(&self) -> Message {
        // Strings, integers and JSON values always serialize.
        Message::json(self)
    }
}

/// A client id as the protocol shows it: a string.
pub fn client_id(client: ClientId) -> String {
    // The protocol's ids are UUID strings (its client shows the second
    // group). The host's id fills the low 62 bits, so ids stay unique; the
    // high half is the id scrambled by a bijection, so they look random.
    let low = client & (u64::MAX >> 2);
    uuid_v4(scramble(client), low)
}

/// SplitMix64's finalizer: a bijection on `u64`.
fn scramble(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether `position` (seconds) is finite and within 0..=[`MAX_POSITION`].
pub fn is_valid_position(position: f64) -> bool {
    position.is_finite() && (0.0..=MAX_POSITION).contains(&position)
}

/// A payload position, if present and valid.
pub fn valid_position(value: Option<&Value>) -> Option<f64> {
    value
        .and_then(Value::as_f64)
        .filter(|position| is_valid_position(*position))
}

/// The two playback states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayState {
    /// Playing.
    Playing,
    /// Paused.
    Paused,
}

impl PlayState {
    /// Parses `playing` or `paused`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "playing" => Some(Self::Playing),
            "paused" => Some(Self::Paused),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Playing => "playing",
            Self::Paused => "paused",
        }
    }
}

/// Whether `id` is a Jellyfin item id: 32 hexadecimal characters.
pub fn is_valid_media_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A payload media id, if present and valid (otherwise treated as absent).
pub fn valid_media_id(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|id| is_valid_media_id(id))
        .map(str::to_owned)
}

/// Whether `name` is 1..=[`MAX_NAME_CHARS`] characters without control
/// characters.
pub fn is_valid_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control)
}

/// A payload name, if present and valid.
pub fn valid_name(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|name| is_valid_name(name))
        .map(str::to_owned)
}

/// Whether `text` is a valid chat message: 1..=[`MAX_CHAT_CHARS`]
/// characters.
pub fn is_valid_chat(text: &str) -> bool {
    (1..=MAX_CHAT_CHARS).contains(&text.chars().count())
}

/// A payload object with `key` set to `value` (a non-object payload is
/// replaced by an object).
pub fn with_field(payload: Option<Value>, key: &str, value: Value) -> Value {
    let mut object = match payload {
        Some(Value::Object(object)) => object,
        _ => Map::new(),
    };
    object.insert(key.to_owned(), value);
    Value::Object(object)
}

/// A UUID v4 string (lower-case, hyphenated) from 128 random bits.
pub fn uuid_v4(high: u64, low: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_need_type_and_ts() {
        let ok = Incoming::parse(r#"{"type":"ping","ts":5,"room":null,"payload":{"client_ts":5}}"#);
        let ok = ok.expect("valid");
        assert_eq!(ok.kind, "ping");
        assert_eq!(ok.room, None);
        assert_eq!(ok.field("client_ts"), Some(&json!(5)));
        assert_eq!(
            Incoming::parse(r#"{"type":"x","ts":1.5}"#).map(|m| m.ts),
            Some(1)
        );
        for bad in [
            r#"{"type":"ping"}"#,
            r#"{"ts":1}"#,
            r#"{"type":1,"ts":1}"#,
            r#"{"type":"ping","ts":-1}"#,
            r#"{"type":"ping","ts":"1"}"#,
            r#"{"type":"ping","ts":1,"room":5}"#,
            "[]",
            "not json",
        ] {
            assert_eq!(Incoming::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn output_omits_absent_fields() {
        let text = Out::new("pong", 7).to_message();
        assert_eq!(
            text.as_text(),
            Some(r#"{"type":"pong","ts":7,"server_ts":7}"#)
        );
        let text = Out::error(3, "boom", 9).with_room("r").to_message();
        assert_eq!(
            text.parse_json::<Value>().ok(),
            Some(
                json!({"type":"error","room":"r","client":client_id(3),"payload":{"message":"boom"},"ts":9,"server_ts":9})
            )
        );
    }

    #[test]
    fn validation_rules() {
        let positions = [
            (json!(0), Some(0.0)),
            (json!(86400), Some(86400.0)),
            (json!(12.5), Some(12.5)),
            (json!(-0.1), None),
            (json!(86400.01), None),
            (json!("3"), None),
            (Value::Null, None),
        ];
        for (value, expected) in positions {
            assert_eq!(valid_position(Some(&value)), expected, "{value}");
        }
        assert!(!is_valid_position(f64::NAN));
        assert!(!is_valid_position(f64::INFINITY));

        assert_eq!(PlayState::parse("playing"), Some(PlayState::Playing));
        assert_eq!(PlayState::parse("paused"), Some(PlayState::Paused));
        assert_eq!(PlayState::parse("Playing"), None);

        assert!(is_valid_media_id("0123456789abcdefABCDEF0123456789"));
        assert!(!is_valid_media_id("0123456789abcdef0123456789abcde"));
        assert!(!is_valid_media_id("0123456789abcdef0123456789abcdeg"));
        assert_eq!(valid_media_id(Some(&json!(42))), None);

        assert!(is_valid_name("Alice"));
        assert!(is_valid_name(&"é".repeat(100)));
        assert!(!is_valid_name(&"é".repeat(101)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("tab\there"));
        assert!(!is_valid_name("bell\u{7}"));

        assert!(is_valid_chat("x"));
        assert!(is_valid_chat(&"ü".repeat(500)));
        assert!(!is_valid_chat(&"a".repeat(501)));
        assert!(!is_valid_chat(""));
    }

    #[test]
    fn uuids_are_version_4() {
        let id = uuid_v4(u64::MAX, u64::MAX);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = uuid_v4(0, 0);
        assert_eq!(id, "00000000-0000-4000-8000-000000000000");
        assert_eq!(id.len(), 36);
    }

    #[test]
    fn fields_are_added_to_payloads() {
        assert_eq!(
            with_field(Some(json!({"a":1})), "b", json!(2)),
            json!({"a":1,"b":2})
        );
        assert_eq!(with_field(Some(json!(3)), "b", json!(2)), json!({"b":2}));
    }
}
