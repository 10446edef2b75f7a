//! The connection's two halves, reader and writer, as two futures of one
//! task where each is polled only when something woke it.
//!
//! `tokio::join!` polls every branch whenever the task wakes, so a writer
//! woken for each frame also polled the reader (its select over the room's
//! moves, the idle timer and the socket) once per delivery (issue 19). Here
//! each half gets its own waker, which marks the half and wakes the task; a
//! poll runs only the marked halves. One task rather than two: the
//! connection's state stays in its one task allocation, plus the three
//! small ones of the wakers (~112 bytes).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::{MaybeDone, maybe_done};
use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;

const FIRST: u8 = 1;
const SECOND: u8 = 2;

/// Which halves were woken since the last poll, and the task to wake.
#[derive(Debug)]
struct Marks {
    woken: AtomicU8,
    task: AtomicWaker,
}

/// The waker one half registers wherever it waits.
#[derive(Debug)]
struct HalfWaker {
    marks: Arc<Marks>,
    half: u8,
}

impl Wake for HalfWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.marks.woken.fetch_or(self.half, Ordering::AcqRel);
        self.marks.task.wake();
    }
}

pin_project! {
    /// Runs two futures to completion in one task; see the module docs.
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Join<A: Future, B: Future> {
        #[pin]
        first: MaybeDone<A>,
        #[pin]
        second: MaybeDone<B>,
        marks: Arc<Marks>,
        first_waker: Waker,
        second_waker: Waker,
    }
}

/// Both futures' outputs once both are done, each polled only when woken.
pub(crate) fn join<A: Future, B: Future>(first: A, second: B) -> Join<A, B> {
    let marks = Arc::new(Marks {
        // Both run on the first poll.
        woken: AtomicU8::new(FIRST | SECOND),
        task: AtomicWaker::new(),
    });
    let waker = |half| {
        Waker::from(Arc::new(HalfWaker {
            marks: marks.clone(),
            half,
        }))
    };
    Join {
        first_waker: waker(FIRST),
        second_waker: waker(SECOND),
        first: maybe_done(first),
        second: maybe_done(second),
        marks,
    }
}

impl<A: Future, B: Future> Future for Join<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // Registered before the marks are taken, so a wake in between is
        // seen now or wakes the task again.
        this.marks.task.register(cx.waker());
        let woken = this.marks.woken.swap(0, Ordering::AcqRel);
        let first_done = if woken & FIRST != 0 {
            let mut cx = Context::from_waker(this.first_waker);
            this.first.as_mut().poll(&mut cx).is_ready()
        } else {
            is_done(this.first.as_mut())
        };
        let second_done = if woken & SECOND != 0 {
            let mut cx = Context::from_waker(this.second_waker);
            this.second.as_mut().poll(&mut cx).is_ready()
        } else {
            is_done(this.second.as_mut())
        };
        if !(first_done && second_done) {
            return Poll::Pending;
        }
        match (this.first.take_output(), this.second.take_output()) {
            (Some(first), Some(second)) => Poll::Ready((first, second)),
            // Both were just seen done, and a `Join` is not polled again
            // once it has returned its outputs.
            _ => panic!("`Join` polled after it completed"),
        }
    }
}

fn is_done<F: Future>(future: Pin<&mut MaybeDone<F>>) -> bool {
    matches!(future.as_ref().get_ref(), MaybeDone::Done(_))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Notify;

    use super::*;

    /// Counts its polls; done once `go` is notified.
    async fn counted(polls: &AtomicUsize, go: &Notify) -> usize {
        let notified = go.notified();
        tokio::pin!(notified);
        std::future::poll_fn(|cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            notified.as_mut().poll(cx)
        })
        .await;
        polls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn only_the_woken_half_is_polled() {
        let (first_polls, second_polls) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let (first_go, second_go) = (Notify::new(), Notify::new());
        let joined = join(
            counted(&first_polls, &first_go),
            counted(&second_polls, &second_go),
        );
        tokio::pin!(joined);
        assert!(futures_util::poll!(joined.as_mut()).is_pending());
        assert_eq!(first_polls.load(Ordering::SeqCst), 1);
        assert_eq!(second_polls.load(Ordering::SeqCst), 1);

        // Waking the second half polls it alone, and it finishes.
        second_go.notify_one();
        assert!(futures_util::poll!(joined.as_mut()).is_pending());
        assert_eq!(first_polls.load(Ordering::SeqCst), 1);
        assert_eq!(second_polls.load(Ordering::SeqCst), 2);

        // A poll with nothing woken polls neither.
        assert!(futures_util::poll!(joined.as_mut()).is_pending());
        assert_eq!(first_polls.load(Ordering::SeqCst), 1);

        first_go.notify_one();
        assert_eq!(joined.await, (2, 2));
    }

    #[tokio::test]
    async fn a_wake_from_another_task_completes_the_join() {
        let go = Arc::new(Notify::new());
        let polls = AtomicUsize::new(0);
        let waking = tokio::spawn({
            let go = go.clone();
            async move {
                tokio::task::yield_now().await;
                go.notify_one();
            }
        });
        let (first, second) = join(counted(&polls, &go), async { 7 }).await;
        assert!(first >= 2);
        assert_eq!(second, 7);
        waking.await.unwrap();
    }
}
