//! End-to-end runs of the load generator against small in-test WebSocket servers on
//! ephemeral loopback ports: a room broadcast server (rooms by path, every frame to every
//! member), one that excludes the sender, one that closes every connection with a code, and
//! one that stops reading.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomhost_loadtest::{
    ConfigError, LatencyOrigin, LoadConfig, LoadError, Phase, Progress, Report, run,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

#[derive(Clone, Copy)]
enum Behaviour {
    /// Greet each client with a non-loadtest frame, then broadcast every frame to the room,
    /// sender included (the workload the tool assumes).
    Broadcast,
    /// Broadcast to everyone but the sender.
    BroadcastOthers,
    /// Close every connection right after the handshake with this code.
    Close(u16),
    /// Never read after the handshake: the client's sends block once the socket buffers
    /// are full.
    Stall,
}

type Rooms = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::UnboundedSender<Message>)>>>>;

/// Starts a server on an ephemeral loopback port; it runs until the test's runtime ends.
async fn start_server(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let rooms: Rooms = Arc::default();
    tokio::spawn(async move {
        let mut next_id = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            next_id += 1;
            tokio::spawn(serve(tcp, next_id, behaviour, Arc::clone(&rooms)));
        }
    });
    addr
}

async fn serve(tcp: tokio::net::TcpStream, id: u64, behaviour: Behaviour, rooms: Rooms) {
    let mut path = String::new();
    // tungstenite's Callback trait fixes this signature, large error type included.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        path = request.uri().path().to_owned();
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    if let Behaviour::Stall = behaviour {
        std::future::pending::<()>().await;
    }
    if let Behaviour::Close(code) = behaviour {
        let frame = CloseFrame {
            code: code.into(),
            reason: "go away".into(),
        };
        let _ = ws.close(Some(frame)).await;
        while let Some(Ok(_)) = ws.next().await {}
        return;
    }
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _ = tx.send(Message::text(r#"{"type":"hello"}"#));
    rooms
        .lock()
        .expect("rooms")
        .entry(path.clone())
        .or_default()
        .push((id, tx));
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    // Read until the end: after a close frame this also flushes tungstenite's close reply.
    while let Some(Ok(message)) = stream.next().await {
        if message.is_text() || message.is_binary() {
            let rooms = rooms.lock().expect("rooms");
            for (member, tx) in rooms.get(&path).into_iter().flatten() {
                if *member != id || matches!(behaviour, Behaviour::Broadcast) {
                    let _ = tx.send(message.clone());
                }
            }
        }
    }
    if let Some(members) = rooms.lock().expect("rooms").get_mut(&path) {
        members.retain(|(member, _)| *member != id);
    }
    writer.abort();
}

/// Starts a server on a thread of its own, so it keeps serving while the test blocks the
/// load generator's runtime.
fn start_server_on_its_own_thread(behaviour: Behaviour) -> SocketAddr {
    let (sender, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            sender
                .send(start_server(behaviour).await)
                .expect("test waits");
            std::future::pending::<()>().await
        });
    });
    addr.recv().expect("server address")
}

/// Blocks the calling runtime's thread for `length`, `after` from now: on a current-thread
/// runtime, every client of the run stalls, as on a core busy with something else.
fn stall_the_runtime(after: Duration, length: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        std::thread::sleep(length);
    })
}

fn scenario(addr: SocketAddr) -> LoadConfig {
    LoadConfig {
        url: format!("ws://{addr}/ws"),
        rooms: 3,
        clients_per_room: 4,
        rate: 50.0,
        ramp_up: Duration::from_millis(50),
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(300),
        drain: Duration::from_secs(5),
        ..LoadConfig::default()
    }
}

/// The invariants of a clean run against a full broadcast server.
fn assert_clean_broadcast(report: &Report, connections: u64, fanout: u64) {
    assert_eq!(report.errors, Default::default(), "{report}");
    assert!(report.closes.is_empty(), "{report}");
    let c = &report.connections;
    assert_eq!(
        (c.attempted, c.established, c.failed),
        (connections, connections, 0)
    );
    assert_eq!(c.open_at_end, connections);
    assert_eq!(c.connect_ms.samples, connections);
    let m = &report.messages;
    assert!(m.sent > 0, "{report}");
    assert_eq!(m.expected_deliveries, m.sent * fanout, "{report}");
    assert_eq!(m.delivered, m.expected_deliveries, "{report}");
    assert_eq!(m.fanout_actual, Some(fanout as f64));
    assert_eq!(m.delivery_ratio, Some(1.0));
    // One greeting per connection, never mistaken for a loadtest frame.
    assert_eq!(m.other_frames, connections, "{report}");
    let latency = &report.latency_ms;
    assert_eq!(latency.samples, m.delivered);
    let (p50, p99, max) = (
        latency.p50.expect("p50"),
        latency.p99.expect("p99"),
        latency.max.expect("max"),
    );
    assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{report}");
    // Loopback with a handful of clients: anything near a second means broken timestamps.
    assert!(max < 1000.0, "{report}");
    // The window's sends and receives took some CPU (this process's, the
    // test server's included).
    if cfg!(unix) {
        let cpu = report.generator_cpu_secs.expect("getrusage works here");
        assert!(cpu > 0.0, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_broadcast_delivers_every_frame_to_every_member() {
    let addr = start_server(Behaviour::Broadcast).await;
    let report = run(scenario(addr), |_| {}).await.expect("run");
    assert_clean_broadcast(&report, 12, 4);
    // 12 clients × 50/s × 0.3 s = 180, give or take the first send's phase and timer slack.
    let sent = report.messages.sent;
    assert!((120..=240).contains(&sent), "sent {sent}\n{report}");
    assert!(
        report
            .to_json()
            .expect("json")
            .contains("\"expected_deliveries\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_broadcast_with_large_frames() {
    let addr = start_server(Behaviour::Broadcast).await;
    let config = LoadConfig {
        binary: true,
        payload_bytes: 4000,
        ..scenario(addr)
    };
    let report = run(config, |_| {}).await.expect("run");
    assert_clean_broadcast(&report, 12, 4);
    assert!(report.binary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_rate_is_bounded_by_the_in_flight_window() {
    let addr = start_server(Behaviour::Broadcast).await;
    let config = LoadConfig {
        rooms: 2,
        clients_per_room: 3,
        rate: 0.0,
        max_in_flight: 4,
        duration: Duration::from_millis(200),
        ..scenario(addr)
    };
    let report = run(config, |_| {}).await.expect("run");
    assert_clean_broadcast(&report, 6, 3);
    assert_eq!(report.rate_per_client, None);
    // A closed loop on loopback goes far faster than the rate-limited runs.
    assert!(report.messages.sent > 100, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_reported_about_once_a_second() {
    let addr = start_server(Behaviour::Broadcast).await;
    let config = LoadConfig {
        rooms: 1,
        clients_per_room: 2,
        ramp_up: Duration::ZERO,
        // Both clients are in the room before anything is measured.
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(1300),
        ..scenario(addr)
    };
    let mut snapshots: Vec<Progress> = Vec::new();
    let report = run(config, |p| snapshots.push(p.clone()))
        .await
        .expect("run");
    assert_clean_broadcast(&report, 2, 2);
    // One at 1 s; a second only if draining and closing took most of a second.
    assert!(matches!(snapshots.len(), 1 | 2), "{snapshots:?}");
    let first = &snapshots[0];
    assert_eq!(first.phase, Phase::Measuring);
    assert_eq!((first.connected, first.planned), (2, 2));
    assert!(first.sent > 0 && first.delivered > 0 && first.p99_ms.is_some());
    assert!(first.to_string().contains("measuring"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closes_are_counted_by_code() {
    let addr = start_server(Behaviour::Close(4001)).await;
    let config = LoadConfig {
        rooms: 2,
        clients_per_room: 3,
        ..scenario(addr)
    };
    let report = run(config, |_| {}).await.expect("run");
    assert_eq!(report.connections.established, 6, "{report}");
    assert_eq!(report.closes_with(4001), 6, "{report}");
    assert_eq!(report.closes.len(), 1);
    assert_eq!(report.closes[0].reason, "go away");
    assert_eq!(report.connections.open_at_end, 0);
    assert_eq!(report.messages.delivered, 0);
    assert!(report.to_string().contains("4001: 6"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_does_not_echo_is_reported() {
    let addr = start_server(Behaviour::BroadcastOthers).await;
    let config = LoadConfig {
        rooms: 1,
        clients_per_room: 2,
        rate: 0.0,
        max_in_flight: 2,
        ramp_up: Duration::ZERO,
        // Both clients are in the room before anything is measured.
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(1500),
        // Half the expected deliveries never come: do not wait long for them.
        drain: Duration::from_millis(300),
        ..scenario(addr)
    };
    let report = run(config, |_| {}).await.expect("run");
    let echo_errors: u64 = report
        .errors
        .iter()
        .filter(|(kind, _)| kind.starts_with("no echo of own frame"))
        .map(|(_, n)| n)
        .sum();
    assert!(echo_errors >= 2, "{report}");
    let m = &report.messages;
    // Each frame reaches the other client only: half the deliveries the scenario expects.
    assert!(m.sent > 0, "{report}");
    assert_eq!(m.delivered, m.sent, "{report}");
    assert_eq!(m.expected_deliveries, 2 * m.sent, "{report}");
    assert_eq!(m.delivery_ratio, Some(0.5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_counted_as_errors() {
    // A port that was just free: nothing listens on it.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let config = LoadConfig {
        rooms: 1,
        clients_per_room: 2,
        ..scenario(addr)
    };
    let report = run(config, |_| {}).await.expect("run");
    let c = &report.connections;
    assert_eq!(
        (c.attempted, c.established, c.failed),
        (2, 0, 2),
        "{report}"
    );
    assert_eq!(
        report.errors.get("connect: connection refused"),
        Some(&2),
        "{report}"
    );
    assert_eq!(report.messages.sent, 0);
    assert_eq!(report.latency_ms.p99, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_remote_configs_fail_before_connecting() {
    // TEST-NET-1: never reachable; refused before any packet is sent.
    let remote = LoadConfig {
        url: "ws://192.0.2.1:8080/ws".into(),
        ..LoadConfig::default()
    };
    let error = run(remote, |_| {}).await.expect_err("remote refused");
    assert!(
        matches!(
            error,
            LoadError::Config(ConfigError::RemoteTarget { ref host }) if host == "192.0.2.1"
        ),
        "{error}"
    );
    assert!(error.to_string().contains("--allow-remote"));
    let zero = LoadConfig {
        rooms: 0,
        ..LoadConfig::default()
    };
    assert!(matches!(
        run(zero, |_| {}).await,
        Err(LoadError::Config(ConfigError::ZeroRooms))
    ));
}

/// Coordinated omission: a client that could not send on time (here its core was busy for
/// 300 ms) stamps the frame with its scheduled time, so the wait counts as latency.
#[tokio::test(flavor = "current_thread")]
async fn time_spent_waiting_to_send_counts_as_latency() {
    let addr = start_server_on_its_own_thread(Behaviour::Broadcast);
    let config = LoadConfig {
        rooms: 1,
        clients_per_room: 3,
        rate: 50.0,
        ramp_up: Duration::ZERO,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(900),
        ..scenario(addr)
    };
    // The window is [200 ms, 1100 ms); the runtime stalls over [400 ms, 700 ms).
    let stall = stall_the_runtime(Duration::from_millis(400), Duration::from_millis(300));
    let report = run(config, |_| {}).await.expect("run");
    stall.await.expect("stall ran");
    let m = &report.messages;
    assert_eq!(m.delivered, m.expected_deliveries, "{report}");
    assert_eq!(m.sends_skipped, 0, "{report}");
    // A third of the window's sends were due during the stall, waiting 0-300 ms: about 20 %
    // of the frames waited over 100 ms. Stamped when they went out, p90 would be ~1 ms.
    let p90 = report.latency_ms.p90.expect("p90");
    assert!(p90 >= 100.0, "p90 {p90} ms\n{report}");
    assert!(report.latency_ms.max.expect("max") >= 200.0, "{report}");
    assert_eq!(report.latency_from, LatencyOrigin::ScheduledSend);
    assert!(report.to_string().contains("from scheduled send times"));
}

/// A client more than a second behind skips the missed sends; those in the window are
/// deliveries expected and lost.
#[tokio::test(flavor = "current_thread")]
async fn sends_skipped_in_the_window_count_as_lost() {
    let addr = start_server_on_its_own_thread(Behaviour::Broadcast);
    let config = LoadConfig {
        rooms: 1,
        clients_per_room: 2,
        rate: 50.0,
        ramp_up: Duration::ZERO,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(2000),
        drain: Duration::from_millis(300),
        ..scenario(addr)
    };
    // The window is [200 ms, 2200 ms); the runtime stalls over [400 ms, 1900 ms).
    let stall = stall_the_runtime(Duration::from_millis(400), Duration::from_millis(1500));
    let report = run(config, |_| {}).await.expect("run");
    stall.await.expect("stall ran");
    let m = &report.messages;
    // About 70 sends per client fell in the stall beyond the 1 s catch-up limit.
    assert!(m.sends_skipped >= 60, "{report}");
    assert_eq!(
        m.expected_deliveries,
        (m.sent + m.sends_skipped) * 2,
        "{report}"
    );
    assert_eq!(m.delivered, m.sent * 2, "{report}");
    assert!(m.delivery_ratio.expect("ratio") < 0.8, "{report}");
    assert!(report.to_string().contains("counted as lost"), "{report}");
}

/// A server that stops reading leaves the client stuck in a send: the sends it never got to
/// make in the window are lost, not forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_a_stuck_client_never_made_count_as_lost() {
    let addr = start_server(Behaviour::Stall).await;
    let config = LoadConfig {
        rooms: 1,
        clients_per_room: 2,
        rate: 50.0,
        // 1 MiB frames fill the socket buffers within the warm-up.
        payload_bytes: 1 << 20,
        ramp_up: Duration::ZERO,
        warmup: Duration::from_millis(300),
        duration: Duration::from_millis(1000),
        drain: Duration::from_millis(200),
        ..scenario(addr)
    };
    let report = run(config, |_| {}).await.expect("run");
    let m = &report.messages;
    // 2 clients × 50 sends scheduled in the window, nearly all never made.
    assert!(m.sends_skipped >= 60, "{report}");
    assert!(m.sent + m.sends_skipped <= 102, "{report}");
    assert_eq!(
        m.expected_deliveries,
        (m.sent + m.sends_skipped) * 2,
        "{report}"
    );
    assert_eq!(m.delivered, 0, "{report}");
}
