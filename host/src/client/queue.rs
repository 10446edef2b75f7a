//! A client's frame queue: what its room (and anything else holding its
//! [`super::ClientSender`]) pushes, bounded in items and bytes, and what the
//! connection's writer takes out in batches.
//!
//! One mutex over a `VecDeque` rather than a channel: a push checks both
//! bounds and queues under one lock, the writer takes everything queued
//! with one lock, and only a push onto an empty queue wakes the writer (a
//! writer that has not drained its queue yet is already awake). A batch
//! counts against the bounds until the writer has written it. Between
//! batches the queue's buffer and the writer's keep at most
//! [`KEPT_SLOTS`] slots each (typically 4), where a tokio channel keeps a
//! block of 32 (~1.6 KiB) per connection (issue 19).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::Outbound;

/// Slots a batch buffer may keep between batches: a connection that once
/// took a long batch gives the memory back instead of holding it while idle.
const KEPT_SLOTS: usize = 16;

/// The state both ends share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// The writer's task, woken when the queue stops being empty and when
    /// the last sender goes.
    writer: AtomicWaker,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Outbound>,
    /// Payload bytes of the frames in `items` and in the writer's batch.
    bytes: u64,
    /// Items in the writer's batch, taken but not yet written: they count
    /// against the bounds until [`OutboundQueue::finish_batch`], so a
    /// writer stuck on a socket that does not drain cannot hold a batch
    /// beyond them.
    batch_items: usize,
    /// Payload bytes of those items.
    batch_bytes: u64,
    /// Every sender is gone: once `items` is empty, the queue has ended.
    senders_gone: bool,
    /// The receiving end is gone: pushes fail.
    receiver_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held (pushes and takes only move
        // items), so a poisoned lock still guards a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds its maximum number of items.
    Items,
    /// The item's bytes would take the queue over its byte bound.
    Bytes,
    /// The receiving end is gone.
    Gone,
}

/// The pushing end, shared by a client's senders (in an `Arc`); dropping it
/// ends the queue for the writer.
#[derive(Debug)]
pub(crate) struct Pusher {
    shared: Arc<Shared>,
    max_items: usize,
    max_bytes: u64,
}

/// The taking end, owned by the connection's writer (or a relay).
#[derive(Debug)]
pub struct OutboundQueue {
    shared: Arc<Shared>,
}

/// A queue of at most `max_items` items and `max_bytes` payload bytes.
pub(crate) fn bounded(max_items: usize, max_bytes: u64) -> (Pusher, OutboundQueue) {
    let shared = Arc::new(Shared::default());
    let pusher = Pusher {
        shared: shared.clone(),
        max_items: max_items.max(1),
        max_bytes,
    };
    (pusher, OutboundQueue { shared })
}

impl Pusher {
    /// Queues `item`, which counts `bytes` against the byte bound.
    pub(crate) fn push(&self, item: Outbound, bytes: u64) -> Result<(), Refused> {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Err(Refused::Gone);
        }
        if state.items.len() + state.batch_items >= self.max_items {
            return Err(Refused::Items);
        }
        let total = state.bytes.saturating_add(bytes);
        if total > self.max_bytes {
            return Err(Refused::Bytes);
        }
        let was_empty = state.items.is_empty();
        state.items.push_back(item);
        state.bytes = total;
        drop(state);
        if was_empty {
            self.shared.writer.wake();
        }
        Ok(())
    }

    /// The byte bound.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.shared.lock().senders_gone = true;
        self.shared.writer.wake();
    }
}

impl OutboundQueue {
    /// Waits for items and moves up to `max` of them, oldest first, into
    /// `batch` (which the caller has emptied). `false` once every sender is
    /// gone and nothing is left.
    /// The batch keeps counting against the queue's bounds until
    /// [`OutboundQueue::finish_batch`].
    pub async fn recv_batch(&mut self, batch: &mut VecDeque<Outbound>, max: usize) -> bool {
        poll_fn(|cx| self.poll_batch(cx, batch, max)).await
    }

    /// The next item; `None` once every sender is gone and nothing is left.
    pub async fn recv(&mut self) -> Option<Outbound> {
        poll_fn(|cx| {
            if let Taken::Some(item) = self.take_one() {
                return Poll::Ready(Some(item));
            }
            // Registered before the second look, so a push in between wakes us.
            self.shared.writer.register(cx.waker());
            match self.take_one() {
                Taken::Some(item) => Poll::Ready(Some(item)),
                Taken::Ended => Poll::Ready(None),
                Taken::Empty => Poll::Pending,
            }
        })
        .await
    }

    /// The next item, if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        match self.take_one() {
            Taken::Some(item) => Some(item),
            Taken::Empty | Taken::Ended => None,
        }
    }

    /// Ends a batch from [`OutboundQueue::recv_batch`] once it is written:
    /// its items stop counting against the bounds, and the buffer gives its
    /// memory back if the batch grew it past what an idle connection should
    /// keep.
    pub fn finish_batch(&mut self, batch: &mut VecDeque<Outbound>) {
        {
            let mut state = self.shared.lock();
            state.bytes -= state.batch_bytes.min(state.bytes);
            state.batch_items = 0;
            state.batch_bytes = 0;
        }
        batch.clear();
        if batch.capacity() > KEPT_SLOTS {
            *batch = VecDeque::new();
        }
    }

    fn poll_batch(
        &self,
        cx: &mut Context<'_>,
        batch: &mut VecDeque<Outbound>,
        max: usize,
    ) -> Poll<bool> {
        if let Taken::Some(()) = self.take(batch, max) {
            return Poll::Ready(true);
        }
        // Registered before the second look, so a push in between wakes us.
        self.shared.writer.register(cx.waker());
        match self.take(batch, max) {
            Taken::Some(()) => Poll::Ready(true),
            Taken::Ended => Poll::Ready(false),
            Taken::Empty => Poll::Pending,
        }
    }

    /// Moves up to `max` items into `batch`, which keeps counting them until
    /// [`OutboundQueue::finish_batch`].
    fn take(&self, batch: &mut VecDeque<Outbound>, max: usize) -> Taken<()> {
        let mut state = self.shared.lock();
        if state.items.is_empty() {
            return state.end();
        }
        let count = state.items.len().min(max);
        let taken: u64 = state
            .items
            .iter()
            .take(count)
            .map(Outbound::payload_len)
            .sum();
        if batch.is_empty() && count == state.items.len() {
            // The whole queue: swap buffers, so neither end allocates.
            std::mem::swap(&mut state.items, batch);
        } else {
            batch.extend(state.items.drain(..count));
        }
        state.batch_items += count;
        state.batch_bytes += taken;
        Taken::Some(())
    }

    fn take_one(&self) -> Taken<Outbound> {
        let mut state = self.shared.lock();
        let Some(item) = state.items.pop_front() else {
            return state.end();
        };
        state.bytes -= item.payload_len().min(state.bytes);
        if state.items.is_empty() && state.items.capacity() > KEPT_SLOTS {
            state.items = VecDeque::new();
        }
        Taken::Some(item)
    }
}

/// What a look into the queue found.
enum Taken<T> {
    Some(T),
    /// Nothing queued; more may come.
    Empty,
    /// Nothing queued, and every sender is gone.
    Ended,
}

impl State {
    /// What an empty queue means, decided under the same lock as the look,
    /// so a push just before the last sender went is never missed.
    fn end<T>(&self) -> Taken<T> {
        if self.senders_gone {
            Taken::Ended
        } else {
            Taken::Empty
        }
    }
}

impl Drop for OutboundQueue {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            state.bytes = 0;
            std::mem::take(&mut state.items)
        };
        // Frames are dropped outside the lock; the writer's waker too, so
        // senders that outlive the connection do not keep its task.
        drop(items);
        drop(self.shared.writer.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ws::Message as WsMessage;

    fn frame(len: usize) -> Outbound {
        Outbound::Frame(WsMessage::Binary(vec![0; len].into()))
    }

    #[test]
    fn bounds_count_items_and_bytes_until_they_are_written() {
        let (pusher, mut taker) = bounded(2, 25);
        assert_eq!(pusher.push(frame(10), 10), Ok(()));
        assert_eq!(pusher.push(frame(10), 10), Ok(()));
        assert_eq!(pusher.push(frame(1), 1), Err(Refused::Items));
        assert!(taker.try_recv().is_some());
        assert_eq!(pusher.push(frame(16), 16), Err(Refused::Bytes));
        assert_eq!(pusher.push(frame(15), 15), Ok(()));
        let mut batch = VecDeque::new();
        assert!(matches!(taker.take(&mut batch, 256), Taken::Some(())));
        assert_eq!(batch.len(), 2);
        // A batch counts until it is written.
        assert_eq!(pusher.push(frame(1), 1), Err(Refused::Items));
        taker.finish_batch(&mut batch);
        assert_eq!(pusher.shared.lock().bytes, 0);
        assert_eq!(pusher.push(frame(25), 25), Ok(()));
    }

    #[test]
    fn a_batch_takes_at_most_max_in_order() {
        let (pusher, mut taker) = bounded(100, u64::MAX);
        for len in 0..10 {
            pusher.push(frame(len), len as u64).unwrap();
        }
        let mut batch = VecDeque::new();
        assert!(matches!(taker.take(&mut batch, 4), Taken::Some(())));
        let lens: Vec<u64> = batch.iter().map(Outbound::payload_len).collect();
        assert_eq!(lens, [0, 1, 2, 3]);
        taker.finish_batch(&mut batch);
        assert_eq!(pusher.shared.lock().bytes, (4..10).sum::<u64>());
    }

    #[tokio::test]
    async fn the_queue_ends_when_the_last_sender_goes_and_pushes_fail_without_a_taker() {
        let (pusher, mut taker) = bounded(10, u64::MAX);
        pusher.push(frame(1), 1).unwrap();
        let waiting = tokio::spawn(async move {
            let first = taker.recv().await.is_some();
            (first, taker.recv().await.is_none())
        });
        tokio::task::yield_now().await;
        drop(pusher);
        assert_eq!(waiting.await.unwrap(), (true, true));

        let (pusher, taker) = bounded(10, u64::MAX);
        drop(taker);
        assert_eq!(pusher.push(frame(1), 1), Err(Refused::Gone));
    }

    #[tokio::test]
    async fn a_push_wakes_a_waiting_batch() {
        let (pusher, mut taker) = bounded(10, u64::MAX);
        let waiting = tokio::spawn(async move {
            let mut batch = VecDeque::new();
            let got = taker.recv_batch(&mut batch, 256).await;
            (got, batch.len())
        });
        tokio::task::yield_now().await;
        pusher.push(frame(3), 3).unwrap();
        assert_eq!(waiting.await.unwrap(), (true, 1));
    }
}
