//! The service's configuration (`--config` JSON).

use roomhost_sdk::InitInfo;
use serde::Deserialize;

use crate::document::Settings;
use crate::presence::{Limits, frame_bytes_for_state};

/// How long an empty room keeps its document by default (30 s).
pub const DEFAULT_KEEP_EMPTY_MS: u64 = 30_000;
/// The largest default document size cap (1 MiB of v1 encoding; in memory
/// a document takes many times its encoded size, and a room has 64 MiB by
/// default). The default is smaller when the frames are: see
/// [`Config::doc_cap`].
pub const DEFAULT_MAX_DOC_BYTES: usize = 1024 * 1024;
/// What a frame carrying the whole document (sync step 2 to a client that
/// joins) takes beyond the document's v1 encoding: the message header (7
/// bytes at most), with room to spare for a diff that starts inside a
/// struct (a sliced struct gains an origin).
pub const DOC_FRAME_OVERHEAD: usize = 1024;
/// The default cap on one awareness state (16 KiB of JSON).
pub const DEFAULT_MAX_AWARENESS_BYTES: usize = 16 * 1024;
/// How long an awareness state lives without renewal by default (30 s, the
/// y-protocols `outdatedTimeout`).
pub const DEFAULT_AWARENESS_TIMEOUT_MS: u64 = 30_000;
/// The default cap on the live awareness states of a room.
pub const DEFAULT_MAX_AWARENESS_STATES: usize = 256;
/// The default cap on the awareness ids one connection controls (a
/// y-websocket client has one; a few more allow several documents sharing
/// one connection).
pub const DEFAULT_MAX_AWARENESS_PER_CONNECTION: usize = 4;
/// The default of the largest frame the host sends, in bytes: the host's
/// own default (`--max-frame-bytes`).
pub const DEFAULT_MAX_FRAME_BYTES: usize = roomhost_sdk::limits::MAX_FRAME_BYTES;

/// The collab configuration. Every field is optional:
/// `{"keep_empty_ms": 30000, "max_frame_bytes": 65536, "max_doc_bytes":
/// 64512, "max_awareness_bytes": 16384, "awareness_timeout_ms": 30000,
/// "max_awareness_states": 256, "max_awareness_per_connection": 4,
/// "gc": false}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a room keeps its document after the last client left, in
    /// milliseconds (`0`: drop it at once).
    pub keep_empty_ms: u64,
    /// The largest document, in bytes of its v1 encoding. An update that
    /// would grow the document beyond it is refused. A client that joins
    /// gets the whole document in one frame, so it must fit in
    /// `max_frame_bytes` (with [`DOC_FRAME_OVERHEAD`]). `None`: the largest
    /// that does, up to [`DEFAULT_MAX_DOC_BYTES`] (see [`Config::doc_cap`]).
    pub max_doc_bytes: Option<usize>,
    /// The largest awareness state of one awareness client, in bytes of JSON.
    pub max_awareness_bytes: usize,
    /// How long an awareness state lives without being renewed, in
    /// milliseconds (`0`: until its connection leaves).
    pub awareness_timeout_ms: u64,
    /// The most live awareness states in a room. A new state beyond it is
    /// dropped.
    pub max_awareness_states: usize,
    /// The most awareness ids one connection may control. A new state
    /// beyond it is dropped.
    pub max_awareness_per_connection: usize,
    /// The largest frame the host sends, in bytes: set it to the host's
    /// `--max-frame-bytes`. The host drops larger frames (with only a log
    /// line), so the document must fit in one (see `max_doc_bytes`), and
    /// the awareness states for a newcomer are split into frames of at
    /// most this size.
    pub max_frame_bytes: usize,
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
            max_doc_bytes: None,
            max_awareness_bytes: DEFAULT_MAX_AWARENESS_BYTES,
            awareness_timeout_ms: DEFAULT_AWARENESS_TIMEOUT_MS,
            max_awareness_states: DEFAULT_MAX_AWARENESS_STATES,
            max_awareness_per_connection: DEFAULT_MAX_AWARENESS_PER_CONNECTION,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            gc: false,
        }
    }
}

impl Config {
    /// The document size cap in force: `max_doc_bytes`, or by default the
    /// largest document a frame of `max_frame_bytes` carries, up to
    /// [`DEFAULT_MAX_DOC_BYTES`] (64,512 bytes with the default frames).
    pub fn doc_cap(&self) -> usize {
        self.max_doc_bytes.unwrap_or_else(|| {
            DEFAULT_MAX_DOC_BYTES.min(self.max_frame_bytes.saturating_sub(DOC_FRAME_OVERHEAD))
        })
    }

    /// The document settings for a server client id.
    pub fn doc_settings(&self, client_id: u64) -> Settings {
        Settings {
            client_id,
            max_bytes: self.doc_cap(),
            gc: self.gc,
        }
    }

    /// The caps of the awareness table.
    pub fn presence_limits(&self) -> Limits {
        Limits {
            max_states: self.max_awareness_states,
            max_per_connection: self.max_awareness_per_connection,
            timeout_ms: self.awareness_timeout_ms,
        }
    }

    /// Reads and checks the configuration of a room.
    pub fn from_init(info: &InitInfo) -> Result<Self, String> {
        let config: Self = info
            .config()
            .map_err(|err| format!("invalid collab config: {err}"))?;
        if config.max_doc_bytes == Some(0) {
            return Err("invalid collab config: max_doc_bytes must be positive".to_owned());
        }
        if config.max_frame_bytes <= DOC_FRAME_OVERHEAD {
            return Err(format!(
                "invalid collab config: max_frame_bytes ({}) must be above {DOC_FRAME_OVERHEAD}",
                config.max_frame_bytes
            ));
        }
        let doc_frame = config.doc_cap().saturating_add(DOC_FRAME_OVERHEAD);
        if doc_frame > config.max_frame_bytes {
            return Err(format!(
                "invalid collab config: max_doc_bytes ({}) does not fit in a frame of \
                 max_frame_bytes ({}): a client that joins gets the whole document in one \
                 frame, and the host drops frames larger than its --max-frame-bytes. Raise \
                 --max-frame-bytes on the host and max_frame_bytes here to at least {doc_frame}, \
                 or lower max_doc_bytes to at most {}",
                config.doc_cap(),
                config.max_frame_bytes,
                config.max_frame_bytes - DOC_FRAME_OVERHEAD
            ));
        }
        for (name, value) in [
            ("max_awareness_bytes", config.max_awareness_bytes),
            ("max_awareness_states", config.max_awareness_states),
            (
                "max_awareness_per_connection",
                config.max_awareness_per_connection,
            ),
        ] {
            if value == 0 {
                return Err(format!("invalid collab config: {name} must be positive"));
            }
        }
        let awareness_frame = frame_bytes_for_state(config.max_awareness_bytes);
        if awareness_frame > config.max_frame_bytes {
            return Err(format!(
                "invalid collab config: an awareness state of max_awareness_bytes ({}) takes a \
                 frame of up to {awareness_frame} bytes, more than max_frame_bytes ({})",
                config.max_awareness_bytes, config.max_frame_bytes
            ));
        }
        Ok(config)
    }
}
