//! The service's configuration (`--config` JSON).

use roomhost_sdk::InitInfo;
use serde::Deserialize;

use crate::document::Settings;
// The awareness defaults belong to presence; the configuration names them.
pub use crate::presence::{
    DEFAULT_AWARENESS_TIMEOUT_MS, DEFAULT_MAX_AWARENESS_PER_CONNECTION,
    DEFAULT_MAX_AWARENESS_STATES,
};
use crate::presence::{Limits, frame_bytes_for_state};

/// How long an empty room keeps its document by default (30 s).
pub const DEFAULT_KEEP_EMPTY_MS: u64 = 30_000;
/// The default document size cap: 8 MiB of v1 encoding. The host's limits
/// decide it, the call deadline first. A join encodes the whole document in
/// one callback, measured at about 4.3 ms of wasm CPU per MB (release, 2026-12;
/// 10 MB: 41–45 ms, 16 MB: 64–71 ms), and the host disposes a room whose
/// callback runs past `call_deadline` (100 ms by default, measured as polled
/// time, which a busy machine stretches). 8 MiB keeps a join near 36 ms, with
/// room for that. The room's memory (64 MiB by default) holds the document,
/// its encoding and the frames cut from it (the 10 MB benchmark document ran
/// in it), and a joiner's outbound queue (`client_queue_bytes`, 32 MiB) holds
/// the whole document until its socket takes it. Larger documents need
/// `--call-deadline-ms`, `--room-memory-mib` and `--client-queue-bytes`
/// raised with `max_doc_bytes`.
pub const DEFAULT_MAX_DOC_BYTES: usize = 8 * 1024 * 1024;
/// The smallest `max_frame_bytes`: a sync message's header (7 bytes at
/// most), with room to spare for a struct's head when the document is cut
/// into frames.
pub const MIN_FRAME_BYTES: usize = 1024;
/// The default cap on one awareness state (16 KiB of JSON).
pub const DEFAULT_MAX_AWARENESS_BYTES: usize = 16 * 1024;
/// The default of the largest frame the room sends, in bytes (1 MiB). A
/// joiner's sync step 2 is cut into frames of this size, which Yjs clients
/// apply one by one. Below the host's limit on frames a plugin sends
/// (`--max-plugin-frame-bytes`, 16 MiB), and unrelated to what clients may
/// send (`--max-frame-bytes`, 64 KiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024;

/// How many updates the stored log holds before it is compacted into the
/// document's state by default (see [`persist`](crate::persist)): replaying
/// 1,000 keystroke-sized updates on a start takes a few milliseconds, and a
/// compaction encodes the whole document (about 4.3 ms per MB), so it runs
/// at most once per 1,000 changes.
pub const DEFAULT_COMPACT_AFTER_UPDATES: u64 = 1000;
/// How many bytes of updates the stored log holds before it is compacted by
/// default (1 MiB): the room stores at most the document plus this much
/// (plus one change).
pub const DEFAULT_COMPACT_AFTER_BYTES: usize = 1024 * 1024;

/// The collab configuration. Every field is optional:
/// `{"keep_empty_ms": 30000, "max_frame_bytes": 1048576, "max_doc_bytes":
/// 8388608, "max_awareness_bytes": 16384, "awareness_timeout_ms": 30000,
/// "max_awareness_states": 256, "max_awareness_per_connection": 4,
/// "gc": false, "compact_after_updates": 1000, "compact_after_bytes":
/// 1048576}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a room keeps its document in memory after the last client
    /// left, in milliseconds (`0`: the room ends at once). The document
    /// stays in storage either way.
    pub keep_empty_ms: u64,
    /// The largest document, in bytes of its v1 encoding. An update that
    /// would grow the document beyond it is refused. `None`:
    /// [`DEFAULT_MAX_DOC_BYTES`].
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
    /// The largest frame the room sends, in bytes, where it can choose: a
    /// joiner's sync step 2 is cut into frames of at most this size, and so
    /// are the awareness states for a newcomer. A single struct that cannot
    /// be cut (an embed, a binary value, a nested type: no larger than the
    /// client frame or REST body that brought it) goes alone. At most the
    /// host's `--max-plugin-frame-bytes` (16 MiB by default), which refuses
    /// larger frames. What clients may send (`--max-frame-bytes`) does not
    /// matter here.
    pub max_frame_bytes: usize,
    /// Whether the server garbage-collects deleted content, as the
    /// reference server does (`GC` on by default there). Off by default
    /// here: yrs 0.28's collector can free a nested type that hostile
    /// updates still reach (use after free, found by this crate's fuzz
    /// test), so turn it on only when every client is trusted. Without it
    /// deleted content stays in the document and counts towards
    /// `max_doc_bytes`.
    pub gc: bool,
    /// Compact the stored document once its log of updates holds this many
    /// (at least 1; see [`persist`](crate::persist)).
    pub compact_after_updates: u64,
    /// Compact the stored document once its log of updates holds this many
    /// bytes (at least 1).
    pub compact_after_bytes: usize,
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
            compact_after_updates: DEFAULT_COMPACT_AFTER_UPDATES,
            compact_after_bytes: DEFAULT_COMPACT_AFTER_BYTES,
        }
    }
}

impl Config {
    /// The document size cap in force: `max_doc_bytes`, or
    /// [`DEFAULT_MAX_DOC_BYTES`].
    pub fn doc_cap(&self) -> usize {
        self.max_doc_bytes.unwrap_or(DEFAULT_MAX_DOC_BYTES)
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
        if config.max_frame_bytes < MIN_FRAME_BYTES {
            return Err(format!(
                "invalid collab config: max_frame_bytes ({}) must be at least {MIN_FRAME_BYTES}",
                config.max_frame_bytes
            ));
        }
        if config.compact_after_updates == 0 {
            return Err("invalid collab config: compact_after_updates must be positive".to_owned());
        }
        for (name, value) in [
            ("compact_after_bytes", config.compact_after_bytes),
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
