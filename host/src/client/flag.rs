//! A one-shot flag that one waiter waits on: set from anywhere, checked with
//! an atomic load.
//!
//! A connection's writer polls its signals every time it is woken for a
//! frame. A `CancellationToken` locks a mutex on each such poll (two, with
//! its waiter list); this is an atomic load and a waker compare (issue 19).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

/// Set once, never cleared. Waited on by one waiter at a time: a future
/// waiting with another waker (another task, or the other half of a
/// connection) would replace the first one's waker.
#[derive(Debug, Default)]
pub(crate) struct Flag {
    set: AtomicBool,
    waiter: AtomicWaker,
}

impl Flag {
    /// Sets the flag and wakes its waiter.
    pub(crate) fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.waiter.wake();
    }

    /// Drops the waiter's waker, which would otherwise live as long as the
    /// flag (and with it whatever the waker keeps alive: its task).
    pub(crate) fn forget_waiter(&self) {
        drop(self.waiter.take());
    }

    /// Whether the flag is set.
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Resolves once the flag is set.
    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.is_set() {
                return Poll::Ready(());
            }
            // Registered before the second look, so a `set` in between
            // wakes us.
            self.waiter.register(cx.waker());
            if self.is_set() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_set_wakes_the_waiting_task_and_stays_set() {
        let flag = Arc::new(Flag::default());
        let waiting = tokio::spawn({
            let flag = flag.clone();
            async move { flag.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        flag.set();
        waiting.await.unwrap();
        assert!(flag.is_set());
        // A wait after the set resolves at once.
        flag.wait().await;
    }
}
