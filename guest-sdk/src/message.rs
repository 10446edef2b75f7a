//! WebSocket data frames: [`Message`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One WebSocket data frame, received from or sent to a client.
///
/// Build one with [`Message::text`], [`Message::binary`], [`Message::json`] or
/// a `From` conversion; every [`Room`](crate::Room) method that sends accepts
/// `impl Into<Message>`, so `room.send(client, "hello")` works.
///
/// ```
/// use roomhost_sdk::Message;
///
/// let msg = Message::json(&serde_json::json!({ "count": 3 }));
/// assert_eq!(msg.as_text(), Some(r#"{"count":3}"#));
///
/// let value: serde_json::Value = msg.parse_json()?;
/// assert_eq!(value["count"], 3);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text frame (always valid UTF-8).
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl Message {
    /// A text frame.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// A binary frame.
    pub fn binary(bytes: impl Into<Vec<u8>>) -> Self {
        Self::Binary(bytes.into())
    }

    /// A text frame holding `value` serialized as JSON.
    ///
    /// # Panics
    ///
    /// Panics if `value`'s `Serialize` implementation fails, which for
    /// `serde_json` only happens with maps whose keys are not strings or
    /// numbers, or with a hand-written implementation that returns an error.
    /// Both are programming errors; use [`Message::try_json`] to handle them.
    #[track_caller]
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match Self::try_json(value) {
            Ok(msg) => msg,
            Err(err) => panic!("Message::json: cannot serialize value: {err}"),
        }
    }

    /// A text frame holding `value` serialized as JSON, or the serialization
    /// error.
    pub fn try_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self::Text)
    }

    /// Parses the frame's payload as JSON. Binary frames are parsed too (as
    /// UTF-8 JSON bytes).
    ///
    /// ```
    /// use roomhost_sdk::Message;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Move { x: i32 }
    ///
    /// let mv: Move = Message::text(r#"{"x":4}"#).parse_json()?;
    /// assert_eq!(mv.x, 4);
    /// assert!(Message::text("not json").parse_json::<Move>().is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.as_bytes())
    }

    /// The text of a text frame, `None` for a binary frame.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }

    /// The payload bytes (UTF-8 for a text frame).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }

    /// Consumes the frame and returns its payload bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }

    /// Whether this is a text frame.
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary frame.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.debug_tuple("Text").field(text).finish(),
            Self::Binary(bytes) => f.debug_tuple("Binary").field(bytes).finish(),
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<&String> for Message {
    fn from(text: &String) -> Self {
        Self::Text(text.clone())
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Binary(bytes)
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Self {
        Self::Binary(bytes.to_vec())
    }
}

/// A text frame equals a string with the same text; a binary frame never
/// does. Handy in tests: `assert_eq!(room.take_sent(alice), ["pong"])`.
impl PartialEq<str> for Message {
    fn eq(&self, other: &str) -> bool {
        self.as_text() == Some(other)
    }
}

/// See the `PartialEq<str>` implementation.
impl PartialEq<&str> for Message {
    fn eq(&self, other: &&str) -> bool {
        self.as_text() == Some(*other)
    }
}

/// See the `PartialEq<str>` implementation.
impl PartialEq<String> for Message {
    fn eq(&self, other: &String) -> bool {
        self.as_text() == Some(other.as_str())
    }
}

/// A binary frame equals a byte slice with the same bytes; a text frame never
/// does.
impl PartialEq<[u8]> for Message {
    fn eq(&self, other: &[u8]) -> bool {
        matches!(self, Self::Binary(bytes) if bytes == other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Message::from("a"), Message::Text("a".into()));
        assert_eq!(Message::from(vec![1, 2]), Message::Binary(vec![1, 2]));
        assert_eq!(Message::text("hi").as_bytes(), b"hi");
        assert_eq!(Message::binary(*b"hi").as_text(), None);
        assert_eq!(Message::text("hi"), "hi");
        assert_ne!(Message::binary(*b"hi"), "hi");
        assert_eq!(Message::text("hi"), String::from("hi"));
        assert_eq!(Message::binary(*b"hi"), b"hi"[..]);
        assert_eq!(Message::text("héllo").len(), 6);
        assert!(Message::binary(Vec::new()).is_empty());
    }

    #[test]
    fn json_round_trip() {
        let msg = Message::json(&serde_json::json!({"a": [1, 2]}));
        assert!(msg.is_text());
        let value: serde_json::Value = msg.parse_json().expect("valid json");
        assert_eq!(value["a"][1], 2);
        let binary = Message::binary(br#"{"a":1}"#.to_vec());
        assert_eq!(
            binary.parse_json::<serde_json::Value>().expect("json")["a"],
            1
        );
    }

    #[test]
    fn try_json_reports_errors() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1u8], 1);
        assert!(Message::try_json(&map).is_err());
    }
}
