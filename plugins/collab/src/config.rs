//! The service's configuration (`--config` JSON).

use roomhost_sdk::InitInfo;
use serde::Deserialize;

use crate::document::Settings;

/// How long an empty room keeps its document by default (30 s).
pub const DEFAULT_KEEP_EMPTY_MS: u64 = 30_000;
/// The default document size cap (1 MiB of v1 encoding; in memory a
/// document takes many times its encoded size, and a room has 64 MiB by
/// default).
pub const DEFAULT_MAX_DOC_BYTES: usize = 1024 * 1024;
/// The default cap on one awareness state (16 KiB of JSON).
pub const DEFAULT_MAX_AWARENESS_BYTES: usize = 16 * 1024;
/// How long an awareness state lives without renewal by default (30 s, the
/// y-protocols `outdatedTimeout`).
pub const DEFAULT_AWARENESS_TIMEOUT_MS: u64 = 30_000;

/// The collab configuration. Every field is optional:
/// `{"keep_empty_ms": 30000, "max_doc_bytes": 1048576,
/// "max_awareness_bytes": 16384, "awareness_timeout_ms": 30000, "gc": false}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a room keeps its document after the last client left, in
    /// milliseconds (`0`: drop it at once).
    pub keep_empty_ms: u64,
    /// The largest document, in bytes of its v1 encoding. An update that
    /// would grow the document beyond it is refused.
    pub max_doc_bytes: usize,
    /// The largest awareness state of one awareness client, in bytes of JSON.
    pub max_awareness_bytes: usize,
    /// How long an awareness state lives without being renewed, in
    /// milliseconds (`0`: until its connection leaves).
    pub awareness_timeout_ms: u64,
    /// Whether the server garbage-collects deleted content, as the
    /// reference server does (`GC` on by default there). Off by default
    /// here: yrs 0.28's collector can free a nested type that hostile
    /// updates still reach (use after free, found by this crate's fuzz
    /// test), so turn it on only when every client is trusted. Without it
    /// deleted content stays in the document and counts towards
    /// `max_doc_bytes`.
    pub gc: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            keep_empty_ms: DEFAULT_KEEP_EMPTY_MS,
            max_doc_bytes: DEFAULT_MAX_DOC_BYTES,
            max_awareness_bytes: DEFAULT_MAX_AWARENESS_BYTES,
            awareness_timeout_ms: DEFAULT_AWARENESS_TIMEOUT_MS,
            gc: false,
        }
    }
}

impl Config {
    /// The document settings for a server client id.
    pub fn doc_settings(&self, client_id: u64) -> Settings {
        Settings {
            client_id,
            max_bytes: self.max_doc_bytes,
            gc: self.gc,
        }
    }

    /// Reads and checks the configuration of a room.
    pub fn from_init(info: &InitInfo) -> Result<Self, String> {
        let config: Self = info
            .config()
            .map_err(|err| format!("invalid collab config: {err}"))?;
        if config.max_doc_bytes == 0 {
            return Err("invalid collab config: max_doc_bytes must be positive".to_owned());
        }
        if config.max_awareness_bytes == 0 {
            return Err("invalid collab config: max_awareness_bytes must be positive".to_owned());
        }
        Ok(config)
    }
}
