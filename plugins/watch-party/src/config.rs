//! The plugin's configuration: the protocol's timing constants and limits,
//! each overridable from the service configuration (JSON).
//!
//! ```json
//! {"play_schedule_ms": 1500, "control_schedule_ms": 300, "max_ready_wait_ms": 2000,
//!  "command_cooldown_ms": 2000, "min_state_update_interval_ms": 500,
//!  "position_jitter_threshold": 0.5, "max_clients_per_room": 20,
//!  "rate_limit_messages": 30, "rate_limit_window_ms": 1000,
//!  "max_message_bytes": 65536, "silence_timeout_ms": 60000}
//! ```
//!
//! Every field is optional; the defaults are the protocol's values.
//!
//! `"timing"` picks a preset for the play timing, which explicit fields
//! still override:
//!
//! - `"documented"` (the default): the documented ready protocol: a `play`
//!   starts 1500 ms ahead and waits up to 2000 ms for unready members.
//! - `"owp-current"`: what the current OpenWatchParty client and server do:
//!   a `play` starts 300 ms ahead with no ready wait
//!   (`play_schedule_ms: 300`, `max_ready_wait_ms: 0`). Joiners follow the
//!   host within a few hundred milliseconds instead of trailing it by
//!   1.2-1.5 s after every play; members that are still loading catch up
//!   on their own.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest `max_clients_per_room` accepted: each party publishes its
/// member ids in its listing metadata, which the host caps at 4 KiB.
pub const MAX_CLIENTS_PER_ROOM_LIMIT: usize = 150;

/// Timing constants and limits. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How far ahead a `play` is scheduled (`PLAY_SCHEDULE_MS`).
    pub play_schedule_ms: u64,
    /// How far ahead `pause`/`seek`/`buffering` are scheduled
    /// (`CONTROL_SCHEDULE_MS`).
    pub control_schedule_ms: u64,
    /// The longest a pending play waits for unready members
    /// (`MAX_READY_WAIT_MS`); 0 starts every play at once.
    pub max_ready_wait_ms: u64,
    /// How long after a `player_event` position-only state updates are
    /// dropped (`COMMAND_COOLDOWN_MS`).
    pub command_cooldown_ms: u64,
    /// The least time between two relayed position-only state updates
    /// (`MIN_STATE_UPDATE_INTERVAL_MS`).
    pub min_state_update_interval_ms: u64,
    /// The least position change, in seconds, for a position-only state
    /// update to be relayed (`POSITION_JITTER_THRESHOLD`).
    pub position_jitter_threshold: f64,
    /// The most clients in one party (clamped to
    /// 1..=[`MAX_CLIENTS_PER_ROOM_LIMIT`]).
    pub max_clients_per_room: usize,
    /// The most messages one client may send per window.
    pub rate_limit_messages: u32,
    /// The rate-limit window.
    pub rate_limit_window_ms: u64,
    /// The largest message accepted, in bytes ("Message too large" beyond).
    pub max_message_bytes: usize,
    /// A client silent for this long is disconnected (0: never).
    pub silence_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            play_schedule_ms: 1500,
            control_schedule_ms: 300,
            max_ready_wait_ms: 2000,
            command_cooldown_ms: 2000,
            min_state_update_interval_ms: 500,
            position_jitter_threshold: 0.5,
            max_clients_per_room: 20,
            rate_limit_messages: 30,
            rate_limit_window_ms: 1000,
            max_message_bytes: 64 * 1024,
            silence_timeout_ms: 60_000,
        }
    }
}

impl Config {
    /// Parses the service configuration (`null` gives the defaults) and
    /// clamps out-of-range values. Returns the configuration and, when the
    /// text was invalid or a value was clamped, a warning to log.
    pub fn parse(text: &str) -> (Self, Option<String>) {
        let parsed = if text.trim() == "null" || text.trim().is_empty() {
            Ok(Self::default())
        } else {
            Self::with_preset(text)
        };
        match parsed {
            Ok(config) => config.clamped(),
            Err(err) => (
                Self::default(),
                Some(format!("invalid config ({err}); using the defaults")),
            ),
        }
    }

    /// The `"timing"` preset's values, overridden by the fields given.
    fn with_preset(text: &str) -> Result<Self, serde_json::Error> {
        let mut given: Value = serde_json::from_str(text)?;
        let preset = match given
            .as_object_mut()
            .and_then(|fields| fields.remove("timing"))
        {
            None => Self::default(),
            Some(name) => match name.as_str() {
                Some("documented") => Self::default(),
                Some("owp-current") => Self::owp_current(),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "unknown timing {name}: use \"documented\" or \"owp-current\""
                    )));
                }
            },
        };
        let mut merged = serde_json::to_value(preset)?;
        if let (Some(merged), Some(given)) = (merged.as_object_mut(), given.as_object()) {
            for (key, value) in given {
                merged.insert(key.clone(), value.clone());
            }
        } else if !given.is_object() {
            return serde_json::from_value(given);
        }
        serde_json::from_value(merged)
    }

    /// The `"owp-current"` preset: the play timing of the current
    /// OpenWatchParty client and server.
    pub fn owp_current() -> Self {
        Self {
            play_schedule_ms: 300,
            max_ready_wait_ms: 0,
            ..Self::default()
        }
    }

    /// The configuration with every value in range, and a warning if any
    /// had to change.
    fn clamped(mut self) -> (Self, Option<String>) {
        let mut warnings = Vec::new();
        let clients = self
            .max_clients_per_room
            .clamp(1, MAX_CLIENTS_PER_ROOM_LIMIT);
        if clients != self.max_clients_per_room {
            warnings.push(format!(
                "max_clients_per_room must be 1..={MAX_CLIENTS_PER_ROOM_LIMIT}; using {clients}"
            ));
            self.max_clients_per_room = clients;
        }
        if !self.position_jitter_threshold.is_finite() || self.position_jitter_threshold < 0.0 {
            warnings
                .push("position_jitter_threshold must be a finite number >= 0; using 0.5".into());
            self.position_jitter_threshold = 0.5;
        }
        if self.rate_limit_window_ms == 0 {
            warnings.push("rate_limit_window_ms must be > 0; using 1000".into());
            self.rate_limit_window_ms = 1000;
        }
        let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
        (self, warning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owp_current_preset_plays_at_300_ms_without_ready_wait() {
        let (config, warning) = Config::parse(r#"{"timing": "owp-current"}"#);
        assert_eq!(warning, None);
        assert_eq!(
            (config.play_schedule_ms, config.max_ready_wait_ms),
            (300, 0)
        );
        // Explicit fields still win over the preset.
        let (config, _) = Config::parse(r#"{"timing": "owp-current", "play_schedule_ms": 500}"#);
        assert_eq!(
            (config.play_schedule_ms, config.max_ready_wait_ms),
            (500, 0)
        );
        let (config, _) = Config::parse(r#"{"timing": "documented"}"#);
        assert_eq!(config, Config::default());
        let (config, warning) = Config::parse(r#"{"timing": "fast"}"#);
        assert_eq!(config, Config::default());
        assert!(warning.is_some_and(|w| w.contains("owp-current")));
    }

    #[test]
    fn defaults_are_the_protocol_values() {
        let (config, warning) = Config::parse("null");
        assert_eq!(config, Config::default());
        assert!(warning.is_none());
        assert_eq!(config.play_schedule_ms, 1500);
        assert_eq!(config.max_clients_per_room, 20);
    }

    #[test]
    fn fields_override_and_clamp() {
        let (config, warning) =
            Config::parse(r#"{"play_schedule_ms": 10, "max_clients_per_room": 0}"#);
        assert_eq!(config.play_schedule_ms, 10);
        assert_eq!(config.max_clients_per_room, 1);
        assert!(warning.is_some());
        let (config, warning) = Config::parse(r#"{"play_schedule_ms": "soon"}"#);
        assert_eq!(config, Config::default());
        assert!(warning.is_some());
    }
}
