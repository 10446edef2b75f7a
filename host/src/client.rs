//! The handle a room uses to write to one client: a frame queue bounded in
//! frames and in bytes, plus a close signal that cannot be blocked by a full
//! queue.
//!
//! Rooms never await a client. [`ClientSender::send`] either queues the frame
//! or, when the queue is full (too many frames, or too many bytes), closes the
//! client as a slow consumer. That keeps one slow reader from stalling its
//! room or growing the host's memory, whatever the size of the frames.
//!
//! Both bounds are atomic counters the sender reserves against before it
//! pushes and the writer gives back when it takes the frame; the channel
//! itself is unbounded. (tokio's bounded channel returns each permit under
//! its semaphore's mutex, on every frame: 5 % of the server's CPU at the
//! fan-out's max rate, issue 19.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Message as WsMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::close;
use crate::wasm::GuestHandoff;

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
    token: CancellationToken,
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
        self.token.cancel();
    }

    /// Resolves once a close was requested.
    pub(crate) async fn requested(&self) {
        self.token.cancelled().await
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
    queue: mpsc::UnboundedSender<Outbound>,
    /// Frames and bytes in `queue`, shared with its [`OutboundQueue`].
    queued: Arc<Queued>,
    max_queued_frames: usize,
    max_queued_bytes: usize,
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

/// The receiving end of a client's frame queue. Taking a frame out gives
/// its bytes back to the queue's byte bound.
#[derive(Debug)]
pub struct OutboundQueue {
    frames: mpsc::UnboundedReceiver<Outbound>,
    queued: Arc<Queued>,
}

/// What a client's queue holds: reserved by the sender before it pushes,
/// given back by the writer when it takes an item.
#[derive(Debug, Default)]
struct Queued {
    /// Frames and closes.
    items: AtomicUsize,
    /// Payload bytes of the frames.
    bytes: AtomicUsize,
}

impl OutboundQueue {
    /// The next frame or close; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Outbound> {
        let out = self.frames.recv().await;
        self.release(out.as_ref());
        out
    }

    /// The next frame or close, if one is queued.
    pub fn try_recv(&mut self) -> Result<Outbound, mpsc::error::TryRecvError> {
        let out = self.frames.try_recv();
        self.release(out.as_ref().ok());
        out
    }

    fn release(&self, out: Option<&Outbound>) {
        let Some(out) = out else {
            return;
        };
        self.queued.items.fetch_sub(1, Ordering::Relaxed);
        if let Outbound::Frame(frame) = out {
            self.queued
                .bytes
                .fetch_sub(frame_len(frame), Ordering::Relaxed);
        }
    }
}

/// The bytes a frame counts for against `client_queue_bytes`: its payload.
fn frame_len(frame: &WsMessage) -> usize {
    match frame {
        WsMessage::Text(text) => text.len(),
        WsMessage::Binary(bytes) => bytes.len(),
        WsMessage::Ping(bytes) | WsMessage::Pong(bytes) => bytes.len(),
        WsMessage::Close(_) => 0,
    }
}

impl ClientSender {
    /// Creates a sender with a queue of `capacity` frames and `max_bytes`
    /// bytes, and the receiving end the connection's writer drains.
    pub(crate) fn new(
        id: ClientId,
        capacity: usize,
        max_bytes: usize,
    ) -> (ClientSender, ClientReceivers) {
        let (queue, frames) = mpsc::unbounded_channel();
        let (moves, move_orders) = mpsc::channel(MOVE_QUEUE);
        let forced = Arc::new(ForcedClose::default());
        let queued = Arc::new(Queued::default());
        let sender = ClientSender {
            id,
            queue,
            queued: queued.clone(),
            max_queued_frames: capacity.max(1),
            max_queued_bytes: max_bytes,
            forced: forced.clone(),
            moves,
        };
        let receivers = ClientReceivers {
            frames: OutboundQueue { frames, queued },
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
        // Reserve before queuing, so that the writer, which gives the frame
        // and its bytes back when it takes it, can never make a count wrap.
        if !self.reserve_item() {
            self.forced
                .request(close::POLICY, "slow consumer: outbound queue full");
            return Err(SendError::SlowConsumer);
        }
        let before = self.queued.bytes.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > self.max_queued_bytes {
            self.queued.bytes.fetch_sub(len, Ordering::Relaxed);
            self.queued.items.fetch_sub(1, Ordering::Relaxed);
            self.forced.request(
                close::POLICY,
                &format!(
                    "slow consumer: outbound queue over {} bytes",
                    self.max_queued_bytes
                ),
            );
            return Err(SendError::SlowConsumer);
        }
        if self.queue.send(Outbound::Frame(frame)).is_err() {
            self.queued.bytes.fetch_sub(len, Ordering::Relaxed);
            self.queued.items.fetch_sub(1, Ordering::Relaxed);
            return Err(SendError::Gone);
        }
        Ok(())
    }

    /// Takes one of the queue's `client_queue` places; false when it is full.
    fn reserve_item(&self) -> bool {
        let before = self.queued.items.fetch_add(1, Ordering::Relaxed);
        if before >= self.max_queued_frames {
            self.queued.items.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Closes the client after the frames already queued for it.
    pub fn close(&self, code: u16, reason: &str) {
        let reason = close::truncate_reason(reason);
        if !self.reserve_item() {
            self.forced.request(code, reason);
            return;
        }
        if self
            .queue
            .send(Outbound::Close(code, reason.to_owned()))
            .is_err()
        {
            self.queued.items.fetch_sub(1, Ordering::Relaxed);
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
