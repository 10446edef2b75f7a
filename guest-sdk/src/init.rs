//! How a room instance starts: [`InitInfo`].

use serde::de::DeserializeOwned;

/// How a room starts, passed to [`RoomService::init`](crate::RoomService::init).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InitInfo {
    /// The room's id as it appears in the URL (also available later as
    /// [`Room::room_id`](crate::Room::room_id)); empty for the lobby.
    pub room_id: String,
    /// Whether this instance is the service's lobby: the one instance that
    /// receives clients connecting to the service root (also available later
    /// as [`Room::is_lobby`](crate::Room::is_lobby)). See the
    /// [crate documentation](crate#the-lobby-and-hand-off).
    pub lobby: bool,
    /// The service's configuration as JSON text, `null` when none was given.
    /// Use [`InitInfo::config`] to deserialize it.
    pub config: String,
    /// State restored from an earlier instance of this room, if any.
    pub restored: Option<Vec<u8>>,
}

impl InitInfo {
    /// Deserializes the configuration. A missing configuration (`null` or
    /// empty text) gives `T::default()`.
    ///
    /// Put `#[serde(default)]` on the config struct so that a partial
    /// configuration fills in the rest from `Default`:
    ///
    /// ```
    /// #[derive(Default, serde::Deserialize)]
    /// #[serde(default)]
    /// struct Config {
    ///     start: i64,
    ///     step: i64,
    /// }
    ///
    /// # let info = roomhost_sdk::testing::init_info("test", r#"{"step": 5}"#);
    /// // info.config == r#"{"step": 5}"#
    /// let config: Config = info.config()?;
    /// assert_eq!((config.start, config.step), (0, 5));
    ///
    /// # let info = roomhost_sdk::testing::init_info("test", "null");
    /// // info.config == "null"
    /// let config: Config = info.config()?;
    /// assert_eq!((config.start, config.step), (0, 0));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn config<T: DeserializeOwned + Default>(&self) -> Result<T, serde_json::Error> {
        let text = self.config.trim();
        if text.is_empty() || text == "null" {
            return Ok(T::default());
        }
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(config: &str) -> InitInfo {
        InitInfo {
            room_id: "r".into(),
            lobby: false,
            config: config.into(),
            restored: None,
        }
    }

    #[test]
    fn null_and_empty_give_default() {
        assert_eq!(info("null").config::<Vec<u8>>().ok(), Some(vec![]));
        assert_eq!(info("  ").config::<Vec<u8>>().ok(), Some(vec![]));
        assert_eq!(info("[1]").config::<Vec<u8>>().ok(), Some(vec![1]));
        assert!(info("{").config::<Vec<u8>>().is_err());
    }
}
