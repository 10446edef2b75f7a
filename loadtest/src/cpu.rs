//! The generator's own CPU time over the measurement window.
//!
//! A load generator on the server's machine competes with it for the cores,
//! and over loopback some of the server's work is charged to it (a
//! segment's receive path runs in the sender's system call, so a server
//! that sends fewer, later segments moves cost to the receiver). The
//! report's [`generator_cpu_secs`](crate::Report::generator_cpu_secs) lets a
//! benchmark add the two for the machine's cost, and shows when the
//! generator itself was the bottleneck.

use std::time::Duration;

/// User plus system CPU time of this process so far, when the OS says.
// The getrusage call below is, with the rlimit calls in `os_limits`, the
// crate's only unsafe code.
#[allow(unsafe_code)]
pub(crate) fn process_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: `getrusage` writes into the zeroed struct it is given and
        // reads nothing else.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; the struct lives for the call.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let time = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).ok()?)
                .checked_add(Duration::from_micros(u64::try_from(t.tv_usec).ok()?))
        };
        time(usage.ru_utime)?.checked_add(time(usage.ru_stime)?)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The CPU time spent between two readings.
#[derive(Debug, Default)]
pub(crate) struct CpuWindow {
    start: Option<Duration>,
    end: Option<Duration>,
}

impl CpuWindow {
    /// Whether the start was read.
    pub(crate) fn started(&self) -> bool {
        self.start.is_some()
    }

    /// Reads the start.
    pub(crate) fn start(&mut self) {
        self.start = process_time();
    }

    /// Reads the end.
    pub(crate) fn end(&mut self) {
        self.end = process_time();
    }

    /// Seconds between the readings, when both were taken.
    pub(crate) fn secs(&self) -> Option<f64> {
        Some(self.end?.checked_sub(self.start?)?.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_busy_loop_shows_as_cpu_time() {
        let mut window = CpuWindow::default();
        assert_eq!(window.secs(), None);
        window.start();
        assert!(window.started());
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        window.end();
        let secs = window.secs().expect("both readings");
        assert!(secs > 0.01, "{secs} s of CPU for a 50 ms spin");
    }
}
