//! The handle a room uses to write to one client: a frame queue bounded in
//! frames and in bytes, plus a close signal that cannot be blocked by a full
//! queue.
//!
//! Rooms never await a client. [`ClientSender::send`] either queues the frame
//! or, when the queue is full (too many frames, or too many bytes), closes the
//! client as a slow consumer. That keeps one slow reader from stalling its
//! room or growing the host's memory, whatever the size of the frames.
//!
//! The queue itself is [`OutboundQueue`]: one lock per push (both bounds checked
//! there) and one per batch the writer takes.

mod flag;
mod queue;

use std::sync::{Arc, Mutex};

use axum::extract::ws::Message as WsMessage;
use tokio::sync::mpsc;

use crate::close;
use crate::wasm::GuestHandoff;

pub(crate) use flag::Flag;
pub use queue::OutboundQueue;
use queue::{Pusher, Refused};

/// A client's id: unique per host process, never reused.
pub type ClientId = u64;

/// What a connection's writer receives from its room.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outbound {
    /// A data frame to write.
    Frame(WsMessage),
    /// Write a close frame with this code and reason, then stop writing.
    Close(u16, String),
}

impl Outbound {
    /// The bytes this item counts for against `client_queue_bytes`: a
    /// frame's payload (a close counts only as an item).
    fn payload_len(&self) -> u64 {
        match self {
            Outbound::Frame(frame) => frame_len(frame),
            Outbound::Close(..) => 0,
        }
    }
}

/// An order to a connection to move its client to another room.
#[derive(Debug)]
pub(crate) struct Move {
    /// The target room (`None`: the lobby).
    pub(crate) to: Option<String>,
    /// What the target's `connect` receives.
    pub(crate) handoff: GuestHandoff,
    /// Create the target if it does not exist.
    pub(crate) create: bool,
}

/// Moves in flight per client. A client is in one room at a time and a room
/// can only transfer its members, so at most one move is ever pending.
const MOVE_QUEUE: usize = 2;

/// A close that bypasses the frame queue (slow consumer, oversized frame,
/// forced by the host).
#[derive(Debug, Default)]
pub(crate) struct ForcedClose {
    /// One flag per waiting half of the connection: its reader and writer
    /// are polled each on its own waker, and a flag wakes one waiter.
    for_reader: Flag,
    for_writer: Flag,
    frame: Mutex<Option<(u16, String)>>,
}

impl ForcedClose {
    /// Requests the close; the first request wins.
    pub(crate) fn request(&self, code: u16, reason: &str) {
        if let Ok(mut frame) = self.frame.lock()
            && frame.is_none()
        {
            *frame = Some((code, close::truncate_reason(reason).to_owned()));
        }
        self.for_reader.set();
        self.for_writer.set();
    }

    /// Resolves once a close was requested; awaited by the reader only.
    pub(crate) async fn reader_requested(&self) {
        self.for_reader.wait().await
    }

    /// Resolves once a close was requested; awaited by the writer only.
    pub(crate) async fn writer_requested(&self) {
        self.for_writer.wait().await
    }

    /// Drops the connection's wakers once it has ended: the room may hold
    /// the client's sender, and so this, for a while longer (a resume
    /// grace), and the wakers would keep the ended task's memory with them.
    pub(crate) fn forget_waiters(&self) {
        self.for_reader.forget_waiter();
        self.for_writer.forget_waiter();
    }

    /// The requested close frame, if any.
    pub(crate) fn frame(&self) -> Option<(u16, String)> {
        self.frame.lock().ok().and_then(|frame| frame.clone())
    }
}

/// Why a frame could not be queued for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The client's queue was full; it is being closed as a slow consumer.
    #[error("client is too slow to read and is being closed")]
    SlowConsumer,
    /// The client's connection has already ended.
    #[error("client is gone")]
    Gone,
}

/// The writing side of a client, held by the room it is in. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientSender {
    id: ClientId,
    /// Shared by every clone: the queue ends for the writer when the last
    /// clone goes.
    queue: Arc<Pusher>,
    forced: Arc<ForcedClose>,
    /// Boxed: a tokio channel allocates its first block of 32 slots when it
    /// is created, and 32 unboxed moves are ~3.3 KiB per connection for a
    /// channel most connections never use (issue 19).
    moves: mpsc::Sender<Box<Move>>,
}

/// The receiving ends of a client's channels, owned by its connection.
pub(crate) struct ClientReceivers {
    pub(crate) frames: OutboundQueue,
    pub(crate) moves: mpsc::Receiver<Box<Move>>,
    pub(crate) forced: Arc<ForcedClose>,
}

/// The bytes a frame counts for against `client_queue_bytes`: its payload.
fn frame_len(frame: &WsMessage) -> u64 {
    let len = match frame {
        WsMessage::Text(text) => text.len(),
        WsMessage::Binary(bytes) => bytes.len(),
        WsMessage::Ping(bytes) | WsMessage::Pong(bytes) => bytes.len(),
        WsMessage::Close(_) => 0,
    };
    u64::try_from(len).unwrap_or(u64::MAX)
}

impl ClientSender {
    /// Creates a sender with a queue of `capacity` frames and `max_bytes`
    /// bytes, and the receiving end the connection's writer drains.
    pub(crate) fn new(
        id: ClientId,
        capacity: usize,
        max_bytes: usize,
    ) -> (ClientSender, ClientReceivers) {
        let max_bytes = u64::try_from(max_bytes).unwrap_or(u64::MAX);
        let (queue, frames) = queue::bounded(capacity, max_bytes);
        let (moves, move_orders) = mpsc::channel(MOVE_QUEUE);
        let forced = Arc::new(ForcedClose::default());
        let sender = ClientSender {
            id,
            queue: Arc::new(queue),
            forced: forced.clone(),
            moves,
        };
        let receivers = ClientReceivers {
            frames,
            moves: move_orders,
            forced,
        };
        (sender, receivers)
    }

    /// A sender not attached to a socket: what the room queues arrives on the
    /// returned receiver. For driving a [`crate::wasm::RoomInstance`] directly
    /// (benchmarks, embedders). The queue holds `capacity` frames and is not
    /// bounded in bytes.
    pub fn detached(id: ClientId, capacity: usize) -> (ClientSender, OutboundQueue) {
        let (sender, receivers) = ClientSender::new(id, capacity, usize::MAX);
        (sender, receivers.frames)
    }

    /// Which connection this sender writes to: the same client id can move
    /// to a new connection when it reconnects, and events from the old one
    /// must then be told apart.
    pub(crate) fn connection(&self) -> usize {
        Arc::as_ptr(&self.forced) as usize
    }

    /// The client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Queues a frame, closing the client with 1008 if its queue is full:
    /// it holds `client_queue` frames already, or this frame would take it
    /// beyond `client_queue_bytes`.
    pub fn send(&self, frame: WsMessage) -> Result<(), SendError> {
        let len = frame_len(&frame);
        match self.queue.push(Outbound::Frame(frame), len) {
            Ok(()) => Ok(()),
            Err(Refused::Gone) => Err(SendError::Gone),
            Err(Refused::Items) => {
                self.forced
                    .request(close::POLICY, "slow consumer: outbound queue full");
                Err(SendError::SlowConsumer)
            }
            Err(Refused::Bytes) => {
                self.forced.request(
                    close::POLICY,
                    &format!(
                        "slow consumer: outbound queue over {} bytes",
                        self.queue.max_bytes()
                    ),
                );
                Err(SendError::SlowConsumer)
            }
        }
    }

    /// Closes the client after the frames already queued for it.
    pub fn close(&self, code: u16, reason: &str) {
        let reason = close::truncate_reason(reason);
        // A close carries no payload: only the item bound applies.
        match self.queue.push(Outbound::Close(code, reason.to_owned()), 0) {
            Ok(()) | Err(Refused::Gone) => {}
            Err(Refused::Items | Refused::Bytes) => self.forced.request(code, reason),
        }
    }

    /// Orders the client's connection to move to another room; a client
    /// whose connection cannot take the order is closed.
    pub(crate) fn relocate(&self, order: Move) {
        if self.moves.try_send(Box::new(order)).is_err() {
            self.forced
                .request(close::ROOM_ERROR, "transfer failed: connection busy");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_client_as_a_slow_consumer() {
        let (sender, mut queue) = ClientSender::detached(1, 2);
        assert!(sender.send(WsMessage::Binary(vec![0; 10].into())).is_ok());
        assert!(sender.send(WsMessage::Binary(vec![0; 10].into())).is_ok());
        assert_eq!(
            sender.send(WsMessage::Binary(vec![0; 10].into())),
            Err(SendError::SlowConsumer)
        );
        assert!(sender.forced.frame().is_some());
        assert!(queue.try_recv().is_some() && queue.try_recv().is_some());

        let (sender, _receivers) = ClientSender::new(2, 100, 25);
        assert!(sender.send(WsMessage::Binary(vec![0; 20].into())).is_ok());
        assert_eq!(
            sender.send(WsMessage::Binary(vec![0; 6].into())),
            Err(SendError::SlowConsumer)
        );
        assert_eq!(
            sender.forced.frame().map(|(code, _)| code),
            Some(close::POLICY)
        );
    }

    #[test]
    fn a_close_that_does_not_fit_is_forced() {
        let (sender, _queue) = ClientSender::detached(1, 1);
        assert!(sender.send(WsMessage::Binary(vec![0; 1].into())).is_ok());
        sender.close(4000, "bye");
        assert_eq!(sender.forced.frame(), Some((4000, "bye".to_owned())));
    }
}
