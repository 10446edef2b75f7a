//! What a run counts: a log-bucketed latency [`Histogram`] (and a lock-free version every
//! client records into), message and connection counters, errors by kind and closes by code.
//!
//! Everything the clients touch per frame is an atomic add; only errors and closes (rare by
//! nature) take a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// Sub-buckets per power of two: values are kept to within 1/32 (about 3 %).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values at or above 2⁴⁰ (12.7 days in µs) land in the last bucket.
const MAX_BITS: u32 = 40;
const BUCKETS: usize = SUB + (MAX_BITS as usize - SUB_BITS as usize) * SUB;

fn bucket_of(value: u64) -> usize {
    let value = value.min((1 << MAX_BITS) - 1);
    if value < 2 * SUB as u64 {
        return value as usize;
    }
    let bits = 64 - value.leading_zeros();
    let shift = bits - SUB_BITS - 1;
    // The top SUB_BITS+1 bits of the value: in [SUB, 2·SUB).
    let mantissa = (value >> shift) as usize;
    SUB + shift as usize * SUB + (mantissa - SUB)
}

/// The largest value that falls in `bucket`.
fn bucket_high(bucket: usize) -> u64 {
    if bucket < 2 * SUB {
        return bucket as u64;
    }
    let shift = (bucket - SUB) / SUB;
    let mantissa = (SUB + (bucket - SUB) % SUB) as u64;
    ((mantissa + 1) << shift) - 1
}

/// A histogram of non-negative integers (the loadtest records microseconds) with logarithmic
/// buckets: values below 64 are exact, larger ones are kept to within 1/32 of their value.
///
/// ```
/// use roomhost_loadtest::Histogram;
///
/// let mut latencies = Histogram::new();
/// for micros in 1..=1000 {
///     latencies.record(micros);
/// }
/// assert_eq!(latencies.count(), 1000);
/// assert_eq!(latencies.percentile(50.0), Some(503)); // 500, within 1/32
/// assert_eq!(latencies.max(), Some(1000));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            max: 0,
            sum: 0,
        }
    }

    /// Adds one value.
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.count += 1;
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (exact), or `None` when empty.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The mean (exact), or `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The value at percentile `p` (0–100): the smallest recorded value such that at least
    /// `p` % of the values are at or below it, rounded up to its bucket's upper edge (and never
    /// above the exact maximum). `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let p = if p.is_nan() {
            100.0
        } else {
            p.clamp(0.0, 100.0)
        };
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_high(bucket).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }
}

/// The lock-free histogram every client records into; [`snapshot`](Self::snapshot) reads it
/// into a [`Histogram`] for percentiles.
pub(crate) struct AtomicHistogram {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
    sum: AtomicU64,
}

impl AtomicHistogram {
    pub(crate) fn new() -> Self {
        AtomicHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, value: u64) {
        self.counts[bucket_of(value)].fetch_add(1, Relaxed);
        self.max.fetch_max(value, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    /// A copy; the count is the sum of the buckets, so percentiles stay consistent even while
    /// clients record.
    pub(crate) fn snapshot(&self) -> Histogram {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        Histogram {
            count: counts.iter().sum(),
            counts,
            max: self.max.load(Relaxed),
            sum: u128::from(self.sum.load(Relaxed)),
        }
    }
}

/// Distinct error kinds kept; more land under one overflow key, so a server that sends
/// endlessly varied protocol errors cannot grow the map.
const MAX_ERROR_KINDS: usize = 64;
const OVERFLOW_KIND: &str = "other (too many distinct errors)";
/// Close reasons are at most 123 bytes on the wire; keep one sample per code.
const MAX_REASON_BYTES: usize = 123;

/// How many times the server closed connections with one code, and one reason it gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CloseTally {
    pub count: u64,
    pub reason: String,
}

/// Every counter of a run, shared by all clients.
#[derive(Default)]
pub(crate) struct Counters {
    pub attempted: AtomicU64,
    pub established: AtomicU64,
    pub failed: AtomicU64,
    /// Connections open right now.
    pub open: AtomicU64,
    /// Clients whose writer has not yet reached the end of the measurement window: until it
    /// has, the window's sends (and skipped sends) are not all counted.
    pub writing: AtomicU64,
    /// Frames sent (or being sent) in the measurement window: stamped with a time in it.
    pub sent: AtomicU64,
    /// Loadtest frames received that were sent in the measurement window.
    pub delivered: AtomicU64,
    /// For each frame sent in the window, and each send skipped in it, the number of clients
    /// in its room at the time.
    pub expected: AtomicU64,
    /// Frames received that are not loadtest frames (greetings, errors, other protocols).
    pub other_frames: AtomicU64,
    /// Sends scheduled in the measurement window and never made: the client fell more than a
    /// second behind its schedule, or was still stuck in an earlier send at the end.
    pub sends_skipped: AtomicU64,
}

/// Counters plus the histograms, errors and closes.
pub(crate) struct Stats {
    pub counters: Counters,
    /// Delivery latency of window frames, in µs.
    pub latency: AtomicHistogram,
    /// TCP connect + WebSocket handshake, in µs.
    pub connect: AtomicHistogram,
    errors: Mutex<BTreeMap<String, u64>>,
    closes: Mutex<BTreeMap<u16, CloseTally>>,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            counters: Counters::default(),
            latency: AtomicHistogram::new(),
            connect: AtomicHistogram::new(),
            errors: Mutex::new(BTreeMap::new()),
            closes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one error of `kind` (a short, stable description such as
    /// `connect: connection refused`).
    pub(crate) fn error(&self, kind: String) {
        // A panicking client cannot leave the map half-updated: a poisoned lock is still usable.
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        let key = if errors.len() >= MAX_ERROR_KINDS && !errors.contains_key(&kind) {
            OVERFLOW_KIND.to_owned()
        } else {
            kind
        };
        *errors.entry(key).or_default() += 1;
    }

    /// Counts one close initiated by the server.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        let mut closes = self.closes.lock().unwrap_or_else(PoisonError::into_inner);
        let tally = closes.entry(code).or_default();
        tally.count += 1;
        if tally.reason.is_empty() && !reason.is_empty() {
            let mut end = reason.len().min(MAX_REASON_BYTES);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            tally.reason = reason[..end].to_owned();
        }
    }

    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn error_count(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    pub(crate) fn closes(&self) -> BTreeMap<u16, CloseTally> {
        self.closes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut previous = 0;
        for value in 0..100_000u64 {
            let bucket = bucket_of(value);
            assert!(bucket == previous || bucket == previous + 1, "{value}");
            assert!(bucket_high(bucket) >= value, "{value}");
            previous = bucket;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=60 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(30));
        assert_eq!(h.percentile(90.0), Some(54));
        assert_eq!(h.percentile(100.0), Some(60));
        assert_eq!(h.percentile(0.0), Some(1));
        assert_eq!(h.mean(), Some(30.5));
    }

    #[test]
    fn percentiles_are_within_relative_error() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (p, exact) in [(50.0, 50_000.0), (90.0, 90_000.0), (99.0, 99_000.0)] {
            let got = h.percentile(p).expect("non-empty") as f64;
            assert!(got >= exact, "p{p}: {got} below {exact}");
            assert!(got <= exact * (1.0 + 1.0 / 32.0), "p{p}: {got} vs {exact}");
        }
        assert_eq!(h.percentile(100.0), Some(100_000));
        assert_eq!(h.max(), Some(100_000));
    }

    #[test]
    fn percentile_of_a_skewed_distribution_finds_the_tail() {
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record(1_000);
        }
        for _ in 0..10 {
            h.record(250_000);
        }
        assert!(h.percentile(50.0).expect("p50") <= 1_031);
        assert!(h.percentile(99.0).expect("p99") <= 1_031);
        let p999 = h.percentile(99.9).expect("p99.9");
        assert!((250_000..=257_813).contains(&p999), "{p999}");
        assert_eq!(h.max(), Some(250_000));
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let h = Histogram::new();
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(h.max(), None);
        assert_eq!(h.mean(), None);
    }

    #[test]
    fn merge_and_atomic_snapshot_agree() {
        let atomic = AtomicHistogram::new();
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..5_000u64 {
            atomic.record(v * 7);
            if v % 2 == 0 {
                a.record(v * 7);
            } else {
                b.record(v * 7);
            }
        }
        a.merge(&b);
        assert_eq!(atomic.snapshot(), a);
    }

    #[test]
    fn error_kinds_are_bounded() {
        let stats = Stats::new();
        for i in 0..200 {
            stats.error(format!("protocol: variant {i}"));
        }
        stats.error("protocol: variant 3".into());
        let errors = stats.errors();
        assert_eq!(errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(errors["protocol: variant 3"], 2);
        assert_eq!(errors[OVERFLOW_KIND], 200 - MAX_ERROR_KINDS as u64);
        assert_eq!(stats.error_count(), 201);
    }

    #[test]
    fn closes_keep_count_and_first_reason() {
        let stats = Stats::new();
        stats.close(1008, "");
        stats.close(1008, "slow consumer");
        stats.close(1008, "other");
        stats.close(4000, &"é".repeat(100));
        let closes = stats.closes();
        assert_eq!(closes[&1008].count, 3);
        assert_eq!(closes[&1008].reason, "slow consumer");
        assert!(closes[&4000].reason.len() <= MAX_REASON_BYTES);
    }
}
