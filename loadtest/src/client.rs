//! One simulated client, as one task: connect (bounded by a timeout and a shared limit on
//! handshakes in progress), then send loadtest frames on the client's schedule while reading
//! the room's frames, and record deliveries, latency, closes and errors into the shared
//! [`Stats`].
//!
//! At a fixed rate, every frame carries the time it was *scheduled* to go out, not the time
//! it went out, as wrk2 does: a client held back by a slow server (a full socket) or a busy
//! core does not pause the clock, so the wait shows up as latency instead of being left out
//! (coordinated omission). Sends skipped because a client fell too far behind, or never made
//! because it was stuck in a send at the end, count as expected deliveries that never came.
//!
//! The reader and the writer are two futures polled by the same task, so the client never
//! stops reading while a send waits on the socket (a server that pushes while it reads would
//! otherwise deadlock with it), and no extra task exists per client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::stream::SplitStream;
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::config::Plan;
use crate::payload::{self, Header};
use crate::stats::Stats;
use crate::timeline::{Timeline, saturating_micros};

type Ws = WebSocketStream<TcpStream>;

/// Handshakes in progress at once: with no ramp-up, thousands of simultaneous connects would
/// overflow the server's accept backlog and time out instead of measuring anything.
pub(crate) const MAX_CONCURRENT_HANDSHAKES: usize = 256;
/// In unlimited-rate mode, how long a client waits for the echo of its own frames before it
/// counts them lost and sends again (a room that does not echo to the sender).
const ECHO_TIMEOUT: Duration = Duration::from_secs(1);
/// A rate-limited client that falls further behind its schedule than this skips the missed
/// sends instead of bursting them (and counts them as lost).
pub(crate) const CATCH_UP_LIMIT: Duration = Duration::from_secs(1);
/// Time given to the close handshake at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What every client shares.
pub(crate) struct Shared {
    pub plan: Plan,
    pub timeline: Timeline,
    pub stats: Stats,
    /// Resolved target addresses, tried in order.
    pub addrs: Vec<SocketAddr>,
    /// Open connections per room: the fan-out each frame sent is expected to reach.
    pub room_open: Box<[AtomicU64]>,
    pub handshakes: Semaphore,
}

impl Shared {
    pub(crate) fn new(plan: Plan, timeline: Timeline, addrs: Vec<SocketAddr>) -> Self {
        let rooms = plan.config().rooms;
        Shared {
            plan,
            timeline,
            stats: Stats::new(),
            addrs,
            room_open: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
            handshakes: Semaphore::new(MAX_CONCURRENT_HANDSHAKES),
        }
    }
}

/// Runs client `id` until the coordinator says stop or the connection ends.
pub(crate) async fn run(shared: Arc<Shared>, id: u32, mut stop: watch::Receiver<bool>) {
    let counters = &shared.stats.counters;
    counters.attempted.fetch_add(1, Relaxed);
    // Clients are numbered across rooms first, so rooms fill evenly during the ramp-up.
    let room = id % shared.plan.config().rooms;
    let ws = match connect(&shared, room).await {
        Ok(ws) => ws,
        Err(kind) => {
            counters.failed.fetch_add(1, Relaxed);
            shared.stats.error(kind);
            return;
        }
    };
    counters.established.fetch_add(1, Relaxed);
    counters.open.fetch_add(1, Relaxed);
    let room_open = &shared.room_open[room as usize];
    room_open.fetch_add(1, Relaxed);

    Session {
        shared: &shared,
        id,
        room,
        in_flight: AtomicU32::new(0),
        echoed: Notify::new(),
    }
    .run(ws, &mut stop)
    .await;

    room_open.fetch_sub(1, Relaxed);
    counters.open.fetch_sub(1, Relaxed);
}

async fn connect(shared: &Shared, room: u32) -> Result<Ws, String> {
    // The semaphore is never closed; if it were, connecting without the limit is harmless.
    let _permit = shared.handshakes.acquire().await.ok();
    let started = Instant::now();
    let url = shared.plan.room_url(room);
    let attempt = async {
        let tcp = TcpStream::connect(&shared.addrs[..])
            .await
            .map_err(|error| format!("connect: {}", error.kind()))?;
        // Latency is the point of the exercise: do not let Nagle hold small frames back.
        let _ = tcp.set_nodelay(true);
        let (ws, _response) = tokio_tungstenite::client_async(url, tcp)
            .await
            .map_err(|error| classify("handshake", &error))?;
        Ok::<_, String>(ws)
    };
    let ws = timeout(shared.plan.config().connect_timeout, attempt)
        .await
        .map_err(|_| "connect: timed out".to_owned())??;
    shared
        .stats
        .connect
        .record(saturating_micros(started.elapsed()));
    Ok(ws)
}

/// A short, stable description of a WebSocket error, used as the key of the error counts.
fn classify(stage: &str, error: &tungstenite::Error) -> String {
    use tungstenite::Error as E;
    let what = match error {
        E::ConnectionClosed | E::AlreadyClosed => "connection closed".to_owned(),
        E::Io(io) => io.kind().to_string(),
        E::Http(response) => format!("HTTP {}", response.status()),
        E::HttpFormat(_) => "malformed HTTP".to_owned(),
        E::Protocol(protocol) => format!("protocol error: {protocol}"),
        E::Capacity(capacity) => format!("too large: {capacity}"),
        E::Utf8(_) => "text frame is not UTF-8".to_owned(),
        E::Url(url) => format!("bad URL: {url}"),
        E::Tls(_) => "TLS error".to_owned(),
        E::WriteBufferFull(_) => "write buffer full".to_owned(),
        E::AttackAttempt => "attack attempt detected".to_owned(),
    };
    format!("{stage}: {what}")
}

/// How the read side ended.
enum ReadEnd {
    /// The coordinator said stop.
    Stopped,
    /// The server sent a close frame (code and reason; 1005 when it had none).
    Closed(u16, String),
    /// The connection ended without a close frame.
    Eof,
    /// A read error, classified.
    Error(String),
}

struct Session<'a> {
    shared: &'a Shared,
    id: u32,
    room: u32,
    /// Own frames sent and not yet received back (unlimited-rate mode).
    in_flight: AtomicU32,
    /// Signalled when an own frame comes back.
    echoed: Notify,
}

impl Session<'_> {
    async fn run(&self, ws: Ws, stop: &mut watch::Receiver<bool>) {
        let stats = &self.shared.stats;
        let (mut sink, mut stream) = ws.split();
        let (read_end, writer_done) = {
            let reader = self.read(&mut stream, stop);
            let writer = self.write(&mut sink);
            tokio::pin!(reader, writer);
            let mut writer_done = false;
            let read_end = loop {
                tokio::select! {
                    end = &mut reader => break end,
                    result = &mut writer, if !writer_done => {
                        writer_done = true;
                        if let Err(kind) = result {
                            stats.error(kind);
                        }
                    }
                }
            };
            (read_end, writer_done)
        };
        match read_end {
            ReadEnd::Stopped => {
                // A writer still blocked in a send at the end leaves the sink mid-frame: just
                // drop the connection then.
                if writer_done {
                    let close = Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "loadtest finished".into(),
                    }));
                    let _ = timeout(CLOSE_GRACE, async {
                        if sink.send(close).await.is_ok() {
                            drain(&mut stream).await;
                        }
                    })
                    .await;
                }
                return;
            }
            ReadEnd::Closed(code, reason) => stats.close(code, &reason),
            ReadEnd::Eof => {
                stats.error("receive: connection ended without a close frame".to_owned())
            }
            ReadEnd::Error(kind) => stats.error(kind),
        }
        // Reading on lets tungstenite send its reply to the server's close frame.
        let _ = timeout(CLOSE_GRACE, drain(&mut stream)).await;
    }

    async fn read(
        &self,
        stream: &mut SplitStream<Ws>,
        stop: &mut watch::Receiver<bool>,
    ) -> ReadEnd {
        // wait_for checks the current value first, so a stop sent before this client
        // connected is not missed. An Err means the coordinator is gone: stop as well.
        let stopped = stop.wait_for(|stop| *stop);
        tokio::pin!(stopped);
        loop {
            let item = tokio::select! {
                biased;
                _ = &mut stopped => return ReadEnd::Stopped,
                item = stream.next() => item,
            };
            let message = match item {
                None => return ReadEnd::Eof,
                Some(Err(error)) => return ReadEnd::Error(classify("receive", &error)),
                Some(Ok(message)) => message,
            };
            let header = match &message {
                Message::Text(text) => payload::decode_text(text.as_str()),
                Message::Binary(bytes) => payload::decode_binary(bytes),
                Message::Close(frame) => {
                    return match frame {
                        Some(frame) => {
                            ReadEnd::Closed(u16::from(frame.code), frame.reason.to_string())
                        }
                        // RFC 6455 §7.1.5: no status code in the close frame.
                        None => ReadEnd::Closed(1005, String::new()),
                    };
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            self.received(header);
        }
    }

    fn received(&self, header: Option<Header>) {
        let shared = self.shared;
        let counters = &shared.stats.counters;
        let now_us = shared.timeline.micros(Instant::now());
        let header = header.filter(|h| {
            // A frame from another process (its own origin) or a forged one: not ours.
            h.sender < shared.plan.connections() && h.sent_us <= now_us
        });
        let Some(header) = header else {
            counters.other_frames.fetch_add(1, Relaxed);
            return;
        };
        if header.sender == self.id {
            let _ = self
                .in_flight
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
            self.echoed.notify_one();
        }
        if shared.timeline.in_window(header.sent_us) {
            counters.delivered.fetch_add(1, Relaxed);
            shared.stats.latency.record(now_us - header.sent_us);
        }
    }

    /// Sends until the end of the measurement window; returns the error that stopped it.
    async fn write<S>(&self, sink: &mut S) -> Result<(), String>
    where
        S: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let config = self.shared.plan.config();
        let end = self.shared.timeline.measure_end();
        let writing = Writing::start(&self.shared.stats.counters.writing);
        let mut seq = 0u32;
        if config.rate > 0.0 {
            // validate() keeps the rate within [MIN_RATE_PER_CLIENT, MAX_RATE_PER_CLIENT].
            let period = Duration::from_secs_f64(1.0 / config.rate);
            // Spread first sends over one period so clients connected together do not send in
            // lockstep (a deterministic hash of the id: no RNG needed).
            let phase = (u64::from(self.id).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                / (1u64 << 53) as f64;
            let mut next = Instant::now() + period.mul_f64(phase);
            while next < end {
                sleep_until(next.into()).await;
                let send = self.send_one(sink, Some(next), &mut seq);
                tokio::pin!(send);
                tokio::select! {
                    biased;
                    sent = &mut send => sent?,
                    () = sleep_until(end.into()) => {
                        // Still in this send when the window closes (the server stopped
                        // reading): the sends scheduled after it are never made. Counted now,
                        // while the room's clients are all still there.
                        self.skipped(next + period, period, u64::MAX);
                        drop(writing);
                        return send.await;
                    }
                }
                next += period;
                let behind = Instant::now().saturating_duration_since(next);
                if behind > CATCH_UP_LIMIT {
                    let missed = u32::try_from(behind.as_nanos() / period.as_nanos().max(1))
                        .unwrap_or(u32::MAX);
                    self.skipped(next, period, u64::from(missed));
                    next += period * missed;
                }
            }
        } else {
            loop {
                while self.in_flight.load(Relaxed) >= config.max_in_flight {
                    tokio::select! {
                        _ = self.echoed.notified() => {}
                        _ = sleep(ECHO_TIMEOUT) => {
                            self.in_flight.store(0, Relaxed);
                            self.shared.stats.error(
                                "no echo of own frame within 1 s (does the room broadcast to \
                                 the sender?)"
                                    .to_owned(),
                            );
                        }
                        _ = sleep_until(end.into()) => return Ok(()),
                    }
                }
                if Instant::now() >= end {
                    return Ok(());
                }
                self.in_flight.fetch_add(1, Relaxed);
                let send = self.send_one(sink, None, &mut seq);
                tokio::pin!(send);
                tokio::select! {
                    biased;
                    sent = &mut send => sent?,
                    () = sleep_until(end.into()) => {
                        drop(writing);
                        return send.await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends one frame stamped with `scheduled`, or with the current time when the client has
    /// no schedule (unlimited rate).
    async fn send_one<S>(
        &self,
        sink: &mut S,
        scheduled: Option<Instant>,
        seq: &mut u32,
    ) -> Result<(), String>
    where
        S: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let shared = self.shared;
        let config = shared.plan.config();
        let sent_us = shared
            .timeline
            .micros(scheduled.unwrap_or_else(Instant::now));
        let header = Header {
            sent_us,
            sender: self.id,
            seq: *seq,
        };
        *seq = seq.wrapping_add(1);
        // Counted before the frame leaves: receivers count a delivery as soon as they read it,
        // and the drain ends once deliveries reach the expected count, so a frame counted
        // after its send returned could be delivered uncounted and end the drain early.
        let counters = &shared.stats.counters;
        let counted = shared.timeline.in_window(sent_us).then(|| {
            let fanout = shared.room_open[self.room as usize].load(Relaxed);
            counters.sent.fetch_add(1, Relaxed);
            counters.expected.fetch_add(fanout, Relaxed);
            fanout
        });
        let frame = payload::encode(header, config.payload_bytes, config.binary);
        if let Err(error) = sink.send(frame).await {
            if let Some(fanout) = counted {
                counters.sent.fetch_sub(1, Relaxed);
                counters.expected.fetch_sub(fanout, Relaxed);
            }
            return Err(classify("send", &error));
        }
        Ok(())
    }

    /// Counts the sends of `count` scheduled from `first`, every `period`, that fall in the
    /// measurement window and were never made: lost, each to its whole room.
    fn skipped(&self, first: Instant, period: Duration, count: u64) {
        let shared = self.shared;
        let skipped = shared.timeline.scheduled_in_window(first, period, count);
        if skipped == 0 {
            return;
        }
        let counters = &shared.stats.counters;
        let fanout = shared.room_open[self.room as usize].load(Relaxed);
        counters.sends_skipped.fetch_add(skipped, Relaxed);
        counters
            .expected
            .fetch_add(skipped.saturating_mul(fanout), Relaxed);
    }
}

/// A writer that has not reached the end of the measurement window, in
/// [`Counters::writing`](crate::stats::Counters::writing) until dropped: the drain does not
/// call the window's deliveries complete while one is.
struct Writing<'a>(&'a AtomicU64);

impl<'a> Writing<'a> {
    fn start(writing: &'a AtomicU64) -> Self {
        writing.fetch_add(1, Relaxed);
        Writing(writing)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Reads and discards until the connection ends.
async fn drain(stream: &mut SplitStream<Ws>) {
    while let Some(Ok(_)) = stream.next().await {}
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::config::LoadConfig;
    use crate::stats::Counters;

    /// A sink that records the counters at the moment each frame is handed to it, and fails
    /// on demand.
    struct Probe<'a> {
        counters: &'a Counters,
        seen: Vec<(u64, u64, Header)>,
        fail: bool,
    }

    impl Sink<Message> for Probe<'_> {
        type Error = tungstenite::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, frame: Message) -> Result<(), Self::Error> {
            let this = self.get_mut();
            let header = match &frame {
                Message::Text(text) => payload::decode_text(text.as_str()),
                _ => None,
            }
            .expect("a loadtest frame");
            this.seen.push((
                this.counters.sent.load(Relaxed),
                this.counters.expected.load(Relaxed),
                header,
            ));
            if this.fail {
                Err(tungstenite::Error::ConnectionClosed)
            } else {
                Ok(())
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_frame_is_counted_before_it_leaves_and_uncounted_if_it_fails() {
        let config = LoadConfig {
            ramp_up: Duration::ZERO,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(60),
            ..LoadConfig::default()
        };
        let plan = config.validate().expect("valid");
        let now = Instant::now();
        let origin = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        let shared = Shared::new(plan, Timeline::new(origin, &config), Vec::new());
        shared.room_open[0].store(3, Relaxed);
        let session = Session {
            shared: &shared,
            id: 0,
            room: 0,
            in_flight: AtomicU32::new(0),
            echoed: Notify::new(),
        };
        let counters = &shared.stats.counters;
        let mut probe = Probe {
            counters,
            seen: Vec::new(),
            fail: false,
        };
        let mut seq = 0;

        // Due 300 ms ago: stamped with that time, not with the time it went out.
        let scheduled = now.checked_sub(Duration::from_millis(300)).unwrap_or(now);
        session
            .send_one(&mut probe, Some(scheduled), &mut seq)
            .await
            .expect("sent");
        let (sent, expected, header) = probe.seen[0];
        // Already counted when the frame left: a receiver may count it right away.
        assert_eq!((sent, expected), (1, 3));
        assert_eq!(header.sent_us, shared.timeline.micros(scheduled));
        assert!(header.sent_us + 250_000 <= shared.timeline.micros(Instant::now()));

        probe.fail = true;
        let error = session
            .send_one(&mut probe, None, &mut seq)
            .await
            .expect_err("the sink fails");
        assert!(error.starts_with("send: "), "{error}");
        assert_eq!((probe.seen[1].0, probe.seen[1].1), (2, 6));
        // The failed frame is uncounted.
        assert_eq!(
            (counters.sent.load(Relaxed), counters.expected.load(Relaxed)),
            (1, 3)
        );
        assert_eq!(seq, 2);
    }
}
