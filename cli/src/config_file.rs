//! `roomhost.toml`: services, their configuration and limits in one file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//!
//! [services.chat]
//! plugin = "plugins/chat"          # a .wasm component or a plugin crate directory
//! config = { typing_timeout_ms = 2000 }
//! http_creates_rooms = true        # REST requests may create rooms (default: 404)
//!
//! [limits]
//! max_rooms = 5000
//! call_deadline = 100              # milliseconds
//! ```
//!
//! Relative paths are resolved against the file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use roomhost_host::Limits;
use serde::Deserialize;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceEntry>,
    pub limits: Option<Limits>,
}

/// One `[services.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub plugin: PathBuf,
    pub config: Option<toml::Value>,
    /// Whether HTTP requests may create rooms of this service.
    #[serde(default)]
    pub http_creates_rooms: bool,
}

impl ConfigFile {
    /// Reads and parses `path`, resolving relative paths against its directory.
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut file: ConfigFile =
            toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for entry in file.services.values_mut() {
            entry.plugin = base.join(&entry.plugin);
        }
        file.cache_dir = file.cache_dir.map(|dir| base.join(dir));
        Ok(file)
    }
}

impl ServiceEntry {
    /// The service's configuration as JSON (`null` when absent).
    pub fn config_json(&self) -> anyhow::Result<serde_json::Value> {
        match &self.config {
            None => Ok(serde_json::Value::Null),
            Some(value) => {
                serde_json::to_value(value).context("service config cannot be expressed as JSON")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_opt_in_to_http_room_creation_and_hostile_network_limits_parse() {
        let file: ConfigFile = toml::from_str(
            r#"
            [services.docs]
            plugin = "collab.wasm"
            http_creates_rooms = true

            [services.chat]
            plugin = "chat.wasm"

            [limits]
            max_rooms_per_service = 100
            room_creations_per_minute = 30
            max_pending_connections = 500
            http_header_timeout = 2000
            http_body_timeout = 3000
            max_write_buffer_bytes = 8192
            max_pings_per_sec = 4
            max_query_bytes = 1024
            "#,
        )
        .unwrap();
        assert!(file.services["docs"].http_creates_rooms);
        assert!(!file.services["chat"].http_creates_rooms);
        let limits = file.limits.unwrap();
        assert_eq!(limits, crate::serve::tests::hostile_network_limits());
        assert!(limits.validate().is_ok());
    }
}
