//! The handle a room uses to write to one client: a bounded frame queue plus a
//! close signal that cannot be blocked by a full queue.
//!
//! Rooms never await a client. [`ClientSender::send`] either queues the frame
//! or, when the queue is full, closes the client as a slow consumer. That keeps
//! one slow reader from stalling its room or growing the host's memory.

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
    queue: mpsc::Sender<Outbound>,
    forced: Arc<ForcedClose>,
    moves: mpsc::Sender<Move>,
}

/// The receiving ends of a client's channels, owned by its connection.
pub(crate) struct ClientReceivers {
    pub(crate) frames: mpsc::Receiver<Outbound>,
    pub(crate) moves: mpsc::Receiver<Move>,
    pub(crate) forced: Arc<ForcedClose>,
}

impl ClientSender {
    /// Creates a sender with a queue of `capacity` frames and the receiving end
    /// the connection's writer drains.
    pub(crate) fn new(id: ClientId, capacity: usize) -> (ClientSender, ClientReceivers) {
        let (queue, frames) = mpsc::channel(capacity.max(1));
        let (moves, move_orders) = mpsc::channel(MOVE_QUEUE);
        let forced = Arc::new(ForcedClose::default());
        let sender = ClientSender {
            id,
            queue,
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
    /// (benchmarks, embedders).
    pub fn detached(id: ClientId, capacity: usize) -> (ClientSender, mpsc::Receiver<Outbound>) {
        let (sender, receivers) = ClientSender::new(id, capacity);
        (sender, receivers.frames)
    }

    /// The client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Queues a frame, closing the client with 1008 if its queue is full.
    pub fn send(&self, frame: WsMessage) -> Result<(), SendError> {
        match self.queue.try_send(Outbound::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.forced
                    .request(close::POLICY, "slow consumer: outbound queue full");
                Err(SendError::SlowConsumer)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Gone),
        }
    }

    /// Closes the client after the frames already queued for it.
    pub fn close(&self, code: u16, reason: &str) {
        let reason = close::truncate_reason(reason);
        if let Err(mpsc::error::TrySendError::Full(_)) = self
            .queue
            .try_send(Outbound::Close(code, reason.to_owned()))
        {
            self.forced.request(code, reason);
        }
    }

    /// Orders the client's connection to move to another room; a client
    /// whose connection cannot take the order is closed.
    pub(crate) fn relocate(&self, order: Move) {
        if self.moves.try_send(order).is_err() {
            self.forced
                .request(close::ROOM_ERROR, "transfer failed: connection busy");
        }
    }
}
