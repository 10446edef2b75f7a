//! The epoch thread: advances the engine's epoch while guest code runs, every
//! [`EPOCH_TICK`] while a call is running and every [`SPARSE_TICK`] while
//! calls come and go, and sleeps when none has for a while.
//!
//! Epoch ticks are what make a running call check its time slice and its
//! deadline (the `slice` module); between calls they do nothing. A thread
//! that ticked every millisecond regardless woke the server 1,000 times a
//! second when idle, and cost a context switch per tick under light load
//! (issue 19). So every poll of a guest call marks itself here, and:
//!
//! - a tick that finds a call running ticks again after [`EPOCH_TICK`]: a
//!   long call checks its slice every millisecond, as before;
//! - a tick that finds none running, though calls were polled since the
//!   last one, ticks again after [`SPARSE_TICK`]. Calls are mostly far
//!   shorter than a tick: a room called 2,000 times a second kept the
//!   thread at 1,000 wake-ups a second, about 7 % of the server's CPU, for
//!   ticks that found nothing to check. A call that starts in a sparse
//!   interval gets its first check at most [`SPARSE_TICK`] later (one
//!   slice), then one every [`EPOCH_TICK`], so its first slice can run to
//!   about 3 ms instead of 2;
//! - after [`IDLE_TICKS`] sparse ticks with no poll the thread parks, and
//!   the next poll to start wakes it. A call polled before the thread parks
//!   is seen by its last check, and one polled after it sees it parked and
//!   wakes it: either way the call's first tick comes about [`EPOCH_TICK`]
//!   after its start (plus the thread's wake-up).

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, Thread};
use std::time::Duration;

use wasmtime::Engine;

use super::slice::EPOCH_TICK;

/// The tick after one that found no call running, though calls were
/// polled: the longest a call that starts then waits for its first check.
pub(crate) const SPARSE_TICK: Duration = Duration::from_millis(2);

/// Sparse ticks in a row with no guest poll before the thread parks: a
/// server whose rooms call in more often than every ~6 ms keeps it ticking
/// (one wake-up per call would cost more than the ticks).
const IDLE_TICKS: u32 = 3;

#[derive(Debug, Default)]
struct Shared {
    /// Guest calls being polled now.
    running: AtomicUsize,
    /// Set by every poll, cleared by every tick: a tick that finds it clear
    /// and nothing running was idle.
    polled: AtomicBool,
    /// The thread is parked or about to: the next poll must wake it.
    parked: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
}

/// Marks guest polls for the epoch thread. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ticks(Arc<Shared>);

/// A poll of guest code in progress; dropping it ends the poll.
pub(crate) struct Polling<'a>(&'a Shared);

impl Ticks {
    /// Marks the start of a poll of guest code, waking the thread if it
    /// sleeps.
    pub(crate) fn polling(&self) -> Polling<'_> {
        let shared = &*self.0;
        shared.running.fetch_add(1, Ordering::SeqCst);
        // Written once per tick at most: polls in between only read it, so
        // the cache line is not bounced between cores on every call.
        if !shared.polled.load(Ordering::Relaxed) {
            shared.polled.store(true, Ordering::Relaxed);
        }
        if shared.parked.load(Ordering::SeqCst)
            && let Some(thread) = shared.thread.get()
        {
            thread.unpark();
        }
        Polling(shared)
    }
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Owns the epoch thread, which stops when this is dropped.
pub(crate) struct EpochTicker(Ticks);

impl EpochTicker {
    /// Starts the thread for `engine`.
    pub(crate) fn start(engine: Engine) -> std::io::Result<EpochTicker> {
        let ticks = Ticks::default();
        let shared = ticks.0.clone();
        let thread = thread::Builder::new()
            .name("roomhost-epoch".into())
            .spawn(move || tick(&engine, &shared))?;
        // Set before any room exists: no poll can have missed it.
        let _ = ticks.0.thread.set(thread.thread().clone());
        Ok(EpochTicker(ticks))
    }

    /// The handle calls mark their polls with.
    pub(crate) fn ticks(&self) -> &Ticks {
        &self.0
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.0.0.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.0.0.thread.get() {
            thread.unpark();
        }
    }
}

fn tick(engine: &Engine, shared: &Shared) {
    let mut pace = Pace::default();
    while !shared.stop.load(Ordering::Relaxed) {
        thread::sleep(pace.interval);
        engine.increment_epoch();
        let polled = shared.polled.swap(false, Ordering::Relaxed);
        let running = shared.running.load(Ordering::SeqCst) > 0;
        if pace.after_tick(running, polled) == Next::Tick {
            continue;
        }
        shared.parked.store(true, Ordering::SeqCst);
        // A poll that started before `parked` was set is seen here; one
        // that starts after it sees `parked` and unparks (an unpark before
        // the park makes the park return at once).
        if shared.running.load(Ordering::SeqCst) == 0 && !shared.stop.load(Ordering::SeqCst) {
            thread::park();
        }
        shared.parked.store(false, Ordering::SeqCst);
        pace = Pace::default();
    }
}

/// When the thread ticks next; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pace {
    interval: Duration,
    /// Sparse ticks in a row with no poll.
    idle: u32,
}

/// What the thread does after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Sleep [`Pace::interval`] and tick again.
    Tick,
    /// Park until a poll starts.
    Park,
}

impl Default for Pace {
    /// Woken for a call: its first check a tick after it started.
    fn default() -> Pace {
        Pace {
            interval: EPOCH_TICK,
            idle: 0,
        }
    }
}

impl Pace {
    /// Sets the next interval from what the tick saw: a call `running` now,
    /// and whether any was `polled` since the last tick.
    fn after_tick(&mut self, running: bool, polled: bool) -> Next {
        if running {
            *self = Pace::default();
            return Next::Tick;
        }
        self.interval = SPARSE_TICK;
        if polled {
            self.idle = 0;
            return Next::Tick;
        }
        self.idle += 1;
        if self.idle < IDLE_TICKS {
            Next::Tick
        } else {
            Next::Park
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting until {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_thread_parks_when_idle_and_ticks_again_for_a_poll() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let ticker = EpochTicker::start(engine).unwrap();
        let shared = &ticker.ticks().0;
        wait_until("the idle thread parks", || {
            shared.parked.load(Ordering::SeqCst)
        });

        // A long poll keeps it ticking past the idle ticks.
        let poll = ticker.ticks().polling();
        wait_until("the poll wakes it", || {
            !shared.parked.load(Ordering::SeqCst)
        });
        thread::sleep(SPARSE_TICK * (IDLE_TICKS * 3));
        assert!(
            !shared.parked.load(Ordering::SeqCst),
            "parked during a poll"
        );
        drop(poll);
        wait_until("it parks again", || shared.parked.load(Ordering::SeqCst));
    }

    #[test]
    fn a_running_call_is_checked_every_tick_and_sparse_calls_every_sparse_tick() {
        let mut pace = Pace::default();
        // A call runs across the tick: the next comes a tick later.
        assert_eq!(pace.after_tick(true, true), Next::Tick);
        assert_eq!(pace.interval, EPOCH_TICK);
        // Calls came and went between ticks: sparse ticks.
        assert_eq!(pace.after_tick(false, true), Next::Tick);
        assert_eq!(pace.interval, SPARSE_TICK);
        // A call is running again: every tick.
        assert_eq!(pace.after_tick(true, false), Next::Tick);
        assert_eq!(pace.interval, EPOCH_TICK);
    }

    #[test]
    fn the_thread_parks_after_idle_sparse_ticks_only() {
        let mut pace = Pace::default();
        for _ in 1..IDLE_TICKS {
            assert_eq!(pace.after_tick(false, false), Next::Tick);
            assert_eq!(pace.interval, SPARSE_TICK);
        }
        // A poll between ticks starts the count again.
        assert_eq!(pace.after_tick(false, true), Next::Tick);
        for _ in 1..IDLE_TICKS {
            assert_eq!(pace.after_tick(false, false), Next::Tick);
        }
        assert_eq!(pace.after_tick(false, false), Next::Park);
    }
}
