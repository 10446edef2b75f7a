//! `roomhost.toml`: services, their configuration and limits in one file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! workers = 2                        # threads running rooms (default: one per core it may use)
//! data_dir = "roomhost-data"         # rooms' stored data (the default)
//!
//! [services.chat]
//! plugin = "plugins/chat"          # a .wasm component or a plugin crate directory
//! config = { typing_timeout_ms = 2000 }
//! http_creates_rooms = true        # REST requests may create rooms (default: 404)
//! durable_snapshots_ms = 1000      # save rooms' snapshots (at most every second) and restore them
//!
//! [services.chat.access]           # see roomhost_host::AccessPolicy
//! require_token = true
//! allowed_origins = ["https://app.example"]
//!
//! [auth]                           # the secret and admin token: environment only
//! jwks = "https://idp.example/.well-known/jwks.json"
//! audience = "my-app"
//!
//! [limits]
//! max_rooms = 5000
//! call_deadline = 100              # milliseconds
//!
//! [cluster]                        # one node of a cluster (docs/cluster.md); flags win
//! url = "postgres://roomhost@10.0.0.5/roomhost"   # a password: ROOMHOST_CLUSTER instead
//! node_id = "node-1"
//! advertise = "10.0.0.1:8080"
//! lease_ms = 10000
//! ```
//!
//! Relative paths are resolved against the file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use roomhost_host::{AccessPolicy, Limits};
use serde::Deserialize;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
    /// The async runtime's worker threads (`--workers`; default: one per
    /// CPU core this process may use).
    pub workers: Option<usize>,
    pub cache_dir: Option<PathBuf>,
    /// Where rooms' stored data lives (default: roomhost-data/ next to
    /// this file).
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceEntry>,
    pub limits: Option<Limits>,
    /// Token verification keys and claims (`[auth]`).
    pub auth: Option<AuthFile>,
    /// Serve the admin endpoints without a token on a non-loopback address.
    #[serde(default)]
    pub open_admin: bool,
    /// This server as one node of a cluster (`[cluster]`).
    pub cluster: Option<ClusterFile>,
}

/// The `[cluster]` table: the `--cluster` flags' settings, which win over
/// it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// The database (`--cluster`).
    pub url: Option<String>,
    /// This node's id (`--node-id`).
    pub node_id: Option<String>,
    /// Where other nodes reach this one (`--advertise`).
    pub advertise: Option<String>,
    /// Lease length in milliseconds (`--lease-ms`).
    pub lease_ms: Option<u64>,
    /// Renewal interval in milliseconds (`--renew-ms`).
    pub renew_ms: Option<u64>,
}

/// The `[auth]` table. Secrets (the HS256 secret, the admin token) are not
/// read from the file: give them in the environment.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// PEM public keys.
    #[serde(default)]
    pub public_keys: Vec<PathBuf>,
    /// A JWKS file or URL.
    pub jwks: Option<String>,
    pub jwks_refresh_secs: Option<u64>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub leeway_secs: Option<u64>,
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
    /// Who may connect and call rooms (`[services.NAME.access]`).
    pub access: Option<AccessPolicy>,
    /// Save each room's snapshot at most this often (milliseconds) and
    /// restore rooms from it: durability without storage code.
    pub durable_snapshots_ms: Option<u64>,
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
        file.data_dir = file.data_dir.map(|dir| base.join(dir));
        if let Some(auth) = &mut file.auth {
            for key in &mut auth.public_keys {
                *key = base.join(&*key);
            }
            if let Some(jwks) = &mut auth.jwks
                && !jwks.starts_with("http://")
                && !jwks.starts_with("https://")
            {
                *jwks = base.join(&*jwks).to_string_lossy().into_owned();
            }
        }
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

    #[test]
    fn the_cluster_table_parses_and_unknown_keys_are_refused() {
        let file: ConfigFile = toml::from_str(
            r#"
            [cluster]
            url = "postgres://roomhost@127.0.0.1/roomhost"
            node_id = "node-1"
            advertise = "10.0.0.1:8080"
            lease_ms = 4000
            renew_ms = 1000
            "#,
        )
        .unwrap();
        let cluster = file.cluster.unwrap();
        assert_eq!(cluster.node_id.as_deref(), Some("node-1"));
        assert_eq!(
            (cluster.lease_ms, cluster.renew_ms),
            (Some(4000), Some(1000))
        );
        let refused = toml::from_str::<ConfigFile>("[cluster]\nlease = 4000\n");
        assert!(refused.is_err());
    }

    #[test]
    fn access_policies_and_auth_keys_parse() {
        let file: ConfigFile = toml::from_str(
            r#"
            open_admin = true

            [auth]
            jwks = "https://idp.example/.well-known/jwks.json"
            audience = "my-app"
            jwks_refresh_secs = 60

            [services.docs]
            plugin = "collab.wasm"

            [services.docs.access]
            require_token = true
            token_sources = ["header", "query:token"]
            rooms_claim = "perms"
            allowed_origins = ["https://app.example"]
            "#,
        )
        .unwrap();
        assert!(file.open_admin);
        let auth = file.auth.unwrap();
        assert_eq!(auth.audience.as_deref(), Some("my-app"));
        let access = file.services["docs"].access.clone().unwrap();
        assert!(access.require_token);
        assert_eq!(access.rooms_claim, "perms");
        assert_eq!(access.token_sources.len(), 2);
        assert!(
            toml::from_str::<ConfigFile>(
                "[services.x]\nplugin = \"x.wasm\"\n[services.x.access]\ntoken_sources = [\"cookie\"]\n"
            )
            .is_err()
        );
    }
}
