//! Fair time slices for guest calls.
//!
//! Every call into a plugin runs as a future on the tokio runtime. The
//! engine's epoch ticks every [`EPOCH_TICK`] while a call runs (the `ticker`
//! module; a call that starts between sparser ticks waits up to
//! `ticker::SPARSE_TICK` for its first); at each tick a running call checks
//! its clock, which counts the
//! time the room's task spent being polled (running the plugin), not the
//! time it waited to be:
//!
//! - past the room's call deadline in total: it is interrupted (the room is
//!   disposed, as before);
//! - under [`SLICE`] since the room's task last let others run: it goes on;
//! - otherwise it has used its slice: it yields to the scheduler, then waits
//!   for a **long-call lane** before it resumes.
//!
//! There are one fewer lanes than runtime workers (at least one), handed out
//! first come, first served. A call holds its lane only while it is being
//! polled: it gives it back at every slice, whenever it waits on the host,
//! and when it ends. So calls that run long take turns on at most
//! `workers - 1` threads, and one worker is always left for short calls: a
//! quiet room's latency is bounded by about a slice (a call's first slice
//! can run to about 3 ms when ticks are sparse; see the `ticker` module),
//! whatever the busy rooms demand. Busy rooms share what is left round-robin; their inboxes fill and
//! push back on their own clients, never on other rooms'.
//!
//! The slice is counted per room task, not per call: a room whose inbox
//! holds many short calls yields once they add up to a slice, as a long call
//! does.
//!
//! The deadline counts running time, so a legal long call is not killed for
//! having waited its turn. A call that waits on the host instead (a WASI
//! sleep or poll: the plugin's own choice) has that wait counted too, and is
//! ended when running and waiting together pass the deadline.
//!
//! The clock is wall time while polled: two `Instant::now()` a poll, far
//! cheaper than reading the thread's CPU clock. On an oversubscribed machine
//! it also counts time the OS gave the thread to other processes.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::UpdateDeadline;

use super::ticker::Ticks;

/// How often the engine's epoch advances: how often a running call checks
/// its clock.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How long a room's task runs plugin code before it lets other rooms run.
pub(crate) const SLICE: Duration = Duration::from_millis(2);

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

/// A call that waited on the host (a WASI sleep or poll) until its running
/// and waiting time together passed the call deadline.
#[derive(Debug, thiserror::Error)]
#[error("the call waited on the host past its deadline")]
pub(crate) struct WaitedTooLong;

/// The clock of one room's calls, shared by the future that runs a call
/// (which starts and stops it around every poll) and the store's epoch
/// callback (which reads it). Times are nanoseconds since `base`.
pub(crate) struct CallClock {
    base: Instant,
    deadline: Duration,
    /// When the current poll started.
    poll_started: AtomicU64,
    /// Running time of the current call in its finished polls, plus the
    /// time it spent waiting on the host.
    call: AtomicU64,
    /// Running time since the room's task last let others run.
    slice: AtomicU64,
    /// Running time of all the room's calls.
    total: AtomicU64,
    /// Whether the call is waiting for its turn (a yield or a lane), which
    /// does not count toward the deadline.
    queued: AtomicBool,
    /// The lane the current call holds while it is polled.
    lane: Mutex<Option<OwnedSemaphorePermit>>,
    /// Keeps the epoch thread ticking while the call is polled.
    ticks: Ticks,
}

impl CallClock {
    /// A clock for calls that may use `deadline` each.
    pub(crate) fn new(deadline: Duration, ticks: Ticks) -> Arc<CallClock> {
        Arc::new(CallClock {
            base: Instant::now(),
            deadline,
            poll_started: AtomicU64::new(0),
            call: AtomicU64::new(0),
            slice: AtomicU64::new(0),
            total: AtomicU64::new(0),
            queued: AtomicBool::new(false),
            lane: Mutex::new(None),
            ticks,
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs one call: times every poll of `call`, counts the time it waits
    /// on the host, ends it if that wait outlasts the deadline, holds a lane
    /// only while polled, and lets other rooms run once the room's task has
    /// used a slice.
    pub(crate) async fn run<T>(
        &self,
        call: impl Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        self.call.store(0, Ordering::Relaxed);
        let mut call = pin!(call);
        // Armed while the call waits on the host: fires at its deadline.
        let mut waiting: Option<(u64, Pin<Box<tokio::time::Sleep>>)> = None;
        let output = poll_fn(|cx| {
            let started = self.now();
            if let Some((since, _)) = waiting.take() {
                self.call
                    .fetch_add(started.saturating_sub(since), Ordering::Relaxed);
            }
            if self.used(0) >= self.deadline {
                return Poll::Ready(Err(wasmtime::Error::new(WaitedTooLong)));
            }
            self.poll_started.store(started, Ordering::Relaxed);
            let polling = self.ticks.polling();
            let poll = call.as_mut().poll(cx);
            drop(polling);
            let stopped = self.now();
            let spent = stopped.saturating_sub(started);
            self.call.fetch_add(spent, Ordering::Relaxed);
            self.total.fetch_add(spent, Ordering::Relaxed);
            if poll.is_pending() {
                // Not running: the lane is for calls being polled, and the
                // task lets others run, so a new slice starts.
                self.release_lane();
                self.slice.store(0, Ordering::Relaxed);
                if !self.queued.load(Ordering::Relaxed) {
                    let left = self.deadline.saturating_sub(self.used(0));
                    let mut timer = Box::pin(tokio::time::sleep(left));
                    // Registers the waker: the call is polled again at its
                    // deadline even if the host never wakes it.
                    if timer.as_mut().poll(cx).is_ready() {
                        cx.waker().wake_by_ref();
                    }
                    waiting = Some((stopped, timer));
                }
            } else {
                self.slice.fetch_add(spent, Ordering::Relaxed);
            }
            poll
        })
        .await;
        self.release_lane();
        if Duration::from_nanos(self.slice.load(Ordering::Relaxed)) >= SLICE {
            self.slice.store(0, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
        output
    }

    /// Running time all the room's calls have used.
    pub(crate) fn total(&self) -> Duration {
        Duration::from_nanos(self.total.load(Ordering::Relaxed))
    }

    /// Time the current call has counted against its deadline, with
    /// `this_poll` nanoseconds of the poll in progress.
    fn used(&self, this_poll: u64) -> Duration {
        Duration::from_nanos(self.call.load(Ordering::Relaxed).saturating_add(this_poll))
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
    pub(crate) fn on_tick(self: &Arc<Self>, lanes: &Lanes) -> UpdateDeadline {
        let this_poll = self
            .now()
            .saturating_sub(self.poll_started.load(Ordering::Relaxed));
        if self.used(this_poll) >= self.deadline {
            return UpdateDeadline::Interrupt;
        }
        let slice = self.slice.load(Ordering::Relaxed).saturating_add(this_poll);
        if Duration::from_nanos(slice) < SLICE {
            return UpdateDeadline::Continue(1);
        }
        // Let other tasks run, then queue for a lane. The lane (if held) is
        // given back when this poll returns pending.
        let clock = self.clone();
        let lanes = lanes.0.clone();
        self.queued.store(true, Ordering::Relaxed);
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
                clock.queued.store(false, Ordering::Relaxed);
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_is_timed_and_gives_its_lane_back() {
        let clock = CallClock::new(Duration::from_secs(1), Ticks::default());
        let lanes = Lanes(Arc::new(Semaphore::new(1)));
        let value = clock
            .run(async {
                std::thread::sleep(Duration::from_millis(3));
                // A slice is used: the callback yields and queues for a lane.
                match clock.on_tick(&lanes) {
                    UpdateDeadline::YieldCustom(1, turn) => turn.await,
                    _ => panic!("expected a yield"),
                }
                assert_eq!(lanes.0.available_permits(), 0, "the call holds the lane");
                Ok(7)
            })
            .await;
        assert_eq!(value.ok(), Some(7));
        assert_eq!(lanes.0.available_permits(), 1, "the lane is back");
        assert!(clock.total() >= Duration::from_millis(3));
    }

    #[tokio::test]
    async fn the_deadline_counts_running_time() {
        let clock = CallClock::new(Duration::from_millis(4), Ticks::default());
        let lanes = Lanes(Arc::new(Semaphore::new(1)));
        let ended = clock
            .run(async {
                std::thread::sleep(Duration::from_millis(5));
                assert!(matches!(clock.on_tick(&lanes), UpdateDeadline::Interrupt));
                Ok(())
            })
            .await;
        assert!(ended.is_ok());
    }

    #[tokio::test]
    async fn waiting_on_the_host_counts_and_is_cut_at_the_deadline() {
        let clock = CallClock::new(Duration::from_millis(50), Ticks::default());
        let started = Instant::now();
        let ended = clock
            .run(async {
                std::future::pending::<()>().await;
                Ok(())
            })
            .await;
        let error = ended.expect_err("a call parked forever is ended");
        assert!(error.downcast_ref::<WaitedTooLong>().is_some());
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
