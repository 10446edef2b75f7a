//! Clients of a room: [`ClientId`], [`ClientInfo`], [`Handoff`] and
//! [`DisconnectReason`].

/// Identifies one client (one WebSocket connection).
///
/// Ids are unique within a host process and never reused while it runs, so a
/// service may keep them as map keys without worrying about a later client
/// inheriting a departed one's state.
pub type ClientId = u64;

/// What the host knows about a client that wants to join, passed to
/// [`RoomService::connect`](crate::RoomService::connect).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's id, used by every later callback and by
    /// [`Room::send`](crate::Room::send).
    pub id: ClientId,
    /// The request path the client connected to, e.g. `/ws/chat/lobby`.
    pub path: String,
    /// The raw query string without the leading `?` (empty if none). Use
    /// [`ClientInfo::query_param`] to read one parameter.
    pub query: String,
    /// A verified identity when the host knows one: the `sub` claim of the
    /// token the host checked before the client connected (services that
    /// require a token; see the host's access-control guide).
    pub identity: Option<String>,
    /// Set when the client arrives by [transfer](crate::Room::transfer) from
    /// another room of the service (or the lobby) rather than by URL, or
    /// comes back because the room it was sent to rejected it.
    pub handoff: Option<Handoff>,
    /// The claims of the token the host verified at connection time, as
    /// JSON text; `None` when the service does not require a token. Read it
    /// with [`ClientInfo::claims_json`].
    pub claims: Option<String>,
    /// Whether the client's token grants only read access to this room.
    /// The host already refuses a read-only client's HTTP writes; over the
    /// WebSocket the service decides what counts as a write and refuses it
    /// (collab drops a read-only client's document updates and relays its
    /// awareness).
    pub read_only: bool,
    /// When the service allows reconnection
    /// ([`RoomService::RECONNECT_GRACE`](crate::RoomService::RECONNECT_GRACE)):
    /// the token that lets a new connection take this client's place after
    /// its connection is lost (it connects with `?roomhost_resume=TOKEN`).
    /// Hand it to the client in the service's own protocol; it is spent on
    /// use, and [`RoomService::reconnect`](crate::RoomService::reconnect)
    /// brings the next one.
    pub resume_token: Option<String>,
}

/// What a client brings when it arrives by transfer: see
/// [`ClientInfo::handoff`] and [`Room::transfer`](crate::Room::transfer).
///
/// ```
/// use roomhost_sdk::Handoff;
///
/// // What a room sees when the lobby transfers a client to it:
/// let arrived = Handoff::from_lobby("host");
/// assert_eq!(arrived.from_room, None);
/// assert_eq!(arrived.data, b"host");
/// assert!(!arrived.is_rejected());
///
/// // What the lobby sees when room ABC123 rejected that client:
/// let bounced = Handoff::from_room("ABC123", "host").with_rejection("room is full");
/// assert_eq!(bounced.from_room.as_deref(), Some("ABC123"));
/// assert_eq!(bounced.rejected.as_deref(), Some("room is full"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handoff {
    /// The room the client came from; `None` means the service's lobby.
    /// For a client coming back after a rejection, the room that rejected
    /// it.
    pub from_room: Option<String>,
    /// The bytes the sending room passed to
    /// [`Room::transfer`](crate::Room::transfer) (for a client coming back,
    /// the original bytes).
    pub data: Vec<u8>,
    /// Set when the client is coming back because the room it was
    /// transferred to rejected it or no longer exists: the reason.
    pub rejected: Option<String>,
}

impl Handoff {
    /// A hand-off from room `from_room` (`None`: the lobby) carrying `data`,
    /// not a rejection.
    pub fn new(from_room: Option<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            from_room,
            data: data.into(),
            rejected: None,
        }
    }

    /// A hand-off from the lobby carrying `data`.
    pub fn from_lobby(data: impl Into<Vec<u8>>) -> Self {
        Self::new(None, data)
    }

    /// A hand-off from room `room` carrying `data`.
    pub fn from_room(room: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self::new(Some(room.into()), data)
    }

    /// The same hand-off marked as a client coming back because the target
    /// rejected it with `reason`.
    pub fn with_rejection(mut self, reason: impl Into<String>) -> Self {
        self.rejected = Some(reason.into());
        self
    }

    /// Whether the client is coming back after a rejected transfer.
    pub fn is_rejected(&self) -> bool {
        self.rejected.is_some()
    }
}

impl ClientInfo {
    /// [`ClientInfo::claims`] parsed as JSON (`None` without claims).
    ///
    /// ```
    /// let mut client = roomhost_sdk::testing::client_info(1, "");
    /// client.claims = Some(r#"{"sub":"ada","plan":"pro"}"#.into());
    /// assert_eq!(client.claims_json().unwrap()["plan"], "pro");
    /// ```
    pub fn claims_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.claims.as_deref()?).ok()
    }

    /// The decoded value of the first query parameter called `name`, or
    /// `None` if there is none.
    ///
    /// Keys and values are percent-decoded and `+` means a space, as in HTML
    /// forms; a parameter without `=` has an empty value. Malformed escapes
    /// are kept literally and invalid UTF-8 is replaced with `U+FFFD`, so
    /// this never fails on hostile input.
    ///
    /// ```
    /// # let client = roomhost_sdk::testing::client_info(1, "name=J%C3%BCrgen+M&flag");
    /// // client.query == "name=J%C3%BCrgen+M&flag"
    /// assert_eq!(client.query_param("name").as_deref(), Some("Jürgen M"));
    /// assert_eq!(client.query_param("flag").as_deref(), Some(""));
    /// assert_eq!(client.query_param("missing"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// Every query parameter as decoded `(key, value)` pairs, in order (see
    /// [`ClientInfo::query_param`] for the decoding rules).
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(key), form_decode(value))
            })
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
pub(crate) fn form_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return input.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let escaped = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| Some(hex_value(hex[0])? << 4 | hex_value(hex[1])?));
                if let Some(byte) = escaped {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Why a client left the room, passed to
/// [`RoomService::disconnect`](crate::RoomService::disconnect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client closed the connection.
    Closed,
    /// The connection failed: network error, idle timeout or slow consumer.
    Lost,
    /// The service closed the client with [`Room::close`](crate::Room::close).
    Kicked,
    /// The client moved to another room.
    Transferred,
    /// The connection was lost and the service allows reconnection: the
    /// client stays a member for the grace period, frames sent to it are
    /// kept and replayed if it comes back
    /// ([`RoomService::reconnect`](crate::RoomService::reconnect)), and
    /// `disconnect(Lost)` follows if it does not.
    Suspended,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(query: &str) -> ClientInfo {
        ClientInfo {
            id: 1,
            path: "/ws/test/test".into(),
            query: query.into(),
            identity: None,
            handoff: None,
            claims: None,
            read_only: false,
            resume_token: None,
        }
    }

    #[test]
    fn decodes_form_components() {
        assert_eq!(form_decode("a+b%20c"), "a b c");
        assert_eq!(form_decode("%E2%9C%93"), "✓");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
        assert_eq!(form_decode("plain"), "plain");
    }

    #[test]
    fn finds_first_param() {
        let client = info("a=1&b=2&a=3&&c&d%3D=x%26y");
        assert_eq!(client.query_param("a").as_deref(), Some("1"));
        assert_eq!(client.query_param("c").as_deref(), Some(""));
        assert_eq!(client.query_param("d=").as_deref(), Some("x&y"));
        assert_eq!(client.query_param("z"), None);
        assert_eq!(client.query_pairs().count(), 5);
        assert_eq!(info("").query_pairs().count(), 0);
    }
}
