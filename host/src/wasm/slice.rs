//! Fair time slices for guest calls.
//!
//! Every call into a plugin runs as a future on the tokio runtime. The
//! engine's epoch ticks every [`EPOCH_TICK`]; at each tick a running call
//! checks its CPU clock (the time it has spent being polled, not the time it
//! waited to be):
//!
//! - under [`SLICE`] since it last resumed: it goes on;
//! - past the room's call deadline in total: it is interrupted (the room is
//!   disposed, as before);
//! - otherwise it has used its slice: it yields to the scheduler, then waits
//!   for a **long-call lane** before it resumes.
//!
//! There are one fewer lanes than runtime workers (at least one), handed out
//! first come, first served, and a call gives its lane back at every slice.
//! So calls that run long take turns on at most `workers - 1` threads, and
//! one worker is always left for short calls: a quiet room's latency is
//! bounded by about a slice, whatever the busy rooms demand. Busy rooms
//! share what is left round-robin; their inboxes fill and push back on their
//! own clients, never on other rooms'. The deadline counts CPU time, so a
//! legal long call is not killed for having waited its turn.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::UpdateDeadline;

/// How often the engine's epoch advances: how often a running call checks
/// its clock.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How long a call runs before it yields to other rooms.
pub const SLICE: Duration = Duration::from_millis(2);

/// The long-call lanes of one engine.
#[derive(Clone)]
pub(crate) struct Lanes(Arc<Semaphore>);

impl Lanes {
    /// One lane fewer than the current runtime has workers (at least one);
    /// outside a runtime, one fewer than the machine has cores.
    pub(crate) fn for_this_runtime() -> Lanes {
        let workers = tokio::runtime::Handle::try_current()
            .map(|runtime| runtime.metrics().num_workers())
            .unwrap_or_else(|_| std::thread::available_parallelism().map_or(1, usize::from));
        Lanes(Arc::new(Semaphore::new(workers.saturating_sub(1).max(1))))
    }
}

/// The CPU clock of one room's calls, shared by the future that runs a call
/// (which starts and stops it around every poll) and the store's epoch
/// callback (which reads it). Times are nanoseconds since `base`.
pub(crate) struct CallClock {
    base: Instant,
    /// When the current poll started.
    poll_started: AtomicU64,
    /// CPU time of the current call in its finished polls.
    call: AtomicU64,
    /// CPU time of all the room's calls.
    total: AtomicU64,
    /// The lane the current call holds, if it has run long.
    lane: Mutex<Option<OwnedSemaphorePermit>>,
}

impl CallClock {
    pub(crate) fn new() -> Arc<CallClock> {
        Arc::new(CallClock {
            base: Instant::now(),
            poll_started: AtomicU64::new(0),
            call: AtomicU64::new(0),
            total: AtomicU64::new(0),
            lane: Mutex::new(None),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs one call: times every poll of `call`, and gives back the lane the
    /// call may have taken once it is over.
    pub(crate) async fn run<F: Future>(&self, call: F) -> F::Output {
        self.call.store(0, Ordering::Relaxed);
        let mut call = pin!(call);
        let output = poll_fn(|cx| {
            let started = self.now();
            self.poll_started.store(started, Ordering::Relaxed);
            let poll = call.as_mut().poll(cx);
            let spent = self.now().saturating_sub(started);
            self.call.fetch_add(spent, Ordering::Relaxed);
            self.total.fetch_add(spent, Ordering::Relaxed);
            poll
        })
        .await;
        self.release_lane();
        output
    }

    /// CPU time all the room's calls have used.
    pub(crate) fn total(&self) -> Duration {
        Duration::from_nanos(self.total.load(Ordering::Relaxed))
    }

    fn release_lane(&self) {
        let permit = self
            .lane
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        drop(permit);
    }

    /// The epoch callback's decision for the running call (see the module
    /// docs).
    pub(crate) fn on_tick(self: &Arc<Self>, lanes: &Lanes, deadline: Duration) -> UpdateDeadline {
        let now = self.now();
        let this_poll = now.saturating_sub(self.poll_started.load(Ordering::Relaxed));
        let used = self.call.load(Ordering::Relaxed).saturating_add(this_poll);
        if Duration::from_nanos(used) >= deadline {
            return UpdateDeadline::Interrupt;
        }
        if Duration::from_nanos(this_poll) < SLICE {
            return UpdateDeadline::Continue(1);
        }
        // Hand the lane on (if held), let other tasks run, then queue for a
        // lane again.
        self.release_lane();
        let clock = self.clone();
        let lanes = lanes.0.clone();
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                if let Ok(permit) = lanes.acquire_owned().await {
                    *clock
                        .lane
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(permit);
                }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_is_timed_and_gives_its_lane_back() {
        let clock = CallClock::new();
        let lanes = Lanes(Arc::new(Semaphore::new(1)));
        let value = clock
            .run(async {
                std::thread::sleep(Duration::from_millis(3));
                // A slice is used: the callback yields and queues for a lane.
                match clock.on_tick(&lanes, Duration::from_secs(1)) {
                    UpdateDeadline::YieldCustom(1, turn) => turn.await,
                    _ => panic!("expected a yield"),
                }
                assert_eq!(lanes.0.available_permits(), 0, "the call holds the lane");
                7
            })
            .await;
        assert_eq!(value, 7);
        assert_eq!(lanes.0.available_permits(), 1, "the lane is back");
        assert!(clock.total() >= Duration::from_millis(3));
    }

    #[tokio::test]
    async fn the_deadline_counts_cpu_time() {
        let clock = CallClock::new();
        let lanes = Lanes(Arc::new(Semaphore::new(1)));
        clock
            .run(async {
                assert!(matches!(
                    clock.on_tick(&lanes, Duration::from_secs(1)),
                    UpdateDeadline::Continue(1)
                ));
                std::thread::sleep(Duration::from_millis(5));
                assert!(matches!(
                    clock.on_tick(&lanes, Duration::from_millis(4)),
                    UpdateDeadline::Interrupt
                ));
            })
            .await;
    }
}
