//! What the plugin knows about one client, and what travels with it between
//! the lobby and the parties: [`Profile`] inside a [`Transit`].
//!
//! A client keeps its profile (display name, authentication, rate-limit
//! window, last activity) wherever it goes: the room that transfers it
//! serializes a [`Transit`] as the hand-off data, and the receiving room
//! restores it. The [`Intent`] says why it moves.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::envelope::{valid_media_id, valid_name, valid_position};

/// The display name of a client that never gave a valid one.
pub const DEFAULT_NAME: &str = "Anonymous";

/// A client's state, kept by the room it is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The display name, once given (by `auth`, `create_room`, `join_room`
    /// or a token's `name` claim).
    pub user_name: Option<String>,
    /// The user id: the token's `sub`, or the `user_id` the client gave
    /// with authentication off.
    pub user_id: Option<String>,
    /// Whether the client proved its identity: a token the host verified,
    /// or an identity the host attached at connection time.
    pub authenticated: bool,
    /// When the current rate-limit window started (ms).
    pub window_start: u64,
    /// Messages counted in the current window.
    pub window_count: u32,
    /// When the client last sent a frame (ms).
    pub last_seen: u64,
}

impl Profile {
    /// A client that just connected at `now`.
    pub fn new(now: u64) -> Self {
        Self {
            user_name: None,
            user_id: None,
            authenticated: false,
            window_start: now,
            window_count: 0,
            last_seen: now,
        }
    }

    /// The name shown to others.
    pub fn display_name(&self) -> &str {
        self.user_name.as_deref().unwrap_or(DEFAULT_NAME)
    }

    /// Takes `user_name` from a `create_room`/`join_room`/`auth` payload if
    /// it is valid, unless the name came from a verified token.
    pub fn offer_name(&mut self, payload_name: Option<&Value>) {
        if self.authenticated {
            return;
        }
        if let Some(name) = valid_name(payload_name) {
            self.user_name = Some(name);
        }
    }

    /// Counts one message at `now` (and marks the client active); `true`
    /// when it is over the limit and must be dropped.
    pub fn over_rate_limit(&mut self, now: u64, config: &Config) -> bool {
        self.last_seen = now;
        if now.saturating_sub(self.window_start) >= config.rate_limit_window_ms {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count = self.window_count.saturating_add(1);
        self.window_count > config.rate_limit_messages
    }

    /// Whether the client has been silent for `timeout_ms` at `now`
    /// (never with a zero timeout).
    pub fn is_silent(&self, now: u64, timeout_ms: u64) -> bool {
        timeout_ms > 0 && now.saturating_sub(self.last_seen) >= timeout_ms
    }
}

/// What `create_room` asks for, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// Where playback starts, in seconds (0 when absent or invalid).
    pub start_pos: f64,
    /// The Jellyfin item, when valid.
    pub media_id: Option<String>,
    /// The party's name, when given and valid.
    pub name: Option<String>,
}

impl CreateRequest {
    /// Reads a `create_room` payload: `{start_pos, media_id?, name?}`.
    pub fn from_payload(payload: Option<&Value>) -> Self {
        let field = |key: &str| payload.and_then(|payload| payload.get(key));
        Self {
            start_pos: valid_position(field("start_pos")).unwrap_or(0.0),
            media_id: valid_media_id(field("media_id")),
            name: valid_name(field("name")),
        }
    }
}

/// Why a client moves between rooms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub enum Intent {
    /// To a new party as its host (lobby → party), or to the lobby to
    /// create one (party → lobby).
    Create {
        /// The validated `create_room` payload.
        request: CreateRequest,
    },
    /// To party `room` as a member (lobby → party), or to the lobby to join
    /// it (party → lobby).
    Join {
        /// The party id.
        room: String,
    },
    /// Back to the lobby after leaving a party or its closing.
    Return,
}

/// The hand-off data of every transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transit {
    /// The client's state.
    pub profile: Profile,
    /// Why it moves.
    #[serde(flatten)]
    pub intent: Intent,
}

impl Transit {
    /// The hand-off bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Strings, numbers and booleans always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads hand-off bytes; `None` if they are not a transit.
    pub fn decode(data: &[u8]) -> Option<Self> {
        serde_json::from_slice(data).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transits_round_trip() {
        let mut profile = Profile::new(5);
        profile.user_name = Some("Zoé".into());
        for intent in [
            Intent::Return,
            Intent::Join { room: "p".into() },
            Intent::Create {
                request: CreateRequest {
                    start_pos: 1.5,
                    media_id: None,
                    name: Some("n".into()),
                },
            },
        ] {
            let transit = Transit {
                profile: profile.clone(),
                intent,
            };
            assert_eq!(Transit::decode(&transit.encode()), Some(transit));
        }
        assert_eq!(Transit::decode(b"host"), None);
    }

    #[test]
    fn rate_limit_counts_per_window() {
        let config = Config::default();
        let mut profile = Profile::new(1000);
        for _ in 0..30 {
            assert!(!profile.over_rate_limit(1500, &config));
        }
        assert!(profile.over_rate_limit(1999, &config));
        assert!(!profile.over_rate_limit(2000, &config));
        assert_eq!(profile.last_seen, 2000);
    }

    #[test]
    fn names_from_payloads_yield_to_tokens() {
        let mut profile = Profile::new(0);
        assert_eq!(profile.display_name(), DEFAULT_NAME);
        profile.offer_name(Some(&json!("")));
        assert_eq!(profile.display_name(), DEFAULT_NAME);
        profile.offer_name(Some(&json!("Bob")));
        assert_eq!(profile.display_name(), "Bob");
        profile.authenticated = true;
        profile.offer_name(Some(&json!("Mallory")));
        assert_eq!(profile.display_name(), "Bob");
    }

    #[test]
    fn create_payloads_are_validated() {
        let request = CreateRequest::from_payload(Some(&json!({
            "start_pos": -3, "media_id": "nope", "name": "x\ny"
        })));
        assert_eq!(
            request,
            CreateRequest {
                start_pos: 0.0,
                media_id: None,
                name: None
            }
        );
        let request = CreateRequest::from_payload(Some(&json!({
            "start_pos": 42.5, "media_id": "0123456789abcdef0123456789abcdef", "name": "Movie night"
        })));
        assert_eq!(request.start_pos, 42.5);
        assert!(request.media_id.is_some());
        assert_eq!(request.name.as_deref(), Some("Movie night"));
    }
}
