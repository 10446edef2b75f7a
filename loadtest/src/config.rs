//! The scenario a user asks for ([`LoadConfig`]) and its validation into a [`Plan`].
//!
//! Every bound the tool promises lives here: total connections, phase lengths, payload size,
//! send rate, in-flight window, and the rule that only loopback targets are load-tested unless
//! the user explicitly allows a remote one. Each refusal is a [`ConfigError`] variant with a
//! message that says what to change.

use std::net::IpAddr;
use std::time::Duration;

use thiserror::Error;
use url::{Host, Url};

use crate::payload::{HEADER_BYTES, TEXT_MAX_SENDER};

/// Default target: the service root of a local `roomhost serve` with one service.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:8080/ws";
/// Default room-id prefix: rooms are `load-0`, `load-1`, ...
pub const DEFAULT_ROOM_PREFIX: &str = "load-";
/// Default cap on total connections (rooms × clients per room).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 50_000;
/// The cap on the cap: `max_connections` cannot be raised above this.
pub const CONNECTIONS_CEILING: u64 = 1_000_000;
// The ceiling also keeps sender ids within what a text frame can carry.
const _: () = assert!(CONNECTIONS_CEILING <= TEXT_MAX_SENDER as u64 + 1);
/// Longest ramp-up, warm-up or measurement phase.
pub const MAX_PHASE: Duration = Duration::from_secs(3600);
/// Longest drain (wait for in-flight deliveries) and connect timeout.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Smallest payload: the header every loadtest frame carries.
pub const MIN_PAYLOAD_BYTES: usize = HEADER_BYTES;
/// Largest payload (1 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Highest send rate of one client, in messages per second.
pub const MAX_RATE_PER_CLIENT: f64 = 10_000.0;
/// Lowest send rate of one client other than 0 (unlimited): one message per 10,000 s (2.8 h),
/// about the longest run (ramp-up, warm-up and measurement of an hour each). A lower rate
/// would not send within a run, and its period would overflow `Duration`.
pub const MIN_RATE_PER_CLIENT: f64 = 0.0001;
/// Highest offered load of the whole run (rate × connections), in messages per second.
pub const MAX_TOTAL_RATE: f64 = 1_000_000.0;
/// Largest in-flight window of one client in unlimited-rate mode.
pub const MAX_IN_FLIGHT: u32 = 1024;
/// Longest room-id prefix (roomhost's default room-id cap is 128 bytes).
pub const MAX_ROOM_PREFIX_BYTES: usize = 100;

/// One load-test scenario: `rooms` × `clients_per_room` WebSocket clients, each sending
/// loadtest frames at `rate` to a room that broadcasts every frame to all of its clients.
///
/// Build it from [`LoadConfig::default`] and change what you need; [`LoadConfig::validate`]
/// (called by [`run`](crate::run)) checks every field.
///
/// ```
/// use std::time::Duration;
/// use roomhost_loadtest::LoadConfig;
///
/// let config = LoadConfig {
///     url: "ws://127.0.0.1:8080/ws/fanout".into(),
///     rooms: 100,
///     clients_per_room: 20,
///     rate: 5.0,
///     duration: Duration::from_secs(30),
///     ..LoadConfig::default()
/// };
/// let plan = config.validate()?;
/// assert_eq!(plan.connections(), 2000);
/// assert_eq!(plan.room_url(7), "ws://127.0.0.1:8080/ws/fanout/load-7");
/// # Ok::<(), roomhost_loadtest::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// Base WebSocket URL; room `i` is `{url}/{room_prefix}{i}` (a query string is kept and
    /// sent with every connection, e.g. `ws://127.0.0.1:8080/ws?name=load`).
    pub url: String,
    /// Prefix of the generated room ids (URL-unreserved characters only).
    pub room_prefix: String,
    /// Every client connects to `url` itself, with no room id added: for a server with one
    /// room endpoint (Stateroom's `/ws`, for a side-by-side run). Needs `rooms == 1`.
    pub single_url: bool,
    /// Number of rooms.
    pub rooms: u32,
    /// Clients connected to each room.
    pub clients_per_room: u32,
    /// Messages per second sent by each client (between [`MIN_RATE_PER_CLIENT`] and
    /// [`MAX_RATE_PER_CLIENT`]); `0` sends as fast as the room echoes, with at most
    /// `max_in_flight` of the client's own frames not yet received back.
    ///
    /// At a fixed rate, latency is measured from each frame's scheduled send time (as wrk2
    /// does), so time a client spends waiting to send counts; at `0` it is measured from the
    /// moment the frame is handed to the socket.
    pub rate: f64,
    /// In-flight window of one client when `rate` is 0.
    pub max_in_flight: u32,
    /// Size of every frame sent, header included.
    pub payload_bytes: usize,
    /// Send binary frames instead of ASCII text frames.
    pub binary: bool,
    /// Connections are opened evenly over this time.
    pub ramp_up: Duration,
    /// Traffic after the ramp-up that is not measured.
    pub warmup: Duration,
    /// The measurement window: only frames sent in it count.
    pub duration: Duration,
    /// After the window, how long to wait for frames still in flight.
    pub drain: Duration,
    /// Limit on TCP connect plus WebSocket handshake of one client.
    pub connect_timeout: Duration,
    /// Cap on `rooms × clients_per_room` (at most [`CONNECTIONS_CEILING`]).
    pub max_connections: u64,
    /// Allow a target that is not loopback. Only load-test deployments you are responsible
    /// for.
    pub allow_remote: bool,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            url: DEFAULT_URL.into(),
            room_prefix: DEFAULT_ROOM_PREFIX.into(),
            single_url: false,
            rooms: 10,
            clients_per_room: 10,
            rate: 10.0,
            max_in_flight: 8,
            payload_bytes: 64,
            binary: false,
            ramp_up: Duration::from_secs(1),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allow_remote: false,
        }
    }
}

/// Why a [`LoadConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// The URL does not parse.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not `ws://`.
    #[error(
        "unsupported scheme {scheme:?} in {url:?}: use ws:// (this tool has no TLS; for wss:// \
         test the plain listener behind your TLS terminator)"
    )]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The URL has a `#fragment`, which WebSocket URLs cannot carry.
    #[error("URL {url:?} has a #fragment, which a WebSocket URL cannot carry")]
    Fragment {
        /// The URL as given.
        url: String,
    },
    /// The target is not loopback and `allow_remote` is off.
    #[error(
        "refusing to load-test {host}: without --allow-remote only loopback targets \
         (localhost, 127.0.0.0/8, [::1]) are allowed; load-test only deployments you are \
         responsible for"
    )]
    RemoteTarget {
        /// The target host (or the address it resolved to).
        host: String,
    },
    /// `rooms` is 0.
    #[error("rooms must be at least 1")]
    ZeroRooms,
    /// `single_url` with more than one room: every room would be the same.
    #[error("a single URL serves one room: use --rooms 1 with --single-url (got {rooms} rooms)")]
    SingleUrlRooms {
        /// The rooms asked for.
        rooms: u32,
    },
    /// `clients_per_room` is 0.
    #[error("clients per room must be at least 1")]
    ZeroClients,
    /// `rooms × clients_per_room` is above `max_connections`.
    #[error(
        "{requested} connections requested ({rooms} rooms × {clients_per_room} clients) but \
         the cap is {cap}; raise --max-connections (at most {CONNECTIONS_CEILING})"
    )]
    TooManyConnections {
        /// rooms × clients per room.
        requested: u64,
        /// Rooms asked for.
        rooms: u32,
        /// Clients per room asked for.
        clients_per_room: u32,
        /// The configured cap.
        cap: u64,
    },
    /// `max_connections` is above [`CONNECTIONS_CEILING`].
    #[error("max connections {value} is above the ceiling of {CONNECTIONS_CEILING}")]
    ConnectionCapTooHigh {
        /// The value given.
        value: u64,
    },
    /// The payload cannot hold the header.
    #[error(
        "payload of {bytes} bytes is too small: each frame carries a {MIN_PAYLOAD_BYTES}-byte \
         header (send time, sender, sequence)"
    )]
    PayloadTooSmall {
        /// The size given.
        bytes: usize,
    },
    /// The payload is above [`MAX_PAYLOAD_BYTES`].
    #[error("payload of {bytes} bytes is above the cap of {MAX_PAYLOAD_BYTES} bytes (1 MiB)")]
    PayloadTooLarge {
        /// The size given.
        bytes: usize,
    },
    /// The rate is negative or not a number.
    #[error("rate {rate} is not a number of messages per second (0 or more; 0 = unlimited)")]
    InvalidRate {
        /// The rate given.
        rate: f64,
    },
    /// The rate of one client is above 0 but below [`MIN_RATE_PER_CLIENT`].
    #[error(
        "rate {rate}/s per client is below the minimum of {MIN_RATE_PER_CLIENT}/s (one message \
         per 10,000 s, longer than most runs): use at least {MIN_RATE_PER_CLIENT}, or 0 for \
         unlimited"
    )]
    RateTooLow {
        /// The rate given.
        rate: f64,
    },
    /// The rate of one client is above [`MAX_RATE_PER_CLIENT`].
    #[error("rate {rate}/s per client is above the cap of {MAX_RATE_PER_CLIENT}/s")]
    RateTooHigh {
        /// The rate given.
        rate: f64,
    },
    /// rate × connections is above [`MAX_TOTAL_RATE`].
    #[error(
        "offered load of {total}/s ({rate}/s × {connections} clients) is above the cap of \
         {MAX_TOTAL_RATE}/s"
    )]
    TotalRateTooHigh {
        /// rate × connections.
        total: f64,
        /// The rate given.
        rate: f64,
        /// Total connections.
        connections: u64,
    },
    /// The in-flight window is 0 or above [`MAX_IN_FLIGHT`].
    #[error("max in-flight must be between 1 and {MAX_IN_FLIGHT}, got {value}")]
    InvalidInFlight {
        /// The value given.
        value: u32,
    },
    /// The measurement window is empty.
    #[error("duration must be greater than zero")]
    ZeroDuration,
    /// A phase or wait is longer than its cap.
    #[error("{what} of {got:?} is above the cap of {max:?}")]
    TooLong {
        /// Which setting.
        what: &'static str,
        /// The value given.
        got: Duration,
        /// Its cap.
        max: Duration,
    },
    /// The connect timeout is zero.
    #[error("connect timeout must be greater than zero")]
    ZeroConnectTimeout,
    /// The room prefix has characters that would need escaping in a URL path, or is too long.
    #[error(
        "room prefix {prefix:?} must be at most {MAX_ROOM_PREFIX_BYTES} characters from \
         A-Z a-z 0-9 - . _ ~"
    )]
    InvalidRoomPrefix {
        /// The prefix given.
        prefix: String,
    },
}

/// A validated [`LoadConfig`]: the target and the URL of every room.
#[derive(Debug, Clone)]
pub struct Plan {
    config: LoadConfig,
    host: Host<String>,
    port: u16,
    /// Everything before the room index: `ws://host:port/base/prefix`.
    url_head: String,
    /// Everything after it: `?query`, or empty.
    url_tail: String,
}

impl LoadConfig {
    /// Checks every field against its bound and the loopback rule, and resolves the room
    /// URLs.
    ///
    /// ```
    /// use roomhost_loadtest::{ConfigError, LoadConfig};
    ///
    /// let remote = LoadConfig { url: "ws://example.com/ws".into(), ..LoadConfig::default() };
    /// assert!(matches!(remote.validate(), Err(ConfigError::RemoteTarget { .. })));
    /// ```
    pub fn validate(&self) -> Result<Plan, ConfigError> {
        let url = self.parse_url()?;
        let host = match url.host() {
            Some(host) => host.to_owned(),
            None => {
                return Err(ConfigError::InvalidUrl {
                    url: self.url.clone(),
                    reason: "no host".into(),
                });
            }
        };
        if !self.allow_remote && !is_loopback_host(&host) {
            return Err(ConfigError::RemoteTarget {
                host: host.to_string(),
            });
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| ConfigError::InvalidUrl {
                url: self.url.clone(),
                reason: "no port".into(),
            })?;

        self.check_bounds()?;

        let mut head = url.clone();
        head.set_query(None);
        if self.single_url {
            if self.rooms != 1 {
                return Err(ConfigError::SingleUrlRooms { rooms: self.rooms });
            }
        } else {
            let base = head.path().trim_end_matches('/').to_owned();
            head.set_path(&format!("{base}/{}", self.room_prefix));
        }
        let url_tail = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        Ok(Plan {
            config: self.clone(),
            host,
            port,
            url_head: head.to_string(),
            url_tail,
        })
    }

    fn parse_url(&self) -> Result<Url, ConfigError> {
        let url = Url::parse(&self.url).map_err(|error| ConfigError::InvalidUrl {
            url: self.url.clone(),
            reason: error.to_string(),
        })?;
        if url.scheme() != "ws" {
            return Err(ConfigError::UnsupportedScheme {
                url: self.url.clone(),
                scheme: url.scheme().to_owned(),
            });
        }
        if url.fragment().is_some() {
            return Err(ConfigError::Fragment {
                url: self.url.clone(),
            });
        }
        Ok(url)
    }

    fn check_bounds(&self) -> Result<(), ConfigError> {
        if self.rooms == 0 {
            return Err(ConfigError::ZeroRooms);
        }
        if self.clients_per_room == 0 {
            return Err(ConfigError::ZeroClients);
        }
        if self.max_connections > CONNECTIONS_CEILING {
            return Err(ConfigError::ConnectionCapTooHigh {
                value: self.max_connections,
            });
        }
        let requested = u64::from(self.rooms) * u64::from(self.clients_per_room);
        if requested > self.max_connections {
            return Err(ConfigError::TooManyConnections {
                requested,
                rooms: self.rooms,
                clients_per_room: self.clients_per_room,
                cap: self.max_connections,
            });
        }
        if self.payload_bytes < MIN_PAYLOAD_BYTES {
            return Err(ConfigError::PayloadTooSmall {
                bytes: self.payload_bytes,
            });
        }
        if self.payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(ConfigError::PayloadTooLarge {
                bytes: self.payload_bytes,
            });
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(ConfigError::InvalidRate { rate: self.rate });
        }
        if self.rate > 0.0 && self.rate < MIN_RATE_PER_CLIENT {
            return Err(ConfigError::RateTooLow { rate: self.rate });
        }
        if self.rate > MAX_RATE_PER_CLIENT {
            return Err(ConfigError::RateTooHigh { rate: self.rate });
        }
        let total = self.rate * requested as f64;
        if total > MAX_TOTAL_RATE {
            return Err(ConfigError::TotalRateTooHigh {
                total,
                rate: self.rate,
                connections: requested,
            });
        }
        if self.max_in_flight == 0 || self.max_in_flight > MAX_IN_FLIGHT {
            return Err(ConfigError::InvalidInFlight {
                value: self.max_in_flight,
            });
        }
        if self.duration.is_zero() {
            return Err(ConfigError::ZeroDuration);
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroConnectTimeout);
        }
        for (what, got, max) in [
            ("duration", self.duration, MAX_PHASE),
            ("ramp-up", self.ramp_up, MAX_PHASE),
            ("warm-up", self.warmup, MAX_PHASE),
            ("drain", self.drain, MAX_WAIT),
            ("connect timeout", self.connect_timeout, MAX_WAIT),
        ] {
            if got > max {
                return Err(ConfigError::TooLong { what, got, max });
            }
        }
        let prefix_ok = self.room_prefix.len() <= MAX_ROOM_PREFIX_BYTES
            && self
                .room_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !prefix_ok {
            return Err(ConfigError::InvalidRoomPrefix {
                prefix: self.room_prefix.clone(),
            });
        }
        Ok(())
    }
}

impl Plan {
    /// The validated configuration.
    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// Total connections: rooms × clients per room.
    pub fn connections(&self) -> u32 {
        // Bounded by CONNECTIONS_CEILING, far below u32::MAX.
        self.config
            .rooms
            .saturating_mul(self.config.clients_per_room)
    }

    /// The target host.
    pub fn host(&self) -> &Host<String> {
        &self.host
    }

    /// The target port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL clients of room `room` connect to.
    pub fn room_url(&self, room: u32) -> String {
        if self.config.single_url {
            return format!("{}{}", self.url_head, self.url_tail);
        }
        format!("{}{room}{}", self.url_head, self.url_tail)
    }

    /// A short description of all room URLs, e.g. `ws://127.0.0.1:8080/ws/load-{0..9}`.
    pub fn url_pattern(&self) -> String {
        if self.config.single_url {
            return self.room_url(0);
        }
        let last = self.config.rooms.saturating_sub(1);
        format!("{}{{0..{last}}}{}", self.url_head, self.url_tail)
    }
}

/// True for `localhost` (and its subdomains, which resolve to loopback by RFC 6761),
/// 127.0.0.0/8, `::1` and IPv4-mapped loopback.
fn is_loopback_host(host: &Host<String>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => is_loopback_ip(IpAddr::V6(*ip)),
    }
}

/// True for loopback addresses, IPv4-mapped IPv6 included.
pub(crate) fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadConfig {
        LoadConfig::default()
    }

    #[test]
    fn default_is_valid_and_loopback() {
        let plan = config().validate().expect("default config");
        assert_eq!(plan.connections(), 100);
        assert_eq!(plan.port(), 8080);
        assert_eq!(plan.room_url(0), "ws://127.0.0.1:8080/ws/load-0");
        assert_eq!(plan.url_pattern(), "ws://127.0.0.1:8080/ws/load-{0..9}");
    }

    #[test]
    fn rooms_are_appended_to_the_path_and_the_query_is_kept() {
        let plan = LoadConfig {
            url: "ws://localhost:9000/ws/fanout/?name=load".into(),
            room_prefix: "r".into(),
            ..config()
        }
        .validate()
        .expect("valid");
        assert_eq!(
            plan.room_url(3),
            "ws://localhost:9000/ws/fanout/r3?name=load"
        );
        let plan = LoadConfig {
            url: "ws://[::1]".into(),
            ..config()
        }
        .validate()
        .expect("valid");
        assert_eq!(plan.port(), 80);
        assert_eq!(plan.room_url(1), "ws://[::1]/load-1");
    }

    #[test]
    fn zero_rooms_or_clients_are_refused() {
        let zero_rooms = LoadConfig {
            rooms: 0,
            ..config()
        };
        assert_eq!(zero_rooms.validate().err(), Some(ConfigError::ZeroRooms));
        let zero_clients = LoadConfig {
            clients_per_room: 0,
            ..config()
        };
        assert_eq!(
            zero_clients.validate().err(),
            Some(ConfigError::ZeroClients)
        );
    }

    #[test]
    fn payload_bounds() {
        let small = LoadConfig {
            payload_bytes: 15,
            ..config()
        };
        assert_eq!(
            small.validate().err(),
            Some(ConfigError::PayloadTooSmall { bytes: 15 })
        );
        let exact = LoadConfig {
            payload_bytes: 16,
            ..config()
        };
        assert!(exact.validate().is_ok());
        let large = LoadConfig {
            payload_bytes: MAX_PAYLOAD_BYTES + 1,
            ..config()
        };
        assert!(matches!(
            large.validate(),
            Err(ConfigError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn remote_targets_need_allow_remote() {
        for url in [
            "ws://example.com/ws",
            "ws://10.0.0.1:8080/ws",
            "ws://192.168.1.10/ws",
            "ws://[2001:db8::1]/ws",
            "ws://localhost.example.com/ws",
        ] {
            let remote = LoadConfig {
                url: url.into(),
                ..config()
            };
            assert!(
                matches!(remote.validate(), Err(ConfigError::RemoteTarget { .. })),
                "{url} must be refused"
            );
            let allowed = LoadConfig {
                allow_remote: true,
                ..remote
            };
            assert!(allowed.validate().is_ok(), "{url} with allow_remote");
        }
        for url in [
            "ws://127.0.0.1/ws",
            "ws://127.1.2.3/ws",
            "ws://LOCALHOST:1/ws",
            "ws://[::1]:1/ws",
            "ws://[::ffff:127.0.0.1]:1/ws",
        ] {
            let local = LoadConfig {
                url: url.into(),
                ..config()
            };
            assert!(local.validate().is_ok(), "{url} is loopback");
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        let cases = [
            ("not a url", "InvalidUrl"),
            ("wss://127.0.0.1/ws", "UnsupportedScheme"),
            ("http://127.0.0.1/ws", "UnsupportedScheme"),
            ("ws://127.0.0.1/ws#x", "Fragment"),
        ];
        for (url, expected) in cases {
            let error = LoadConfig {
                url: url.into(),
                ..config()
            }
            .validate()
            .expect_err(url);
            assert!(
                format!("{error:?}").starts_with(expected),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn connection_caps() {
        let over = LoadConfig {
            rooms: 1000,
            clients_per_room: 51,
            ..config()
        };
        assert!(matches!(
            over.validate(),
            Err(ConfigError::TooManyConnections {
                requested: 51_000,
                ..
            })
        ));
        let raised = LoadConfig {
            max_connections: 60_000,
            rate: 1.0,
            ..over
        };
        assert!(raised.validate().is_ok());
        let ceiling = LoadConfig {
            max_connections: CONNECTIONS_CEILING + 1,
            ..config()
        };
        assert!(matches!(
            ceiling.validate(),
            Err(ConfigError::ConnectionCapTooHigh { .. })
        ));
    }

    #[test]
    fn rate_and_time_bounds() {
        for rate in [-1.0, f64::NAN, f64::INFINITY] {
            let bad = LoadConfig { rate, ..config() };
            assert!(matches!(
                bad.validate(),
                Err(ConfigError::InvalidRate { .. })
            ));
        }
        for rate in [1e-20, f64::MIN_POSITIVE, 5e-324, MIN_RATE_PER_CLIENT / 2.0] {
            let slow = LoadConfig { rate, ..config() };
            let error = slow.validate().expect_err("too slow");
            assert_eq!(error, ConfigError::RateTooLow { rate });
            assert!(error.to_string().contains("0 for unlimited"), "{error}");
        }
        for rate in [0.0, MIN_RATE_PER_CLIENT, 1.0 / 3600.0] {
            let ok = LoadConfig { rate, ..config() };
            assert!(ok.validate().is_ok(), "{rate}");
            if rate > 0.0 {
                // The client's period must be representable (it panicked before).
                assert!(Duration::try_from_secs_f64(1.0 / rate).is_ok());
            }
        }
        let fast = LoadConfig {
            rate: MAX_RATE_PER_CLIENT + 1.0,
            ..config()
        };
        assert!(matches!(
            fast.validate(),
            Err(ConfigError::RateTooHigh { .. })
        ));
        let total = LoadConfig {
            rooms: 1000,
            clients_per_room: 50,
            rate: 100.0,
            ..config()
        };
        assert!(matches!(
            total.validate(),
            Err(ConfigError::TotalRateTooHigh { .. })
        ));
        let unlimited = LoadConfig {
            rate: 0.0,
            max_in_flight: 0,
            ..config()
        };
        assert!(matches!(
            unlimited.validate(),
            Err(ConfigError::InvalidInFlight { value: 0 })
        ));
        let zero = LoadConfig {
            duration: Duration::ZERO,
            ..config()
        };
        assert_eq!(zero.validate().err(), Some(ConfigError::ZeroDuration));
        let long = LoadConfig {
            warmup: MAX_PHASE + Duration::from_secs(1),
            ..config()
        };
        assert!(matches!(
            long.validate(),
            Err(ConfigError::TooLong {
                what: "warm-up",
                ..
            })
        ));
    }

    #[test]
    fn room_prefix_must_be_url_safe() {
        for prefix in ["a/b", "a b", "ü", "%41"] {
            let bad = LoadConfig {
                room_prefix: prefix.into(),
                ..config()
            };
            assert!(
                matches!(bad.validate(), Err(ConfigError::InvalidRoomPrefix { .. })),
                "{prefix:?}"
            );
        }
        let empty = LoadConfig {
            room_prefix: String::new(),
            ..config()
        };
        assert_eq!(
            empty.validate().expect("empty prefix").room_url(4),
            "ws://127.0.0.1:8080/ws/4"
        );
    }

    #[test]
    fn a_single_url_is_used_as_is_and_needs_one_room() {
        let single = LoadConfig {
            url: "ws://127.0.0.1:8080/ws?name=x".into(),
            single_url: true,
            rooms: 1,
            ..config()
        };
        let plan = single.validate().expect("one room");
        assert_eq!(plan.room_url(0), "ws://127.0.0.1:8080/ws?name=x");
        assert_eq!(plan.url_pattern(), "ws://127.0.0.1:8080/ws?name=x");
        let several = LoadConfig { rooms: 2, ..single };
        assert_eq!(
            several.validate().err(),
            Some(ConfigError::SingleUrlRooms { rooms: 2 })
        );
    }
}
