//! The handle a room uses to write to one client: a frame queue bounded in
//! frames and in bytes, plus a close signal that cannot be blocked by a full
//! queue.
//!
//! Rooms never await a client. [`ClientSender::send`] either queues the frame
//! or, when the queue is full (too many frames, or too many bytes), closes the
//! client as a slow consumer. That keeps one slow reader from stalling its
//! room or growing the host's memory, whatever the size of the frames.
//!
//! Both bounds are one atomic word (frames and bytes packed together) the
//! sender reserves against before it pushes and the writer gives back when
//! it takes the frame; the channel itself is unbounded. (tokio's bounded channel returns each permit under
//! its semaphore's mutex, on every frame: 5 % of the server's CPU at the
//! fan-out's max rate, issue 19.)

use std::sync::atomic::{AtomicU64, Ordering};
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
    /// `client_queue`, at most [`MAX_ITEMS`].
    max_queued_frames: u64,
    /// `client_queue_bytes`, at most [`MAX_BYTES`].
    max_queued_bytes: u64,
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
/// given back by the writer when it takes an item. Frames and closes in the
/// high [`ITEM_BITS`] bits, the frames' payload bytes in the low
/// [`BYTE_BITS`]: one word, so a send reserves both with one atomic
/// operation and a take gives both back with one (two each cost ~4 ns per
/// delivery in a broadcast to 100, issue 19).
#[derive(Debug, Default)]
struct Queued(AtomicU64);

/// Bits of [`Queued`] that count payload bytes: a queue holds at most
/// 1 TiB, far above any `client_queue_bytes` a host could serve.
const BYTE_BITS: u32 = 40;
/// Bits of [`Queued`] that count items: at most ~16.7 million frames.
const ITEM_BITS: u32 = 64 - BYTE_BITS;
const ONE_ITEM: u64 = 1 << BYTE_BITS;
const BYTES_MASK: u64 = ONE_ITEM - 1;
/// The largest item and byte bounds a queue can count.
const MAX_ITEMS: u64 = (1 << ITEM_BITS) - 1;
const MAX_BYTES: u64 = BYTES_MASK;

impl Queued {
    /// Reserves one item of `len` payload bytes, unless the queue already
    /// holds `max_items` items or the bytes would pass `max_bytes` (both
    /// at most [`MAX_ITEMS`] and [`MAX_BYTES`], so the fields never carry
    /// into each other).
    fn reserve(&self, len: u64, max_items: u64, max_bytes: u64) -> Result<(), Full> {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            if current >> BYTE_BITS >= max_items {
                return Err(Full::Items);
            }
            if (current & BYTES_MASK).saturating_add(len) > max_bytes {
                return Err(Full::Bytes);
            }
            match self.0.compare_exchange_weak(
                current,
                current + ONE_ITEM + len,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }

    /// Gives back an item of `len` payload bytes that [`Queued::reserve`]
    /// took.
    fn release(&self, len: u64) {
        self.0.fetch_sub(ONE_ITEM + len, Ordering::Relaxed);
    }
}

/// Which bound a full queue hit.
enum Full {
    Items,
    Bytes,
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
        let len = match out {
            Outbound::Frame(frame) => frame_len(frame),
            Outbound::Close(..) => 0,
        };
        self.queued.release(len);
    }
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
        let (queue, frames) = mpsc::unbounded_channel();
        let (moves, move_orders) = mpsc::channel(MOVE_QUEUE);
        let forced = Arc::new(ForcedClose::default());
        let queued = Arc::new(Queued::default());
        let sender = ClientSender {
            id,
            queue,
            queued: queued.clone(),
            max_queued_frames: u64::try_from(capacity.max(1))
                .unwrap_or(MAX_ITEMS)
                .min(MAX_ITEMS),
            max_queued_bytes: u64::try_from(max_bytes).unwrap_or(MAX_BYTES).min(MAX_BYTES),
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
        match self
            .queued
            .reserve(len, self.max_queued_frames, self.max_queued_bytes)
        {
            Ok(()) => {}
            Err(Full::Items) => {
                self.forced
                    .request(close::POLICY, "slow consumer: outbound queue full");
                return Err(SendError::SlowConsumer);
            }
            Err(Full::Bytes) => {
                self.forced.request(
                    close::POLICY,
                    &format!(
                        "slow consumer: outbound queue over {} bytes",
                        self.max_queued_bytes
                    ),
                );
                return Err(SendError::SlowConsumer);
            }
        }
        if self.queue.send(Outbound::Frame(frame)).is_err() {
            self.queued.release(len);
            return Err(SendError::Gone);
        }
        Ok(())
    }

    /// Closes the client after the frames already queued for it.
    pub fn close(&self, code: u16, reason: &str) {
        let reason = close::truncate_reason(reason);
        // A close carries no payload: only the frame bound applies.
        if self
            .queued
            .reserve(0, self.max_queued_frames, MAX_BYTES)
            .is_err()
        {
            self.forced.request(code, reason);
            return;
        }
        if self
            .queue
            .send(Outbound::Close(code, reason.to_owned()))
            .is_err()
        {
            self.queued.release(0);
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
    fn a_queue_is_bounded_in_frames_and_in_bytes() {
        let (sender, mut queue) = ClientSender::detached(1, 2);
        assert!(sender.send(WsMessage::Binary(vec![0; 10].into())).is_ok());
        assert!(sender.send(WsMessage::Binary(vec![0; 10].into())).is_ok());
        assert_eq!(
            sender.send(WsMessage::Binary(vec![0; 10].into())),
            Err(SendError::SlowConsumer)
        );
        // Both frames and their bytes are given back as the writer takes them.
        assert!(queue.try_recv().is_ok() && queue.try_recv().is_ok());
        assert_eq!(sender.queued.0.load(Ordering::Relaxed), 0);

        let (sender, _receivers) = ClientSender::new(2, 100, 25);
        assert!(sender.send(WsMessage::Binary(vec![0; 20].into())).is_ok());
        assert_eq!(
            sender.send(WsMessage::Binary(vec![0; 6].into())),
            Err(SendError::SlowConsumer)
        );
    }

    #[test]
    fn bytes_never_carry_into_the_frame_count() {
        let queued = Queued::default();
        assert!(queued.reserve(MAX_BYTES, 2, MAX_BYTES).is_ok());
        // One more byte would carry into the item bits: refused instead.
        assert!(matches!(queued.reserve(1, 2, MAX_BYTES), Err(Full::Bytes)));
        assert_eq!(queued.0.load(Ordering::Relaxed), ONE_ITEM + MAX_BYTES);
        queued.release(MAX_BYTES);
        assert_eq!(queued.0.load(Ordering::Relaxed), 0);
    }
}
