//! The host's Prometheus metrics, served at `GET /metrics` in the text
//! exposition format: rooms and clients per service, connections accepted
//! and refused, frames and bytes each way, callback durations, room
//! disposals by reason, slow consumers, instantiate time, reloads, HTTP
//! statuses, and storage commits (latency and group size).
//!
//! Counters and histograms are updated where the event happens (one call);
//! the room and client gauges are read from the room table at scrape time,
//! so they can never drift from it.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallbackLabels {
    service: String,
    callback: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceReasonLabels {
    service: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Callback and instantiate durations: 10 µs to about 20 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 4.0, 12))
}

/// One host's metrics.
pub struct Metrics {
    registry: Registry,
    /// One scrape at a time: a render clears and refills the gauges.
    rendering: std::sync::Mutex<()>,
    rooms: Family<ServiceLabel, Gauge>,
    clients: Family<ServiceLabel, Gauge>,
    connections_accepted: Counter,
    connections_forwarded: Counter,
    connections_refused: Family<ReasonLabel, Counter>,
    frames_in: Counter,
    bytes_in: Counter,
    frames_out: Counter,
    bytes_out: Counter,
    callback_seconds: Histograms<CallbackLabels>,
    disposals: Family<ServiceReasonLabels, Counter>,
    slow_consumers: Counter,
    instantiate_seconds: Histogram,
    reloads: Family<ServiceReasonLabels, Counter>,
    http_responses: Family<StatusLabel, Counter>,
    commit_seconds: Histogram,
    commit_group_rooms: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every metric at zero, registered under `roomhost_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("roomhost");
        let metrics = Metrics {
            rooms: Family::default(),
            clients: Family::default(),
            connections_accepted: Counter::default(),
            connections_forwarded: Counter::default(),
            connections_refused: Family::default(),
            frames_in: Counter::default(),
            bytes_in: Counter::default(),
            frames_out: Counter::default(),
            bytes_out: Counter::default(),
            callback_seconds: Family::new_with_constructor(duration_histogram),
            disposals: Family::default(),
            slow_consumers: Counter::default(),
            instantiate_seconds: duration_histogram(),
            reloads: Family::default(),
            http_responses: Family::default(),
            // Commits are short: 50 µs to about 1.6 s, in steps of 2.
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            commit_group_rooms: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            registry: Registry::default(),
            rendering: std::sync::Mutex::new(()),
        };
        let m = &metrics;
        registry.register("rooms", "Live rooms, lobbies excluded", m.rooms.clone());
        registry.register(
            "clients",
            "Connected clients, lobbies included",
            m.clients.clone(),
        );
        registry.register(
            "connections_accepted",
            "WebSocket connections upgraded",
            m.connections_accepted.clone(),
        );
        registry.register(
            "connections_forwarded",
            "WebSocket connections forwarded to the node that owns their room (cluster)",
            m.connections_forwarded.clone(),
        );
        registry.register(
            "connections_refused",
            "WebSocket connections refused, by reason",
            m.connections_refused.clone(),
        );
        registry.register(
            "frames_in",
            "Frames received from clients",
            m.frames_in.clone(),
        );
        registry.register(
            "bytes_in",
            "Payload bytes received from clients",
            m.bytes_in.clone(),
        );
        registry.register(
            "frames_out",
            "Frames queued to clients",
            m.frames_out.clone(),
        );
        registry.register(
            "bytes_out",
            "Payload bytes queued to clients",
            m.bytes_out.clone(),
        );
        registry.register(
            "callback_duration_seconds",
            "Wall time of plugin callbacks, by service and callback",
            m.callback_seconds.clone(),
        );
        registry.register(
            "room_disposals",
            "Rooms disposed after a failure, by service and reason",
            m.disposals.clone(),
        );
        registry.register(
            "slow_consumer_closes",
            "Clients closed because their outbound queue was full",
            m.slow_consumers.clone(),
        );
        registry.register(
            "instantiate_duration_seconds",
            "Time to instantiate a room's plugin",
            m.instantiate_seconds.clone(),
        );
        registry.register(
            "reloads",
            "Rooms moved by hot reloads, by service and outcome",
            m.reloads.clone(),
        );
        registry.register(
            "http_responses",
            "HTTP responses, by status code",
            m.http_responses.clone(),
        );
        registry.register(
            "storage_commit_duration_seconds",
            "Time from a room's commit request to its writes being durable",
            m.commit_seconds.clone(),
        );
        registry.register(
            "storage_commit_group_rooms",
            "Room commits written together in one storage transaction (group commit)",
            m.commit_group_rooms.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// A WebSocket connection was upgraded.
    pub fn connection_accepted(&self) {
        self.connections_accepted.inc();
    }

    /// A WebSocket connection was forwarded to its room's owner.
    pub fn connection_forwarded(&self) {
        self.connections_forwarded.inc();
    }

    /// A connection was refused (`reason`: a short snake_case word).
    pub fn connection_refused(&self, reason: &str) {
        self.connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A frame of `bytes` arrived from a client.
    pub fn frame_in(&self, bytes: usize) {
        self.frames_in.inc();
        self.bytes_in.inc_by(bytes as u64);
    }

    /// `count` frames of `bytes` each were queued to clients.
    pub fn frames_out(&self, count: usize, bytes: usize) {
        self.frames_out.inc_by(count as u64);
        self.bytes_out.inc_by(count.saturating_mul(bytes) as u64);
    }

    /// A room's commit became durable after `latency`, written in a group
    /// of `group` room commits.
    pub fn storage_commit(&self, latency: Duration, group: usize) {
        self.commit_seconds.observe(latency.as_secs_f64());
        self.commit_group_rooms.observe(group as f64);
    }

    /// A plugin callback of `service` took `elapsed`.
    pub fn callback(&self, service: &str, callback: &str, elapsed: Duration) {
        self.callback_histogram(service, callback)
            .observe(elapsed.as_secs_f64());
    }

    /// The histogram of `service`'s `callback` durations. A room keeps the
    /// handles it uses, so a call costs one observation, not a label lookup.
    pub fn callback_histogram(&self, service: &str, callback: &str) -> Histogram {
        self.callback_seconds
            .get_or_create(&CallbackLabels {
                service: service.to_owned(),
                callback: callback.to_owned(),
            })
            .clone()
    }

    /// A room of `service` was disposed for `reason`.
    pub fn room_disposed(&self, service: &str, reason: &str) {
        self.disposals
            .get_or_create(&ServiceReasonLabels {
                service: service.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// `count` clients were closed as slow consumers.
    pub fn slow_consumers(&self, count: usize) {
        self.slow_consumers.inc_by(count as u64);
    }

    /// A room's plugin was instantiated in `elapsed`.
    pub fn instantiated(&self, elapsed: Duration) {
        self.instantiate_seconds.observe(elapsed.as_secs_f64());
    }

    /// A hot reload moved `count` rooms of `service` with `outcome`.
    pub fn reloaded(&self, service: &str, outcome: &str, count: usize) {
        self.reloads
            .get_or_create(&ServiceReasonLabels {
                service: service.to_owned(),
                reason: outcome.to_owned(),
            })
            .inc_by(count as u64);
    }

    /// The server answered an HTTP request with `status`.
    pub fn http_response(&self, status: u16) {
        self.http_responses
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// The metrics as Prometheus text, with the room and client gauges set
    /// from `occupancy` (per service: live rooms, connected clients).
    pub fn render(&self, occupancy: impl IntoIterator<Item = (String, usize, usize)>) -> String {
        let _one_at_a_time = self
            .rendering
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.rooms.clear();
        self.clients.clear();
        for (service, rooms, clients) in occupancy {
            let label = ServiceLabel { service };
            self.rooms.get_or_create(&label).set(gauge(rooms));
            self.clients.get_or_create(&label).set(gauge(clients));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

fn gauge(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        metrics.frame_in(10);
        metrics.connection_refused("room_limit");
        metrics.callback("chat", "message", Duration::from_micros(50));
        let text = metrics.render([("chat".to_owned(), 2, 5)]);
        assert!(text.contains("roomhost_frames_in_total 1"), "{text}");
        assert!(text.contains("roomhost_bytes_in_total 10"), "{text}");
        assert!(
            text.contains(r#"roomhost_rooms{service="chat"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"roomhost_clients{service="chat"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"roomhost_connections_refused_total{reason="room_limit"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"roomhost_callback_duration_seconds_count{service="chat",callback="message"} 1"#
            ),
            "{text}"
        );
    }
}
