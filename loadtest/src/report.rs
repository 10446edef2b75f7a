//! What a run tells its user: the once-a-second [`Progress`] snapshot and the final
//! [`Report`], printable as a human table ([`Display`](std::fmt::Display)) or as JSON
//! ([`Report::to_json`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::Serialize;

use crate::client::Shared;
use crate::os_limits::FileLimit;
use crate::stats::Histogram;
use crate::timeline::Phase;

/// A snapshot of a run in progress, passed to the progress callback about once a second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Current phase.
    pub phase: Phase,
    /// Connections started so far.
    pub attempted: u64,
    /// Connections open now.
    pub connected: u64,
    /// Connections that failed to open.
    pub failed: u64,
    /// Connections planned in total.
    pub planned: u64,
    /// Frames sent in the measurement window so far.
    pub sent: u64,
    /// Window frames delivered so far.
    pub delivered: u64,
    /// Errors so far.
    pub errors: u64,
    /// 99th-percentile delivery latency so far, in milliseconds.
    pub p99_ms: Option<f64>,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>6.1}s {:<9}  connected {}/{} ({} failed)  sent {}  delivered {}  p99 {}  errors {}",
            self.elapsed.as_secs_f64(),
            self.phase,
            self.connected,
            self.planned,
            self.failed,
            self.sent,
            self.delivered,
            Ms(self.p99_ms),
            self.errors,
        )
    }
}

impl Progress {
    pub(crate) fn snapshot(shared: &Shared, elapsed: Duration, phase: Phase) -> Self {
        let counters = &shared.stats.counters;
        Progress {
            elapsed,
            phase,
            attempted: counters.attempted.load(Relaxed),
            connected: counters.open.load(Relaxed),
            failed: counters.failed.load(Relaxed),
            planned: u64::from(shared.plan.connections()),
            sent: counters.sent.load(Relaxed),
            delivered: counters.delivered.load(Relaxed),
            errors: shared.stats.error_count(),
            p99_ms: shared.stats.latency.snapshot().percentile(99.0).map(ms),
        }
    }
}

/// The result of a run. Rates are per second of the measurement window; message counts cover
/// frames stamped with a time in the window (and their deliveries, whenever they arrived).
/// At a fixed rate a frame is stamped with its scheduled send time, at `--rate 0` with the
/// time it was handed to the socket ([`latency_from`](Self::latency_from)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The room URLs, e.g. `ws://127.0.0.1:8080/ws/load-{0..9}`.
    pub target: String,
    /// Rooms.
    pub rooms: u32,
    /// Clients per room.
    pub clients_per_room: u32,
    /// Send rate per client; `None` = unlimited (bounded by `max_in_flight`).
    pub rate_per_client: Option<f64>,
    /// In-flight window per client in unlimited mode.
    pub max_in_flight: u32,
    /// Frame size in bytes.
    pub payload_bytes: usize,
    /// Binary frames (else text).
    pub binary: bool,
    /// Ramp-up, in seconds.
    pub ramp_up_secs: f64,
    /// Warm-up, in seconds.
    pub warmup_secs: f64,
    /// The measurement window, in seconds.
    pub measured_secs: f64,
    /// Connection counts and handshake time.
    pub connections: ConnectionReport,
    /// Frames sent, delivered and expected.
    pub messages: MessageReport,
    /// Delivery latency of window frames, sender to each receiver.
    pub latency_ms: LatencySummary,
    /// What latency is measured from.
    pub latency_from: LatencyOrigin,
    /// Errors by kind (connect, handshake, send, receive, echo timeouts).
    pub errors: BTreeMap<String, u64>,
    /// Connections the server closed, by close code.
    pub closes: Vec<CloseReport>,
    /// The open-files limit the run had, when known.
    pub open_files_limit: Option<FileLimit>,
    /// The generator's own CPU time (user + system) over the measurement window, when the OS
    /// reports it: on a machine it shares with the server, how much of the cores it took.
    pub generator_cpu_secs: Option<f64>,
    /// Things that make the numbers less trustworthy (limits exceeded, clients that hung).
    pub warnings: Vec<String>,
}

/// Where a frame's latency starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyOrigin {
    /// The time the client's fixed-rate schedule said to send it (as wrk2 does): waiting to
    /// send, on a full socket or a busy core, counts as latency.
    ScheduledSend,
    /// The time it was handed to the socket (`--rate 0`, which has no schedule).
    Send,
}

impl fmt::Display for LatencyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            LatencyOrigin::ScheduledSend => "from scheduled send times",
            LatencyOrigin::Send => "from send times",
        })
    }
}

/// Connection counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionReport {
    /// Connections started.
    pub attempted: u64,
    /// Connections whose WebSocket handshake completed.
    pub established: u64,
    /// Connections that failed to open (see `errors`).
    pub failed: u64,
    /// Connections still open when the run stopped them.
    pub open_at_end: u64,
    /// TCP connect + WebSocket handshake time.
    pub connect_ms: LatencySummary,
}

/// Message counts and rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageReport {
    /// Frames sent in the measurement window (stamped with a time in it).
    pub sent: u64,
    /// `sent` per second.
    pub sent_per_sec: f64,
    /// Deliveries of window frames (one per receiving client).
    pub delivered: u64,
    /// `delivered` per second.
    pub delivered_per_sec: f64,
    /// Deliveries expected: for each frame sent and each send skipped, the clients in its
    /// room at the time.
    pub expected_deliveries: u64,
    /// `delivered / expected_deliveries`.
    pub delivery_ratio: Option<f64>,
    /// The fan-out the scenario asks for (clients per room).
    pub fanout_expected: u32,
    /// The fan-out observed: `delivered / sent`.
    pub fanout_actual: Option<f64>,
    /// Frames received that are not loadtest frames (greetings, replies, other protocols),
    /// in any phase.
    pub other_frames: u64,
    /// Sends scheduled in the measurement window and never made, because the client fell
    /// more than a second behind its schedule or was still stuck in an earlier send at the
    /// end. They are not in `sent`; their deliveries are expected and never arrive.
    pub sends_skipped: u64,
}

/// Percentiles of a latency histogram, in milliseconds (`None` when nothing was recorded).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub samples: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds.
    pub fn from_micros(histogram: &Histogram) -> Self {
        LatencySummary {
            samples: histogram.count(),
            p50: histogram.percentile(50.0).map(ms),
            p90: histogram.percentile(90.0).map(ms),
            p99: histogram.percentile(99.0).map(ms),
            max: histogram.max().map(ms),
            mean: histogram.mean().map(|us| us / 1000.0),
        }
    }
}

/// Connections the server closed with one code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloseReport {
    /// The close code (1005 when the close frame had none).
    pub code: u16,
    /// How many connections.
    pub count: u64,
    /// The first non-empty reason given with this code.
    pub reason: String,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

impl Report {
    pub(crate) fn build(
        shared: &Shared,
        open_at_end: u64,
        open_files_limit: Option<FileLimit>,
        generator_cpu_secs: Option<f64>,
        warnings: Vec<String>,
    ) -> Self {
        let config = shared.plan.config();
        let counters = &shared.stats.counters;
        let secs = config.duration.as_secs_f64();
        let sent = counters.sent.load(Relaxed);
        let delivered = counters.delivered.load(Relaxed);
        let expected = counters.expected.load(Relaxed);
        let mut warnings = warnings;
        if sent > 0 && delivered == 0 {
            warnings.push(
                "no loadtest frame came back: the rooms do not seem to broadcast frames as they \
                 are, which this workload assumes"
                    .to_owned(),
            );
        }
        Report {
            target: shared.plan.url_pattern(),
            rooms: config.rooms,
            clients_per_room: config.clients_per_room,
            rate_per_client: (config.rate > 0.0).then_some(config.rate),
            max_in_flight: config.max_in_flight,
            payload_bytes: config.payload_bytes,
            binary: config.binary,
            ramp_up_secs: config.ramp_up.as_secs_f64(),
            warmup_secs: config.warmup.as_secs_f64(),
            measured_secs: secs,
            connections: ConnectionReport {
                attempted: counters.attempted.load(Relaxed),
                established: counters.established.load(Relaxed),
                failed: counters.failed.load(Relaxed),
                open_at_end,
                connect_ms: LatencySummary::from_micros(&shared.stats.connect.snapshot()),
            },
            messages: MessageReport {
                sent,
                sent_per_sec: sent as f64 / secs,
                delivered,
                delivered_per_sec: delivered as f64 / secs,
                expected_deliveries: expected,
                delivery_ratio: ratio(delivered, expected),
                fanout_expected: config.clients_per_room,
                fanout_actual: ratio(delivered, sent),
                other_frames: counters.other_frames.load(Relaxed),
                sends_skipped: counters.sends_skipped.load(Relaxed),
            },
            latency_ms: LatencySummary::from_micros(&shared.stats.latency.snapshot()),
            latency_from: if config.rate > 0.0 {
                LatencyOrigin::ScheduledSend
            } else {
                LatencyOrigin::Send
            },
            errors: shared.stats.errors(),
            closes: shared
                .stats
                .closes()
                .into_iter()
                .map(|(code, tally)| CloseReport {
                    code,
                    count: tally.count,
                    reason: tally.reason,
                })
                .collect(),
            open_files_limit,
            generator_cpu_secs,
            warnings,
        }
    }

    /// The report as pretty-printed JSON (field names as in this struct; latencies in ms,
    /// `null` where nothing was measured).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Total errors of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Connections the server closed with `code`.
    pub fn closes_with(&self, code: u16) -> u64 {
        self.closes
            .iter()
            .filter(|close| close.code == code)
            .map(|close| close.count)
            .sum()
    }
}

/// Milliseconds with three decimals, or `-`.
struct Ms(Option<f64>);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ms) => write!(f, "{ms:.3} ms"),
            None => f.write_str("-"),
        }
    }
}

struct Percent(Option<f64>);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(r) => write!(f, "{:.1} %", r * 100.0),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.samples == 0 {
            return f.write_str("no samples");
        }
        write!(
            f,
            "p50 {}  p90 {}  p99 {}  max {}  ({} samples)",
            Ms(self.p50),
            Ms(self.p90),
            Ms(self.p99),
            Ms(self.max),
            self.samples
        )
    }
}

/// The human table.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = match self.rate_per_client {
            Some(rate) => format!("{rate} msg/s per client"),
            None => format!(
                "unlimited rate ({} in flight per client)",
                self.max_in_flight
            ),
        };
        let kind = if self.binary { "binary" } else { "text" };
        writeln!(f, "target        {}", self.target)?;
        writeln!(
            f,
            "scenario      {} rooms × {} clients, {rate}, {} B {kind} frames",
            self.rooms, self.clients_per_room, self.payload_bytes
        )?;
        writeln!(
            f,
            "timing        {:.1} s measured after {:.1} s ramp-up and {:.1} s warm-up",
            self.measured_secs, self.ramp_up_secs, self.warmup_secs
        )?;
        let c = &self.connections;
        writeln!(
            f,
            "connections   {} attempted, {} established, {} failed, {} open at the end",
            c.attempted, c.established, c.failed, c.open_at_end
        )?;
        writeln!(f, "connect time  {}", c.connect_ms)?;
        let m = &self.messages;
        writeln!(f, "sent          {} ({:.1}/s)", m.sent, m.sent_per_sec)?;
        writeln!(
            f,
            "delivered     {} ({:.1}/s) of {} expected ({})",
            m.delivered,
            m.delivered_per_sec,
            m.expected_deliveries,
            Percent(m.delivery_ratio)
        )?;
        let fanout = m
            .fanout_actual
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
        writeln!(
            f,
            "fan-out       {fanout} per frame (scenario: {})",
            m.fanout_expected
        )?;
        writeln!(
            f,
            "latency       {}  {}",
            self.latency_ms, self.latency_from
        )?;
        writeln!(f, "other frames  {}", m.other_frames)?;
        if let Some(cpu) = self.generator_cpu_secs
            && self.measured_secs > 0.0
        {
            writeln!(
                f,
                "generator CPU {cpu:.2} s ({:.0} % of a core over the window)",
                cpu / self.measured_secs * 100.0
            )?;
        }
        if m.sends_skipped > 0 {
            writeln!(
                f,
                "skipped sends {} scheduled in the window and never made (clients fell over \
                 1 s behind, or were stuck in a send): counted as lost",
                m.sends_skipped
            )?;
        }
        if self.errors.is_empty() {
            writeln!(f, "errors        none")?;
        } else {
            writeln!(f, "errors")?;
            for (kind, count) in &self.errors {
                writeln!(f, "  {count:>8}  {kind}")?;
            }
        }
        if self.closes.is_empty() {
            writeln!(f, "server closes none")?;
        } else {
            writeln!(f, "server closes")?;
            for close in &self.closes {
                write!(f, "  {}: {}", close.code, close.count)?;
                if !close.reason.is_empty() {
                    write!(f, "  ({:?})", close.reason)?;
                }
                writeln!(f)?;
            }
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}
