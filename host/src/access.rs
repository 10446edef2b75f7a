//! Who may connect to a service and call its rooms over HTTP: the
//! per-service [`AccessPolicy`] (token required or not, where the token is
//! found, which claim lists the rooms it opens, which browser origins are
//! allowed), the [`Grant`] a verified token gives, and the [`Refusal`]s with
//! their HTTP status. Everything here runs before a room is touched.
//!
//! The rooms claim (default `rooms`) follows Liveblocks' permissions:
//! absent, the token opens every room with write access; an array of room
//! id patterns opens those rooms with write access; an object maps patterns
//! to `"read"` or `"write"`. A pattern is a room id, or a prefix followed by
//! `*` (`"*"` alone matches every room). A read-only grant reaches the
//! plugin as `client-info.read-only`; HTTP requests with it may only `GET`.

use std::fmt;
use std::str::FromStr;

use axum::http::{HeaderMap, Method, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::auth::{TokenError, TokenVerifier};

/// The query parameter a token is read from by default.
pub const DEFAULT_TOKEN_QUERY: &str = "access_token";

/// The prefix of a `Sec-WebSocket-Protocol` entry that carries a token
/// (`bearer.<token>`).
pub const PROTOCOL_PREFIX: &str = "bearer.";

/// The default name of the claim listing the rooms a token opens.
pub const DEFAULT_ROOMS_CLAIM: &str = "rooms";

/// A service's access policy (`[services.NAME.access]` in `roomhost.toml`).
///
/// ```
/// use roomhost_host::access::{AccessPolicy, TokenSource};
///
/// let policy: AccessPolicy = serde_json::from_value(serde_json::json!({
///     "require_token": true,
///     "token_sources": ["header", "query:token"],
///     "allowed_origins": ["https://app.example"],
/// })).unwrap();
/// assert_eq!(policy.token_sources[1], TokenSource::Query("token".into()));
/// assert_eq!(policy.rooms_claim, "rooms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessPolicy {
    /// Connections and HTTP requests to rooms need a valid token (401
    /// without one). Off by default: tokens are then not looked at.
    pub require_token: bool,
    /// Where a token is looked for, in order (default: header, protocol,
    /// `query:access_token`).
    pub token_sources: Vec<TokenSource>,
    /// The claim listing the rooms a token opens, and how (default `rooms`).
    pub rooms_claim: String,
    /// Browser origins allowed to open WebSockets and call rooms over HTTP
    /// (CORS), e.g. `https://app.example`; `"*"` allows any. Empty (the
    /// default): any origin may open a WebSocket, and no CORS headers are
    /// sent. Requests without an `Origin` header (not from a browser) are
    /// not affected.
    pub allowed_origins: Vec<String>,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            require_token: false,
            token_sources: vec![
                TokenSource::Header,
                TokenSource::Protocol,
                TokenSource::Query(DEFAULT_TOKEN_QUERY.to_owned()),
            ],
            rooms_claim: DEFAULT_ROOMS_CLAIM.to_owned(),
            allowed_origins: Vec::new(),
        }
    }
}

/// Where a token may come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (`header`).
    Header,
    /// A `Sec-WebSocket-Protocol` entry `bearer.<token>` (`protocol`);
    /// WebSockets only, since browsers cannot set headers on them.
    Protocol,
    /// A query parameter (`query:NAME`, or `query` for `access_token`).
    Query(String),
}

impl FromStr for TokenSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            None if text == "header" => Ok(TokenSource::Header),
            None if text == "protocol" => Ok(TokenSource::Protocol),
            None if text == "query" => Ok(TokenSource::Query(DEFAULT_TOKEN_QUERY.to_owned())),
            Some(("query", name)) if !name.is_empty() && !name.contains(['&', '=']) => {
                Ok(TokenSource::Query(name.to_owned()))
            }
            _ => Err(format!(
                "unknown token source {text:?}: use header, protocol, query or query:NAME"
            )),
        }
    }
}

impl TryFrom<String> for TokenSource {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Header => f.write_str("header"),
            TokenSource::Protocol => f.write_str("protocol"),
            TokenSource::Query(name) => write!(f, "query:{name}"),
        }
    }
}

/// What a token allows in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Access {
    /// Read only: the plugin sees `read-only`; HTTP requests may only GET.
    Read,
    /// Read and write.
    Write,
}

/// What a verified token grants: who it is, its claims, and its rooms.
/// Serialized only between the nodes of a cluster, which pass a transferred
/// client's grant on under their peer key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// The `sub` claim.
    pub identity: Option<String>,
    /// Every claim, as JSON text (what the plugin receives).
    pub claims: String,
    /// `None`: every room, with write access.
    rooms: Option<Vec<(String, Access)>>,
}

impl Grant {
    /// Reads the grant from verified `claims`.
    pub fn from_claims(claims: &serde_json::Value, rooms_claim: &str) -> Result<Grant, Refusal> {
        let rooms = match claims.get(rooms_claim) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Array(patterns)) => Some(
                patterns
                    .iter()
                    .map(|pattern| match pattern.as_str() {
                        Some(pattern) => Ok((pattern.to_owned(), Access::Write)),
                        None => Err(Refusal::BadRoomsClaim),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(serde_json::Value::Object(patterns)) => Some(
                patterns
                    .iter()
                    .map(|(pattern, access)| match access.as_str() {
                        Some("write") => Ok((pattern.clone(), Access::Write)),
                        Some("read") => Ok((pattern.clone(), Access::Read)),
                        _ => Err(Refusal::BadRoomsClaim),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err(Refusal::BadRoomsClaim),
        };
        Ok(Grant {
            identity: claims
                .get("sub")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            claims: claims.to_string(),
            rooms,
        })
    }

    /// The access to `room` (`""`: the service's lobby, which any grant
    /// reaches with the best access it has anywhere); `None` if the token
    /// does not open it.
    pub fn access(&self, room: &str) -> Option<Access> {
        let Some(rooms) = &self.rooms else {
            return Some(Access::Write);
        };
        rooms
            .iter()
            .filter(|(pattern, _)| room.is_empty() || matches(pattern, room))
            .map(|(_, access)| *access)
            .max()
    }

    /// [`Grant::access`], or the refusal for a room the token does not open.
    pub fn access_to(&self, room: &str) -> Result<Access, Refusal> {
        self.access(room)
            .ok_or_else(|| Refusal::Room(room.to_owned()))
    }
}

/// Whether room id `room` matches `pattern` (exact, or `prefix*`).
fn matches(pattern: &str, room: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => pattern == room,
    }
}

/// Why a connection or request was refused before reaching a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The service requires a token and none was found.
    #[error(
        "this service requires a token (Authorization: Bearer, a bearer.* WebSocket protocol, or the query parameter)"
    )]
    MissingToken,
    /// The token did not verify.
    #[error("token refused: {0}")]
    BadToken(#[from] TokenError),
    /// The rooms claim is neither an array of patterns nor an object of
    /// patterns to `read`/`write`.
    #[error("the token's rooms claim is malformed")]
    BadRoomsClaim,
    /// The token does not open this room.
    #[error("the token does not grant room {0:?}")]
    Room(String),
    /// A read-only token tried to change something.
    #[error("the token grants read-only access")]
    ReadOnly,
    /// A browser origin that is not allowed.
    #[error("origin {0:?} is not allowed")]
    Origin(String),
}

impl Refusal {
    /// 401 when no valid token was shown, 403 when it does not suffice.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::MissingToken | Refusal::BadToken(_) => StatusCode::UNAUTHORIZED,
            Refusal::BadRoomsClaim | Refusal::Room(_) | Refusal::ReadOnly | Refusal::Origin(_) => {
                StatusCode::FORBIDDEN
            }
        }
    }
}

/// A token found in a request, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundToken<'a> {
    pub(crate) token: &'a str,
    pub(crate) source: &'a TokenSource,
}

impl AccessPolicy {
    /// Refuses a browser `Origin` not in the allow-list (none configured:
    /// any origin).
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        match headers.get(header::ORIGIN) {
            Some(origin) if !self.allowed_origins.is_empty() => {
                let origin = origin.to_str().unwrap_or_default();
                if self.origin_allowed(origin) {
                    Ok(())
                } else {
                    Err(Refusal::Origin(origin.chars().take(200).collect()))
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether `origin` is in the allow-list.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }

    /// The first token found in the configured sources (`websocket`: the
    /// protocol source counts).
    pub(crate) fn find_token<'a>(
        &'a self,
        headers: &'a HeaderMap,
        query: &'a str,
        websocket: bool,
    ) -> Option<FoundToken<'a>> {
        self.token_sources.iter().find_map(|source| {
            let token = match source {
                TokenSource::Header => bearer(headers),
                TokenSource::Protocol if websocket => {
                    protocols(headers).find_map(|entry| entry.strip_prefix(PROTOCOL_PREFIX))
                }
                TokenSource::Protocol => None,
                TokenSource::Query(name) => query_param(query, name),
            }?;
            Some(FoundToken { token, source })
        })
    }

    /// Admits a request to `room` of a service under this policy: the
    /// origin, then (when required) the token and the room it opens, and
    /// for a change (`method` other than GET/HEAD) write access. `Ok(None)`
    /// when the service does not require a token.
    pub(crate) fn admit(
        &self,
        verifier: Option<&TokenVerifier>,
        headers: &HeaderMap,
        query: &str,
        room: &str,
        request: Admission<'_>,
    ) -> Result<Option<(Grant, Access)>, Refusal> {
        self.check_origin(headers)?;
        if !self.require_token {
            return Ok(None);
        }
        let websocket = matches!(request, Admission::WebSocket);
        let found = self
            .find_token(headers, query, websocket)
            .ok_or(Refusal::MissingToken)?;
        // A service requiring a token without a key is refused at startup.
        let verifier = verifier.ok_or(Refusal::BadToken(TokenError::Signature))?;
        let claims = verifier.verify(found.token)?;
        let grant = Grant::from_claims(&claims, &self.rooms_claim)?;
        let access = grant.access_to(room)?;
        if let Admission::Http(method) = request
            && access == Access::Read
            && !matches!(*method, Method::GET | Method::HEAD)
        {
            return Err(Refusal::ReadOnly);
        }
        Ok(Some((grant, access)))
    }

    /// The query with the token parameters removed, as the plugin sees it.
    pub(crate) fn strip_token_params(&self, query: &str) -> String {
        let names: Vec<&str> = self
            .token_sources
            .iter()
            .filter_map(|source| match source {
                TokenSource::Query(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if names.is_empty() || !self.require_token {
            return query.to_owned();
        }
        query
            .split('&')
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
                !names.contains(&name)
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// What is being admitted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Admission<'a> {
    /// A WebSocket upgrade.
    WebSocket,
    /// An HTTP request to a room, with its method.
    Http(&'a Method),
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|token| !token.is_empty())
}

/// The entries of every `Sec-WebSocket-Protocol` header.
pub(crate) fn protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

/// The raw value of query parameter `name` (JWTs are URL-safe).
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rooms_claims_grant_rooms_and_access() {
        let all = Grant::from_claims(&json!({ "sub": "ada" }), "rooms").expect("grant");
        assert_eq!(all.identity.as_deref(), Some("ada"));
        assert_eq!(all.access("any"), Some(Access::Write));
        let listed =
            Grant::from_claims(&json!({ "rooms": ["doc-1", "team-*"] }), "rooms").expect("grant");
        assert_eq!(listed.access("doc-1"), Some(Access::Write));
        assert_eq!(listed.access("team-a"), Some(Access::Write));
        assert_eq!(listed.access("doc-2"), None);
        assert_eq!(listed.access(""), Some(Access::Write), "the lobby");
        let mixed = Grant::from_claims(
            &json!({ "perms": { "pub-*": "read", "pub-mine": "write" } }),
            "perms",
        )
        .expect("grant");
        assert_eq!(mixed.access("pub-x"), Some(Access::Read));
        assert_eq!(mixed.access("pub-mine"), Some(Access::Write));
        assert_eq!(mixed.access("private"), None);
        for bad in [
            json!({ "rooms": "x" }),
            json!({ "rooms": [1] }),
            json!({ "rooms": { "a": "admin" } }),
        ] {
            assert_eq!(
                Grant::from_claims(&bad, "rooms"),
                Err(Refusal::BadRoomsClaim)
            );
        }
    }

    #[test]
    fn tokens_are_found_where_the_policy_looks() {
        let policy = AccessPolicy {
            require_token: true,
            ..AccessPolicy::default()
        };
        let mut headers = HeaderMap::new();
        assert_eq!(
            policy
                .find_token(&headers, "a=1&access_token=q", true)
                .map(|f| f.token),
            Some("q")
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "y-protocol, bearer.p".parse().expect("value"),
        );
        assert_eq!(
            policy.find_token(&headers, "", true).map(|f| f.token),
            Some("p")
        );
        assert_eq!(
            policy.find_token(&headers, "", false),
            None,
            "protocols are for WebSockets"
        );
        headers.insert(header::AUTHORIZATION, "Bearer h".parse().expect("value"));
        assert_eq!(
            policy
                .find_token(&headers, "access_token=q", true)
                .map(|f| f.token),
            Some("h")
        );
        assert_eq!(
            policy.strip_token_params("a=1&access_token=q&b=2"),
            "a=1&b=2"
        );
        assert_eq!("query:t".parse(), Ok(TokenSource::Query("t".into())));
        assert!("cookie".parse::<TokenSource>().is_err());
    }

    #[test]
    fn origins_are_checked_only_when_listed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            "https://evil.example".parse().expect("value"),
        );
        assert!(AccessPolicy::default().check_origin(&headers).is_ok());
        let policy = AccessPolicy {
            allowed_origins: vec!["https://app.example".into()],
            ..AccessPolicy::default()
        };
        assert!(matches!(
            policy.check_origin(&headers),
            Err(Refusal::Origin(_))
        ));
        assert!(
            policy.check_origin(&HeaderMap::new()).is_ok(),
            "no Origin: not a browser"
        );
    }
}
