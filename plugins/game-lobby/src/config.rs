//! The service configuration: the games served, their player caps, and the
//! host grace period.
//!
//! Either an object
//!
//! ```json
//! {"games": [{"name": "tic-tac-toe", "max_players": 10}, {"name": "Ternio", "max_players": 3}],
//!  "host_grace_ms": 30000}
//! ```
//!
//! or just the list of games (the protocol page's form). A missing
//! configuration (`null`) or a missing field takes the defaults: the two
//! games above and 30 s of grace. Unknown fields, an empty game list, empty
//! or duplicate game names and a grace period over a year are errors: the
//! service refuses to start rather than guess.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// The default host grace period, in milliseconds.
pub const DEFAULT_HOST_GRACE_MS: u64 = 30_000;

/// The longest host grace period accepted, in milliseconds (a year, the
/// host's longest timer).
pub const MAX_HOST_GRACE_MS: u64 = 365 * 24 * 60 * 60 * 1000;

/// One game the service serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GameConfig {
    /// The game id clients send in their join request (case-sensitive).
    pub name: String,
    /// The most players a room of this game holds, the host included; `0`
    /// means unlimited.
    #[serde(default)]
    pub max_players: u32,
}

/// The service's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The games served.
    pub games: Vec<GameConfig>,
    /// How long a room waits for its host to reconnect, in milliseconds
    /// (`0`: the room ends as soon as the host leaves).
    pub host_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            games: vec![
                GameConfig {
                    name: "tic-tac-toe".to_owned(),
                    max_players: 10,
                },
                GameConfig {
                    name: "Ternio".to_owned(),
                    max_players: 3,
                },
            ],
            host_grace_ms: DEFAULT_HOST_GRACE_MS,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid game-lobby config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and checks the configuration JSON text the host passes to
    /// `init` (see the [module docs](self) for the accepted forms).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let text = text.trim();
        if text.is_empty() || text == "null" {
            return Ok(Config::default());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|err| ConfigError(format!("not JSON: {err}")))?;
        let config = match value {
            Value::Array(_) => Config {
                games: serde_json::from_value(value)
                    .map_err(|err| ConfigError(format!("the game list: {err}")))?,
                ..Config::default()
            },
            Value::Object(_) => {
                serde_json::from_value(value).map_err(|err| ConfigError(err.to_string()))?
            }
            other => {
                return Err(ConfigError(format!(
                    "expected an object or a list of games, got {other}"
                )));
            }
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.games.is_empty() {
            return Err(ConfigError("no games configured".to_owned()));
        }
        for (index, game) in self.games.iter().enumerate() {
            if game.name.is_empty() {
                return Err(ConfigError(format!("game {index} has an empty name")));
            }
            if self.games[..index].iter().any(|g| g.name == game.name) {
                return Err(ConfigError(format!(
                    "game {:?} is configured twice",
                    game.name
                )));
            }
        }
        if self.host_grace_ms > MAX_HOST_GRACE_MS {
            return Err(ConfigError(format!(
                "host_grace_ms {} is over a year ({MAX_HOST_GRACE_MS})",
                self.host_grace_ms
            )));
        }
        Ok(())
    }

    /// The configured game called `name`.
    pub fn game(&self, name: &str) -> Option<&GameConfig> {
        self.games.iter().find(|game| game.name == name)
    }

    /// The host grace period.
    pub fn host_grace(&self) -> Duration {
        Duration::from_millis(self.host_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        for text in ["", "null", " null ", "{}"] {
            assert_eq!(Config::parse(text), Ok(Config::default()), "{text:?}");
        }
        let config = Config::default();
        assert_eq!(config.game("Ternio").map(|g| g.max_players), Some(3));
        assert_eq!(config.game("tic-tac-toe").map(|g| g.max_players), Some(10));
        assert_eq!(config.game("ternio"), None);
        assert_eq!(config.host_grace(), Duration::from_secs(30));
    }

    #[test]
    fn both_forms() {
        let object = Config::parse(
            r#"{"games":[{"name":"chess","max_players":2},{"name":"go"}],"host_grace_ms":300}"#,
        )
        .expect("valid");
        assert_eq!(object.games.len(), 2);
        assert_eq!(object.game("go").map(|g| g.max_players), Some(0));
        assert_eq!(object.host_grace_ms, 300);
        let list = Config::parse(r#"[{"name":"chess","max_players":2}]"#).expect("valid");
        assert_eq!(list.game("chess").map(|g| g.max_players), Some(2));
        assert_eq!(list.host_grace_ms, DEFAULT_HOST_GRACE_MS);
        let grace_only = Config::parse(r#"{"host_grace_ms":5}"#).expect("valid");
        assert_eq!(grace_only.games, Config::default().games);
    }

    #[test]
    fn refuses_bad_configs() {
        for text in [
            "{",
            "3",
            r#""games""#,
            r#"{"games":[]}"#,
            "[]",
            r#"{"games":[{"name":""}]}"#,
            r#"{"games":[{"name":"a"},{"name":"a"}]}"#,
            r#"{"games":[{"name":"a","max_players":-1}]}"#,
            r#"{"games":[{"name":"a","players":3}]}"#,
            r#"{"host_grace":5}"#,
            r#"{"host_grace_ms":99999999999999}"#,
        ] {
            let err = Config::parse(text).expect_err(text);
            assert!(
                err.to_string().starts_with("invalid game-lobby config: "),
                "{err}"
            );
        }
    }
}
