//! A bad plugin or a bad client never takes the host down: the offender is
//! closed with a reason and its neighbours keep answering.

use std::time::{Duration, Instant};

use roomhost_e2e::{Client, TestServer, admitted, eventually, plugin, test_limits};
use roomhost_host::{Limits, ServiceSpec};
use tokio_tungstenite::tungstenite::Message;

async fn neighbour_answers(neighbour: &mut Client) {
    neighbour.send_text("echo:still here").await;
    assert_eq!(neighbour.recv_text().await, "still here");
}

async fn assert_disposed(server: &TestServer, command: &str, expect_in_reason: &str) -> Duration {
    let mut neighbour = server.connect("/ws/neighbour").await;
    let mut victim = server.connect(&format!("/ws/{command}-room")).await;
    let mut bystander = server.connect(&format!("/ws/{command}-room")).await;
    admitted(&mut bystander, &format!("{command}-room")).await;
    neighbour_answers(&mut neighbour).await;

    let started = Instant::now();
    victim.send_text(command).await;
    let closed = victim.closed().await;
    let elapsed = started.elapsed();
    eprintln!("{command}: room disposed {elapsed:?} after the command");
    assert_eq!(closed.code, Some(1011), "{closed:?}");
    assert!(closed.reason.contains(expect_in_reason), "{closed:?}");
    // Everyone in the failed room is closed, not only the sender.
    assert_eq!(bystander.closed().await.code, Some(1011));

    neighbour_answers(&mut neighbour).await;
    // The failed room is gone, and the same id gives a fresh, working room.
    let mut fresh = server.connect(&format!("/ws/{command}-room")).await;
    fresh.send_text("echo:fresh").await;
    assert_eq!(fresh.recv_text().await, "fresh");
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_room_is_disposed_with_its_panic_message() {
    let server = TestServer::single("misbehave").await;
    assert_disposed(&server, "trap", "trap requested").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_room_is_disposed_within_250_ms() {
    let server = TestServer::single("misbehave").await;
    let elapsed = assert_disposed(&server, "loop", "deadline").await;
    assert!(
        elapsed < Duration::from_millis(250),
        "disposed after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_allocating_without_bound_is_disposed() {
    let limits = Limits {
        room_memory_bytes: 16 * 1024 * 1024,
        ..test_limits()
    };
    let server = TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        limits,
    )
    .await;
    assert_disposed(&server, "alloc", "memory limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_its_sender_with_1009() {
    let server = TestServer::single("misbehave").await;
    let mut neighbour = server.connect("/ws/big").await;
    admitted(&mut neighbour, "big").await;
    let mut sender = server.connect("/ws/big").await;
    let too_big = vec![b'x'; 64 * 1024 + 1];
    sender.send_binary(&too_big).await;
    let closed = sender.closed().await;
    assert_eq!(closed.code, Some(1009), "{closed:?}");
    // The room stays and hears that the sender left.
    assert!(neighbour.recv_text().await.starts_with("left:"));
    neighbour_answers(&mut neighbour).await;

    // Exactly at the limit is fine.
    let mut ok = server.connect("/ws/big").await;
    let at_limit = vec![7u8; 64 * 1024];
    ok.send_binary(&at_limit).await;
    assert_eq!(ok.recv().await, Message::binary(at_limit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_while_the_room_goes_on() {
    let limits = Limits {
        client_queue: 8,
        ..test_limits()
    };
    let server = TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        limits,
    )
    .await;
    let mut fast = server.connect("/ws/flood").await;
    // A raw socket that never reads: its queue fills and it is dropped.
    let mut slow = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let request = format!(
        "GET /ws/flood HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut slow, request.as_bytes())
        .await
        .unwrap();
    eventually("the slow client to join", || async {
        let (_, room) = server.get_json("/rooms/misbehave/flood").await;
        (room["clients"] == 2).then_some(())
    })
    .await;

    let payload = "y".repeat(60_000);
    let mut heard_left = false;
    for _ in 0..200 {
        fast.send_text(&format!("broadcast:{payload}")).await;
        // The room hears that the slow client was lost as soon as it is
        // closed, possibly in the middle of the flood.
        loop {
            let text = fast.recv_text().await;
            if text.len() == payload.len() {
                break;
            }
            assert!(text.starts_with("left:"), "{text}");
            heard_left = true;
        }
    }
    eventually("the slow client to be dropped", || async {
        let (_, room) = server.get_json("/rooms/misbehave/flood").await;
        (room["clients"] == 1).then_some(())
    })
    .await;
    // The room heard that the slow client was lost, and goes on.
    if !heard_left {
        assert!(fast.recv_text().await.starts_with("left:"));
    }
    neighbour_answers(&mut fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_limit_closes_extra_rooms_with_1013() {
    // The misbehave service's lobby, which starts with the server, is one of
    // the three.
    let limits = Limits {
        max_rooms: 3,
        ..test_limits()
    };
    let server = TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        limits,
    )
    .await;
    // Both rooms live before the third is asked for.
    let mut one = server.connect("/ws/one").await;
    admitted(&mut one, "one").await;
    let mut two = server.connect("/ws/two").await;
    admitted(&mut two, "two").await;
    let mut three = server.connect("/ws/three").await;
    let closed = three.closed().await;
    assert_eq!(closed.code, Some(1013), "{closed:?}");
    assert!(closed.reason.contains("room limit"), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ping_interval: Duration::from_secs(60),
        ..test_limits()
    };
    let server = TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        limits,
    )
    .await;
    let mut client = server.connect("/ws/idle").await;
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(1001), "{closed:?}");
    assert!(closed.reason.contains("idle"), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_with_1001() {
    let server = TestServer::single("misbehave").await;
    let mut first = server.connect("/ws/x").await;
    let mut second = server.connect("/ws/y").await;
    let stopping = tokio::spawn(server.stop());
    for client in [&mut first, &mut second] {
        let closed = client.closed().await;
        assert_eq!(closed.code, Some(1001), "{closed:?}");
    }
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_http_errors() {
    let server = TestServer::single("misbehave").await;
    let long_room = "r".repeat(300);
    let url = format!("ws://{}/ws/{long_room}", server.addr());
    let error = tokio_tungstenite::connect_async(&url)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("400"), "{error}");
    let (status, body) = server.get_json("/rooms/misbehave/none").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("none")),
        "{body}"
    );
}
