//! One WebSocket connection: joins its room, forwards the client's frames to
//! the room's inbox, and writes what the room queues for it.
//!
//! The reader and the writer run as two futures of one task, each polled
//! only when woken ([`halves`]). The reader owns
//! liveness (idle timeout, ping rate, oversized frames, protocol violations,
//! the peer's close); the writer owns the socket's sending half (frames,
//! pings, close frames), writes what is queued in batches with one flush
//! each, and closes a client that leaves its output unread.
//! Every way a connection ends tells the room exactly once, and every close
//! the host decides on is sent as a close frame with its code.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, interval_at, timeout};
use tokio_util::sync::CancellationToken;

use tokio::sync::oneshot;

use crate::access::{Access, Grant};
use crate::client::{
    ClientId, ClientReceivers, ClientSender, Flag, ForcedClose, Move, Outbound, OutboundQueue,
};
use crate::close;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::room::{ConnectRequest, JoinError, LOBBY, LeaveReason, RoomEvent, RoomHandle, Rooms};
use crate::service::Service;
use crate::wasm::{GuestHandoff, GuestMessage};

mod halves;
mod misbehaviour;

use misbehaviour::{PingRate, close_for, tungstenite_error, unread_output};

/// Where a connection goes and what it asked for.
pub(crate) struct Target {
    pub(crate) service: Arc<Service>,
    /// The room id, or [`LOBBY`] for the service root.
    pub(crate) room: String,
    pub(crate) path: String,
    pub(crate) query: String,
    /// The client's address (room creations count against it).
    pub(crate) address: IpAddr,
    /// The resume token the client presented (`roomhost_resume`), to take
    /// the place of a client whose connection was lost.
    pub(crate) resume: Option<String>,
    /// What the client's token grants, when its service requires one: its
    /// identity and claims, and the rooms it may enter (checked again on
    /// every transfer).
    pub(crate) grant: Option<Grant>,
    /// Set when the client arrives by a transfer from a room on another
    /// node of the cluster.
    pub(crate) handoff: Option<GuestHandoff>,
    /// Links between the client's socket and this node (0: connected here,
    /// or forwarded by the proxy path).
    pub(crate) hops: u8,
}

/// Initial read buffer of a WebSocket connection.
pub(crate) const READ_BUFFER_BYTES: usize = 1024;

/// The query parameter a reconnecting client presents its token in.
pub(crate) const RESUME_PARAM: &str = "roomhost_resume";

/// A fresh resume token: 128 random bits, hex.
fn new_resume_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A WebSocket split into its sending and receiving halves.
pub(crate) type Halves = (SplitSink<WebSocket, WsMessage>, SplitStream<WebSocket>);

/// Runs a connection to its end.
///
/// The socket comes split and the target boxed: an async fn keeps every
/// argument it was given for its whole life, beside what it moves them
/// into (the socket into the split, the target into the body's own copy),
/// so an unsplit socket and an inline target cost each connection ~1 KiB
/// of dead bytes, twice over with the task's block around it (issue 19).
pub(crate) async fn run(
    (sink, stream): Halves,
    client: ClientId,
    target: Box<Target>,
    rooms: Arc<Rooms>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
) {
    // A reconnecting client takes its old id, checked before anything else.
    let (client, resuming) = match &target.resume {
        Some(token) => match rooms.claim_resume(target.service.name(), token) {
            Ok((old, room)) => (old, Some(Ok(room))),
            Err(refused) => (client, Some(Err(refused))),
        },
        None => (client, None),
    };
    let resumable = !target
        .service
        .plugin()
        .description()
        .reconnect_grace
        .is_zero();
    let resume_token = resumable.then(new_resume_token);
    let (sender, receivers) =
        ClientSender::new(client, limits.client_queue, limits.client_queue_bytes);
    let ClientReceivers {
        frames,
        mut moves,
        forced,
    } = receivers;
    let writer_done = Flag::default();
    let reader_done = Flag::default();
    rooms.register_client(
        &target.service.name_arc(),
        sender.clone(),
        resume_token.clone(),
    );
    rooms.metrics().connection_accepted();

    let writer = write_loop(
        sink,
        frames,
        forced.clone(),
        Signals {
            shutdown,
            reader_done: &reader_done,
            writer_done: &writer_done,
        },
        &limits,
    );
    let reader = async {
        let request = ConnectRequest {
            sender: sender.clone(),
            path: target.path,
            query: target.query,
            identity: target
                .grant
                .as_ref()
                .and_then(|grant| grant.identity.clone()),
            claims: target.grant.as_ref().map(|grant| grant.claims.clone()),
            read_only: read_only(target.grant.as_ref(), &target.room),
            handoff: target.handoff.clone(),
            resume_token: resume_token.clone(),
            address: Some(target.address),
        };
        let mut reader = Reader {
            stream,
            forced: &forced,
            writer_done: &writer_done,
            limits: &limits,
            metrics: rooms.metrics(),
            pings: PingRate::new(limits.max_pings_per_sec),
        };
        // The join is boxed: it ends before the connection goes idle, and
        // inline its future would size every connection's task for as long
        // as it lives (issue 19).
        let entered = match resuming {
            None => {
                Box::pin(rooms.join(&target.service, &target.room, request.clone(), true)).await
            }
            Some(Ok(room)) => {
                let token = resume_token.clone().unwrap_or_default();
                rooms
                    .resume(&room, sender.clone(), token)
                    .await
                    .map(|()| room)
            }
            Some(Err(refused)) => Err(refused),
        };
        let mut held = false;
        match entered {
            Ok(room) => {
                tracing::debug!("joined");
                let mover = Mover {
                    rooms: &rooms,
                    service: &target.service,
                    request: &request,
                    grant: target.grant.as_ref(),
                    hops: target.hops,
                };
                let (reason, room) = reader.forward(client, room, &mut moves, &mover).await;
                tracing::debug!(?reason, "left");
                // Only a room that keeps the client waiting to reconnect
                // answers; one that ended or let it go drops the question.
                let (hold, answer) = oneshot::channel();
                let event = RoomEvent::Disconnect {
                    client,
                    reason,
                    connection: sender.connection(),
                    held: (reason == LeaveReason::Lost && resume_token.is_some()).then_some(hold),
                };
                if room.inbox.send(event).await.is_ok() {
                    held = answer.await.is_ok();
                }
            }
            Err(error) => {
                tracing::debug!(%error, "join refused");
                rooms.metrics().connection_refused(join_error_label(&error));
                sender.close(join_error_code(&error), &error.to_string());
                reader.drain().await;
            }
        }
        reader_done.set();
        held
    };
    let (held, ()) = halves::join(reader, writer).await;
    forced.forget_waiters();
    rooms.connection_ended(client, sender.connection(), held);
}

/// How metrics name a refused join.
fn join_error_label(error: &JoinError) -> &'static str {
    match error {
        JoinError::Rejected { .. } => "rejected",
        JoinError::RoomLimit(_) => "room_limit",
        JoinError::CreationRate(_) => "creation_rate",
        JoinError::RoomFailed(_) => "room_failed",
        JoinError::NoSuchRoom(_) => "no_such_room",
        JoinError::ResumeRefused(_) => "resume_refused",
        JoinError::Elsewhere { .. } => "elsewhere",
        JoinError::Unplaced(_) | JoinError::Unclaimed => "unplaced",
    }
}

/// Whether `grant` gives only read access to `room` (no grant: the service
/// does not require tokens, so nothing is restricted).
fn read_only(grant: Option<&Grant>, room: &str) -> bool {
    grant.is_some_and(|grant| grant.access(room) == Some(Access::Read))
}

fn join_error_code(error: &JoinError) -> u16 {
    match error {
        JoinError::Rejected { code, .. } => *code,
        JoinError::RoomLimit(_)
        | JoinError::CreationRate(_)
        | JoinError::Unplaced(_)
        | JoinError::Unclaimed => close::TRY_AGAIN_LATER,
        // The room moved to another node since the upgrade was routed:
        // reconnecting reaches it.
        JoinError::Elsewhere { .. } => close::SERVICE_RESTART,
        JoinError::RoomFailed(_) | JoinError::NoSuchRoom(_) => close::ROOM_ERROR,
        JoinError::ResumeRefused(_) => close::POLICY,
    }
}

/// Carries out a room's order to move this connection's client.
struct Mover<'a> {
    rooms: &'a Arc<Rooms>,
    service: &'a Arc<Service>,
    request: &'a ConnectRequest,
    grant: Option<&'a Grant>,
    /// Links the client's socket crosses to reach this node.
    hops: u8,
}

impl Mover<'_> {
    /// Moves the client from `from` as `order` says, or back to `from` with
    /// the reason when the target refuses it. Frames that reached `from` after
    /// the transfer follow the client, before any newer frame.
    async fn relocate(
        &self,
        client: ClientId,
        order: Move,
        from: &RoomHandle,
    ) -> Result<RoomHandle, String> {
        let (reply, held) = oneshot::channel();
        let held = match from.inbox.send(RoomEvent::Depart { client, reply }).await {
            Ok(()) => held.await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let target = order.to.as_deref().unwrap_or(LOBBY);
        let request = ConnectRequest {
            handoff: Some(order.handoff.clone()),
            read_only: read_only(self.grant, target),
            ..self.request.clone()
        };
        // The token's rooms bound transfers too: a room it does not open is
        // refused like a room that rejected the client.
        let joined = match self.grant.map(|grant| grant.access_to(target)) {
            Some(Err(refused)) => Err(refused.to_string()),
            _ => match self
                .rooms
                .join(self.service, target, request.clone(), order.create)
                .await
            {
                // Another node runs the target: the client follows over a
                // link to it, keeping this socket.
                Err(JoinError::Elsewhere { node, address }) => {
                    self.rooms
                        .join_remote(
                            (self.service.name(), target),
                            (&node, &address),
                            (&request, self.grant, self.hops),
                        )
                        .await
                }
                joined => joined.map_err(|refused| refused.to_string()),
            },
        };
        let room = match joined {
            Ok(room) => room,
            Err(refused) => {
                tracing::debug!(to = target, %refused, "transfer refused; returning the client");
                let request = ConnectRequest {
                    handoff: Some(GuestHandoff {
                        from_room: order.to,
                        data: order.handoff.data,
                        rejected: Some(refused.clone()),
                    }),
                    read_only: read_only(self.grant, &from.meta.key.room),
                    ..self.request.clone()
                };
                self.rooms
                    .join(self.service, &from.meta.key.room, request, true)
                    .await
                    .map_err(|error| {
                        format!("transfer failed: {refused}; returning failed: {error}")
                    })?
            }
        };
        for message in held {
            if room
                .inbox
                .send(RoomEvent::Frame { client, message })
                .await
                .is_err()
            {
                break;
            }
        }
        Ok(room)
    }
}

/// The reading half and what it needs to decide when to stop.
struct Reader<'a> {
    stream: SplitStream<WebSocket>,
    forced: &'a ForcedClose,
    writer_done: &'a Flag,
    limits: &'a Limits,
    metrics: &'a Metrics,
    pings: PingRate,
}

impl Reader<'_> {
    /// Forwards frames to the client's current room until the connection
    /// ends, following moves. Returns why it ended and the room it ended in.
    async fn forward(
        &mut self,
        client: ClientId,
        mut room: RoomHandle,
        moves: &mut mpsc::Receiver<Box<Move>>,
        mover: &Mover<'_>,
    ) -> (LeaveReason, RoomHandle) {
        let mut closing_deadline = None;
        loop {
            let next = tokio::select! {
                biased;
                // The host is closing the client (slow consumer, a close
                // that did not fit its queue): it leaves its room now; the
                // writer takes its time to get the close frame out.
                () = self.forced.reader_requested() => return (LeaveReason::Lost, room),
                Some(order) = moves.recv() => {
                    // Boxed: a transfer's future (a join into another room
                    // included) would otherwise be part of every idle
                    // connection's task (issue 19).
                    match Box::pin(mover.relocate(client, *order, &room)).await {
                        Ok(next_room) => room = next_room,
                        Err(reason) => {
                            self.forced.request(close::ROOM_ERROR, &reason);
                            return (LeaveReason::Lost, room);
                        }
                    }
                    continue;
                }
                next = self.next(&mut closing_deadline) => next,
            };
            let Some(next) = next else {
                // Idle, or our close was not acknowledged in time.
                if closing_deadline.is_none() {
                    self.forced.request(close::GOING_AWAY, "idle timeout");
                }
                return (LeaveReason::Lost, room);
            };
            let message = match next {
                None => return (LeaveReason::Closed, room),
                Some(Ok(message)) => message,
                Some(Err(error)) => return (self.failed(error), room),
            };
            let message = match message {
                WsMessage::Text(text) => {
                    self.metrics.frame_in(text.len());
                    GuestMessage::Text(text.as_str().to_owned())
                }
                WsMessage::Binary(bytes) => {
                    self.metrics.frame_in(bytes.len());
                    GuestMessage::Binary(bytes.to_vec())
                }
                // The protocol layer answers pings and close frames itself;
                // each pong is output the client has to read, so pings are
                // rate-limited.
                WsMessage::Ping(_) => {
                    if !self.pings.allow() {
                        let reason = format!(
                            "too many pings (max_pings_per_sec = {})",
                            self.limits.max_pings_per_sec
                        );
                        self.forced.request(close::POLICY, &reason);
                        return (LeaveReason::Lost, room);
                    }
                    continue;
                }
                WsMessage::Pong(_) => continue,
                WsMessage::Close(_) => return (LeaveReason::Closed, room),
            };
            if room
                .inbox
                .send(RoomEvent::Frame { client, message })
                .await
                .is_err()
            {
                // The room is gone; it closed this client on its way out.
                return (LeaveReason::Lost, room);
            }
        }
    }

    /// Reads until the peer acknowledges a close we sent (or gives up).
    async fn drain(&mut self) {
        let mut closing_deadline = None;
        while let Some(Some(Ok(_))) = self.next(&mut closing_deadline).await {}
    }

    /// The next frame, or `None` when the wait timed out: the idle timeout
    /// normally, the shutdown grace once the writer has sent a close frame.
    async fn next(
        &mut self,
        closing_deadline: &mut Option<Instant>,
    ) -> Option<Option<Result<WsMessage, axum::Error>>> {
        loop {
            let wait = match *closing_deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => self.limits.idle_timeout,
            };
            tokio::select! {
                next = timeout(wait, self.stream.next()) => return next.ok(),
                () = self.writer_done.wait(), if closing_deadline.is_none() => {
                    *closing_deadline = Some(Instant::now() + self.limits.shutdown_grace);
                }
            }
        }
    }

    fn failed(&self, error: axum::Error) -> LeaveReason {
        match close_for(&error, self.limits) {
            Some((code, reason)) => {
                tracing::debug!(%error, code, "closing the client");
                self.forced.request(code, &reason);
            }
            None => tracing::debug!(%error, "connection failed"),
        }
        LeaveReason::Lost
    }
}

/// A close the room queued for this client, if any (frames before it are
/// dropped: the connection is ending).
fn queued_close(queue: &mut OutboundQueue) -> Option<(u16, String)> {
    while let Some(out) = queue.try_recv() {
        if let Outbound::Close(code, reason) = out {
            return Some((code, reason));
        }
    }
    None
}

/// Signals between the writer, the reader and the server.
struct Signals<'a> {
    shutdown: CancellationToken,
    reader_done: &'a Flag,
    writer_done: &'a Flag,
}

/// Frames one batch takes from the queue at most before it flushes, so a
/// writer whose room keeps its queue full still gets its flush out (and lets
/// other tasks run) at a bounded interval.
const MAX_BATCH_FRAMES: usize = 256;

async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut queue: OutboundQueue,
    forced: Arc<ForcedClose>,
    signals: Signals<'_>,
    limits: &Limits,
) {
    let ping_interval = limits.ping_interval;
    let mut ping = interval_at(Instant::now() + ping_interval, ping_interval);
    // Created once, not per frame: the shutdown token's future registers
    // a waiter when first polled, and re-creating it per frame cost a
    // waiter list insert and removal per delivery.
    let forced_close = forced.writer_requested();
    let shutdown = signals.shutdown.cancelled();
    let reader_done = signals.reader_done.wait();
    tokio::pin!(forced_close, shutdown, reader_done);
    // Set when the client left output unread for `idle_timeout`: its close
    // then waits only the grace, not another `idle_timeout`.
    let mut stalled = false;
    // Reused batch after batch (see `OutboundQueue::finish_batch`).
    let mut batch = VecDeque::new();
    let close = loop {
        let more = tokio::select! {
            biased;
            () = &mut forced_close => break forced.frame(),
            () = &mut shutdown => break Some((close::GOING_AWAY, "server shutting down".to_owned())),
            // The room may have queued a close (kick, failure) just before
            // the reader stopped: deliver it rather than drop it.
            () = &mut reader_done => break queued_close(&mut queue),
            more = queue.recv_batch(&mut batch, MAX_BATCH_FRAMES) => more,
            _ = ping.tick() => {
                batch.push_back(Outbound::Frame(WsMessage::Ping(Default::default())));
                true
            }
        };
        if !more {
            break None;
        }
        // One batch: everything queued by the time the writer runs goes
        // into the WebSocket's write buffer, which writes to the socket
        // only past 16 KiB (`http::ws::write_batch_bytes`), then one flush
        // writes the rest. An idle connection's batch is one frame, written
        // at once (TCP_NODELAY); a busy one's frames share write calls and
        // TCP segments. A close queued behind the batch is sent after it.
        //
        // A peer that stops reading blocks the batch; a forced close or a
        // shutdown must still be attempted, so they abort it (the close
        // frame's own send is bounded below). A peer that reads nothing for
        // `idle_timeout` is as dead as one that sends nothing.
        let mut close_after = None;
        let sent = {
            let write = write_batch(&mut sink, &mut batch, &mut close_after);
            tokio::pin!(write);
            // Most batches go out at once: only one the socket holds back
            // arms the stall timer (a timer per batch was a timer-wheel
            // insert and removal per delivery).
            match futures_util::poll!(write.as_mut()) {
                Poll::Ready(sent) => Ok(sent),
                Poll::Pending => tokio::select! {
                    biased;
                    () = &mut forced_close => break forced.frame(),
                    () = &mut shutdown => break Some((close::GOING_AWAY, "server shutting down".to_owned())),
                    sent = timeout(limits.idle_timeout, write) => sent,
                },
            }
        };
        queue.finish_batch(&mut batch);
        // A client that leaves too much unread is closed through `forced`,
        // so its reader leaves the room at once.
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(error)) => match tungstenite_error(&error) {
                Some(tungstenite::Error::WriteBufferFull(_)) => {
                    let (code, reason) = unread_output(limits);
                    forced.request(code, &reason);
                    break forced.frame();
                }
                _ => break None,
            },
            Err(_) => {
                let reason = format!(
                    "slow consumer: output unread for {} ms (idle_timeout)",
                    limits.idle_timeout.as_millis()
                );
                forced.request(close::POLICY, &reason);
                stalled = true;
                break forced.frame();
            }
        }
        if let Some(close) = close_after {
            break Some(close);
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: close::truncate_reason(&reason).into(),
        };
        // The close goes after whatever the client has not read yet: flush
        // that first (it frees the buffer the close needs). A client that
        // reads slowly gets there within `idle_timeout`, the most a client
        // may leave output unread; a shutdown, or a client that already
        // stalled that long, waits only the grace.
        let wait = if stalled || signals.shutdown.is_cancelled() {
            limits.shutdown_grace
        } else {
            limits.idle_timeout
        };
        let deliver = async {
            sink.flush().await?;
            sink.send(WsMessage::Close(Some(frame))).await
        };
        tokio::select! {
            _ = timeout(wait, deliver) => {}
            () = signals.shutdown.cancelled(), if !signals.shutdown.is_cancelled() => {}
        }
    } else {
        // When the client closed first, the protocol layer queued the reply
        // to its close frame; only a write or a flush sends it. Without it
        // the client sees an abnormal closure (1006).
        let _ = timeout(Duration::from_secs(1), sink.flush()).await;
    }
    signals.writer_done.set();
}

/// Writes a batch with one flush. Stops at a close, which it leaves in
/// `close` for the caller to send after the batch.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    batch: &mut VecDeque<Outbound>,
    close: &mut Option<(u16, String)>,
) -> Result<(), axum::Error> {
    while let Some(out) = batch.pop_front() {
        match out {
            Outbound::Frame(frame) => sink.feed(frame).await?,
            Outbound::Close(code, reason) => {
                *close = Some((code, reason));
                break;
            }
        }
    }
    sink.flush().await
}
