//! The run's time base and phases.
//!
//! Every payload timestamp is microseconds since one monotonic origin ([`Instant`]) shared by
//! all clients of the process, so a receiver computes delivery latency without any clock sync.
//! From the origin: connections open evenly over the ramp-up, traffic then runs unmeasured for
//! the warm-up, then the measurement window; after it, a drain waits for frames in flight.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::LoadConfig;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Opening connections.
    RampUp,
    /// Traffic flows but is not measured.
    WarmUp,
    /// The measurement window.
    Measuring,
    /// Waiting for frames still in flight.
    Draining,
    /// Closing the connections.
    Closing,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Phase::RampUp => "ramp-up",
            Phase::WarmUp => "warm-up",
            Phase::Measuring => "measuring",
            Phase::Draining => "draining",
            Phase::Closing => "closing",
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeline {
    origin: Instant,
    ramp_up: Duration,
    measure_start_us: u64,
    measure_end_us: u64,
    measure_start: Instant,
    measure_end: Instant,
    drain_end: Instant,
}

impl Timeline {
    pub(crate) fn new(origin: Instant, config: &LoadConfig) -> Self {
        let measure_start = origin + config.ramp_up + config.warmup;
        let measure_end = measure_start + config.duration;
        let micros = |at: Instant| saturating_micros(at - origin);
        Timeline {
            origin,
            ramp_up: config.ramp_up,
            measure_start_us: micros(measure_start),
            measure_end_us: micros(measure_end),
            measure_start,
            measure_end,
            drain_end: measure_end + config.drain,
        }
    }

    /// Microseconds from the origin to `at` (0 before it).
    pub(crate) fn micros(&self, at: Instant) -> u64 {
        saturating_micros(at.saturating_duration_since(self.origin))
    }

    /// Whether a frame stamped `sent_us` belongs to the measurement window.
    pub(crate) fn in_window(&self, sent_us: u64) -> bool {
        (self.measure_start_us..self.measure_end_us).contains(&sent_us)
    }

    /// How many of the `count` sends scheduled at `first`, `first + period`, `first + 2 ×
    /// period`, ... would have been stamped inside the measurement window (by
    /// [`in_window`](Self::in_window) of their [`micros`](Self::micros)).
    pub(crate) fn scheduled_in_window(&self, first: Instant, period: Duration, count: u64) -> u64 {
        let period = period.as_nanos().max(1);
        let first = first.saturating_duration_since(self.origin).as_nanos();
        // A stamp is micros rounded down, so it is in [start_us, end_us) exactly when the time
        // in nanoseconds is in [start_us × 1000, end_us × 1000).
        let start = u128::from(self.measure_start_us) * 1000;
        let end = u128::from(self.measure_end_us) * 1000;
        // Sends k = 0, 1, ... with first + k × period < bound: ceil((bound - first) / period).
        let before = |bound: u128| bound.saturating_sub(first).div_ceil(period);
        let count = u128::from(count);
        let in_window = before(end).min(count) - before(start).min(count);
        u64::try_from(in_window).unwrap_or(u64::MAX)
    }

    /// When client `index` of `total` connects: evenly spread over the ramp-up.
    pub(crate) fn connect_at(&self, index: u32, total: u32) -> Instant {
        let fraction = f64::from(index) / f64::from(total.max(1));
        self.origin + self.ramp_up.mul_f64(fraction)
    }

    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    pub(crate) fn measure_start(&self) -> Instant {
        self.measure_start
    }

    pub(crate) fn measure_end(&self) -> Instant {
        self.measure_end
    }

    pub(crate) fn drain_end(&self) -> Instant {
        self.drain_end
    }

    /// The phase at `now` (closing is decided by the coordinator, not the clock).
    pub(crate) fn phase(&self, now: Instant) -> Phase {
        if now < self.origin + self.ramp_up {
            Phase::RampUp
        } else if now < self.measure_start {
            Phase::WarmUp
        } else if now < self.measure_end {
            Phase::Measuring
        } else {
            Phase::Draining
        }
    }
}

/// Whole microseconds of `duration`, saturating at `u64::MAX`.
pub(crate) fn saturating_micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_window() {
        let origin = Instant::now();
        let config = LoadConfig {
            ramp_up: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            drain: Duration::from_secs(1),
            ..LoadConfig::default()
        };
        let timeline = Timeline::new(origin, &config);
        let at = |secs: f64| origin + Duration::from_secs_f64(secs);
        assert_eq!(timeline.phase(at(0.5)), Phase::RampUp);
        assert_eq!(timeline.phase(at(2.5)), Phase::WarmUp);
        assert_eq!(timeline.phase(at(3.0)), Phase::Measuring);
        assert_eq!(timeline.phase(at(8.0)), Phase::Draining);
        assert!(!timeline.in_window(2_999_999));
        assert!(timeline.in_window(3_000_000));
        assert!(timeline.in_window(7_999_999));
        assert!(!timeline.in_window(8_000_000));
        assert_eq!(timeline.connect_at(0, 4), origin);
        assert_eq!(timeline.connect_at(2, 4), at(1.0));
        assert!(timeline.connect_at(3, 4) < at(2.0));
        assert_eq!(timeline.drain_end(), at(9.0));
    }

    #[test]
    fn scheduled_sends_are_counted_by_the_window_they_fall_in() {
        let origin = Instant::now();
        let config = LoadConfig {
            ramp_up: Duration::ZERO,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            ..LoadConfig::default()
        };
        let timeline = Timeline::new(origin, &config);
        let at = |secs: f64| origin + Duration::from_secs_f64(secs);
        let tenth = Duration::from_millis(100);
        // 0.5 s, 0.6 s, ... 3.4 s: the window [1 s, 3 s) holds 1.0 ... 2.9.
        assert_eq!(timeline.scheduled_in_window(at(0.5), tenth, 30), 20);
        // Entirely before, entirely after, and cut by the count.
        assert_eq!(timeline.scheduled_in_window(at(0.0), tenth, 10), 0);
        assert_eq!(timeline.scheduled_in_window(at(3.0), tenth, 10), 0);
        assert_eq!(timeline.scheduled_in_window(at(1.0), tenth, 5), 5);
        assert_eq!(timeline.scheduled_in_window(at(2.95), tenth, 5), 1);
        // "Every send until the end", as for a client stuck in a send.
        assert_eq!(timeline.scheduled_in_window(at(2.0), tenth, u64::MAX), 10);
        assert_eq!(timeline.scheduled_in_window(at(1.0), tenth, 0), 0);
        // The boundaries agree with in_window.
        for (secs, inside) in [
            (0.999_999, false),
            (1.0, true),
            (2.999_999, true),
            (3.0, false),
        ] {
            assert_eq!(
                timeline.scheduled_in_window(at(secs), tenth, 1),
                u64::from(inside),
                "{secs}"
            );
            assert_eq!(
                timeline.in_window(timeline.micros(at(secs))),
                inside,
                "{secs}"
            );
        }
    }
}
