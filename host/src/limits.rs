//! Every bound the host enforces, in one place, with its default.
//!
//! Each field has a CLI flag of the same name (see `roomhost serve --help`) and
//! a key in `roomhost.toml`'s `[limits]` table. Hitting a limit always produces
//! a clear result: a WebSocket close code with a reason, an HTTP error, or an
//! error returned to the plugin; never unbounded growth.

use roomhost_rules::limits as rules;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The host's limits. `Limits::default()` is what `roomhost serve` uses.
///
/// ```
/// use std::time::Duration;
/// use roomhost_host::Limits;
///
/// let limits = Limits {
///     call_deadline: Duration::from_millis(50),
///     ..Limits::default()
/// };
/// assert_eq!(limits.max_frame_bytes, 64 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Live rooms per process (all services together). A connection that would
    /// create one more room is closed with 1013. Each live room holds about four
    /// memory mappings, so Linux's default `vm.max_map_count` (65530) caps a
    /// process near 16k rooms whatever this says.
    pub max_rooms: usize,
    /// Live rooms of one service (its lobby included), so one service cannot
    /// use up the process's `max_rooms` for the others. `None` (the default):
    /// an equal share of `max_rooms`, rounded up, so a single service gets all
    /// of it.
    pub max_rooms_per_service: Option<usize>,
    /// Rooms one client address may create per minute (a token bucket that
    /// holds this many and refills at this rate; IPv6 addresses count per
    /// /64). Beyond it a connection is closed with 1013 and an HTTP request
    /// gets 429.
    pub room_creations_per_minute: usize,
    /// Open WebSocket connections per process; upgrades beyond it get HTTP 503.
    pub max_connections: usize,
    /// TCP connections that are not (yet) WebSocket connections: HTTP
    /// connections reading a request or idle between requests. One more makes
    /// the host close the oldest of them, so silent connections cannot starve
    /// new ones. The host also closes the oldest when the process nears its
    /// open-files limit.
    pub max_pending_connections: usize,
    /// How long an HTTP connection may take to send a request's head (request
    /// line and headers); it is also how long a keep-alive connection may sit
    /// idle between requests. The connection is closed when it runs out.
    #[serde(with = "millis")]
    pub http_header_timeout: Duration,
    /// Events (connects, frames, disconnects) queued for one room. A client
    /// whose room's inbox is full waits: backpressure reaches its socket.
    pub room_inbox: usize,
    /// Frames queued for one client. A client whose queue is full is a slow
    /// consumer and is closed with 1008.
    pub client_queue: usize,
    /// Bytes of frames queued for one client (besides the one frame its
    /// connection is writing). A frame that would take a client beyond it closes that
    /// client as a slow consumer (1008), like a full `client_queue`: large
    /// frames cannot make a client that reads slowly hold unbounded memory.
    /// At least `max_plugin_frame_bytes`, so that a frame a plugin may send
    /// fits an empty queue.
    pub client_queue_bytes: usize,
    /// Largest WebSocket message a client may send. A client sending more is
    /// closed with 1009. What plugins send is bounded by
    /// `max_plugin_frame_bytes` instead.
    pub max_frame_bytes: usize,
    /// Largest frame a plugin may send (`send`, `broadcast`). A larger one is
    /// not sent, and the call returns an error to the plugin. Separate from
    /// `max_frame_bytes`, so that a room can send a document far larger than
    /// any client may send in one frame without letting clients send more.
    pub max_plugin_frame_bytes: usize,
    /// Output the host buffers for a client beyond the frame being written
    /// (pongs, close frames) while the client does not read. A client whose
    /// unread output passes it is closed with 1008.
    pub max_write_buffer_bytes: usize,
    /// Pings a client may send in one second; one more closes it with 1008.
    /// (The host answers each ping with a pong, so a ping flood from a client
    /// that never reads would otherwise grow its output.)
    pub max_pings_per_sec: usize,
    /// Longest query string of a WebSocket URL or an HTTP request to a room,
    /// in bytes; longer gets HTTP 414. The query is kept for the connection's
    /// life (plugins read it in `connect`).
    pub max_query_bytes: usize,
    /// Time a single plugin callback may run before the room is disposed
    /// (1011). Time the call spends waiting for its turn between time slices
    /// does not count; time it spends waiting on the host (a WASI sleep)
    /// does. See DESIGN.md, "Execution".
    #[serde(with = "millis")]
    pub call_deadline: Duration,
    /// Lines a room's plugin may log per second (stdout, stderr and
    /// `host.log` together); more are dropped and counted in a warning.
    pub plugin_log_lines: u32,
    /// Linear memory one room may use.
    pub room_memory_bytes: usize,
    /// Timers pending in one room; `set-timer` beyond it returns an error.
    pub max_timers_per_room: usize,
    /// Size of the JSON a room may publish with `set-info`.
    pub max_info_bytes: usize,
    /// State a plugin may attach to one client (`set-client-state`); more
    /// is refused with an error the plugin sees.
    pub max_client_state_bytes: usize,
    /// The longest reconnection grace period a plugin may ask for
    /// (`describe`); longer ones are cut to it.
    #[serde(with = "millis")]
    pub max_reconnect_grace: Duration,
    /// Frames kept for a client waiting to reconnect; one more ends its
    /// grace period (the room gets `disconnect(lost)`).
    pub max_replay_frames: usize,
    /// Bytes of frames kept for a client waiting to reconnect, likewise.
    pub max_replay_bytes: usize,
    /// Length of a room id in a URL.
    pub max_room_id_bytes: usize,
    /// Longest key a room may store; a longer `put` returns an error to the
    /// plugin and writes nothing.
    pub max_storage_key_bytes: usize,
    /// Largest value a room may store, likewise.
    pub max_storage_value_bytes: usize,
    /// Most a room may store (keys plus values), likewise. A live room holds
    /// its stored data in memory, so this also bounds what storage adds to
    /// a room's footprint.
    pub max_room_storage_bytes: usize,
    /// Output (frame bytes, counted per recipient) one event of a room that
    /// uses storage may send before its commit: that output waits for the
    /// commit to be durable. A `send` or `broadcast` beyond it returns an
    /// error to the plugin.
    pub max_held_output_bytes: usize,
    /// Clients of other cluster nodes this node's rooms may be sending to at
    /// once (one relay each, holding up to `client_queue` frames). A send to
    /// one more is dropped and logged until a relay ends.
    pub max_remote_clients: usize,
    /// Largest body of an HTTP request to a room
    /// (`/rooms/{service}/{room}/...`) and of the room's answer. A larger
    /// request gets 413; a larger answer becomes a 500.
    pub max_http_body_bytes: usize,
    /// HTTP requests to rooms being handled at once, process-wide. One more
    /// gets 503 at once; each holds up to two bodies in memory.
    pub max_http_requests: usize,
    /// Headers of an HTTP request to a room; a request with more gets 431.
    /// A room's answer keeps this many and drops the rest (logged).
    pub max_http_headers: usize,
    /// How long an HTTP request waits for its room's answer before it gets
    /// 503 (a request still queued then is not handed to the room). The wait
    /// for a free `max_http_requests` slot counts; slots are handed out in
    /// arrival order.
    #[serde(with = "millis")]
    pub http_timeout: Duration,
    /// How long an HTTP request to a room may take to send its body; a slower
    /// one gets 408. Bodies are read before the request takes a
    /// `max_http_requests` slot, so slow senders never hold one.
    #[serde(with = "millis")]
    pub http_body_timeout: Duration,
    /// How often the host pings each client.
    #[serde(with = "millis")]
    pub ping_interval: Duration,
    /// A client that sends nothing (not even a pong) for this long is closed
    /// with 1001.
    #[serde(with = "millis")]
    pub idle_timeout: Duration,
    /// How long shutdown waits for clients to acknowledge their 1001 close,
    /// and how long a socket the host closed drains what the client still
    /// sends (so the close frame is not lost to a TCP reset).
    #[serde(with = "millis")]
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rooms: 10_000,
            max_rooms_per_service: None,
            room_creations_per_minute: 600,
            max_connections: 20_000,
            max_pending_connections: 1024,
            http_header_timeout: Duration::from_secs(5),
            room_inbox: 1024,
            client_queue: 256,
            client_queue_bytes: 32 * 1024 * 1024,
            max_frame_bytes: rules::MAX_FRAME_BYTES,
            max_plugin_frame_bytes: rules::MAX_PLUGIN_FRAME_BYTES,
            max_write_buffer_bytes: 64 * 1024,
            max_pings_per_sec: 16,
            max_query_bytes: 4 * 1024,
            call_deadline: Duration::from_millis(100),
            plugin_log_lines: 100,
            room_memory_bytes: 64 * 1024 * 1024,
            max_timers_per_room: rules::MAX_TIMERS,
            max_info_bytes: rules::MAX_INFO_BYTES,
            max_client_state_bytes: rules::MAX_CLIENT_STATE_BYTES,
            max_reconnect_grace: Duration::from_secs(300),
            max_replay_frames: 256,
            max_replay_bytes: 1024 * 1024,
            max_room_id_bytes: rules::MAX_ROOM_ID_BYTES,
            max_storage_key_bytes: rules::MAX_STORAGE_KEY_BYTES,
            max_storage_value_bytes: rules::MAX_STORAGE_VALUE_BYTES,
            max_room_storage_bytes: rules::MAX_ROOM_STORAGE_BYTES,
            max_held_output_bytes: 64 * 1024 * 1024,
            max_remote_clients: 4096,
            max_http_body_bytes: 1024 * 1024,
            max_http_requests: 256,
            max_http_headers: 100,
            http_timeout: Duration::from_secs(30),
            http_body_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// The longest any duration limit may be.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

impl Limits {
    /// Checks that every limit is usable: counts, sizes and durations that
    /// must be positive are.
    ///
    /// ```
    /// use roomhost_host::Limits;
    ///
    /// assert!(Limits::default().validate().is_ok());
    /// let broken = Limits { client_queue: 0, ..Limits::default() };
    /// assert!(broken.validate().unwrap_err().contains("client_queue"));
    /// let forever = Limits { ping_interval: std::time::Duration::MAX, ..Limits::default() };
    /// assert!(forever.validate().unwrap_err().contains("ping_interval"));
    /// let cramped = Limits { client_queue_bytes: 1024, ..Limits::default() };
    /// assert!(cramped.validate().unwrap_err().contains("client_queue_bytes"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("max_rooms", self.max_rooms),
            (
                "max_rooms_per_service",
                self.max_rooms_per_service.unwrap_or(1),
            ),
            ("room_creations_per_minute", self.room_creations_per_minute),
            ("max_connections", self.max_connections),
            ("max_pending_connections", self.max_pending_connections),
            ("room_inbox", self.room_inbox),
            ("client_queue", self.client_queue),
            ("client_queue_bytes", self.client_queue_bytes),
            ("max_frame_bytes", self.max_frame_bytes),
            ("max_plugin_frame_bytes", self.max_plugin_frame_bytes),
            ("max_write_buffer_bytes", self.max_write_buffer_bytes),
            ("max_pings_per_sec", self.max_pings_per_sec),
            ("max_query_bytes", self.max_query_bytes),
            ("room_memory_bytes", self.room_memory_bytes),
            ("max_room_id_bytes", self.max_room_id_bytes),
            ("max_storage_key_bytes", self.max_storage_key_bytes),
            ("max_storage_value_bytes", self.max_storage_value_bytes),
            ("max_room_storage_bytes", self.max_room_storage_bytes),
            ("max_held_output_bytes", self.max_held_output_bytes),
            ("max_remote_clients", self.max_remote_clients),
            ("max_client_state_bytes", self.max_client_state_bytes),
            ("max_replay_frames", self.max_replay_frames),
            ("max_replay_bytes", self.max_replay_bytes),
            ("max_http_body_bytes", self.max_http_body_bytes),
            ("max_http_requests", self.max_http_requests),
            ("max_http_headers", self.max_http_headers),
            ("plugin_log_lines", self.plugin_log_lines as usize),
        ];
        let durations = [
            ("call_deadline", self.call_deadline),
            ("http_timeout", self.http_timeout),
            ("http_body_timeout", self.http_body_timeout),
            ("http_header_timeout", self.http_header_timeout),
            ("ping_interval", self.ping_interval),
            ("idle_timeout", self.idle_timeout),
        ];
        // Deadlines are computed as `now + duration`; absurd values would
        // overflow the clock instead of meaning "never".
        let grace = [("shutdown_grace", self.shutdown_grace)];
        for (name, value) in durations.iter().chain(&grace) {
            if *value > MAX_DURATION {
                return Err(format!("{name} must be at most a year"));
            }
        }
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be greater than 0"));
        }
        if let Some((name, _)) = durations.iter().find(|(_, value)| value.is_zero()) {
            return Err(format!("{name} must be greater than 0"));
        }
        // Otherwise a frame within the plugin's limit could never be queued:
        // every client it is sent to would be closed as a slow consumer.
        if self.client_queue_bytes < self.max_plugin_frame_bytes {
            return Err(format!(
                "client_queue_bytes ({}) must be at least max_plugin_frame_bytes ({})",
                self.client_queue_bytes, self.max_plugin_frame_bytes
            ));
        }
        Ok(())
    }

    /// The caps on each room's storage.
    pub fn storage(&self) -> roomhost_rules::storage::StorageLimits {
        roomhost_rules::storage::StorageLimits {
            max_key_bytes: self.max_storage_key_bytes,
            max_value_bytes: self.max_storage_value_bytes,
            max_room_bytes: self.max_room_storage_bytes,
        }
    }

    /// The room limit of each of `services` services: `max_rooms_per_service`,
    /// or an equal share of `max_rooms` (rounded up), never above `max_rooms`.
    ///
    /// ```
    /// use roomhost_host::Limits;
    ///
    /// let limits = Limits { max_rooms: 10, ..Limits::default() };
    /// assert_eq!(limits.rooms_per_service(1), 10);
    /// assert_eq!(limits.rooms_per_service(3), 4);
    /// let set = Limits { max_rooms_per_service: Some(50), ..limits };
    /// assert_eq!(set.rooms_per_service(3), 10);
    /// ```
    pub fn rooms_per_service(&self, services: usize) -> usize {
        let share = self
            .max_rooms_per_service
            .unwrap_or_else(|| self.max_rooms.div_ceil(services.max(1)));
        share.min(self.max_rooms)
    }
}

/// Durations as whole milliseconds in config files.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
