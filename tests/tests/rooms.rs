//! Rooms over real WebSockets: isolation, frames, timers, rejects, listing.

use std::time::Duration;

use roomhost_e2e::{TestServer, admitted, eventually, plugin, test_limits};
use roomhost_host::ServiceSpec;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_member_of_the_room_and_no_one_else() {
    counter_broadcasts_to_its_room_only("counter").await;
}

/// The same check against the TypeScript counter (`plugins/counter-ts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_member_of_the_room_and_no_one_else_ts() {
    counter_broadcasts_to_its_room_only("counter-ts").await;
}

/// Counter plugin `name`'s protocol over real sockets: greetings, both
/// command forms, broadcasts within one room only.
async fn counter_broadcasts_to_its_room_only(name: &str) {
    let server = TestServer::single(name).await;
    let mut a1 = server.connect("/ws/a").await;
    let mut a2 = server.connect("/ws/a").await;
    let mut a3 = server.connect("/ws/a").await;
    let mut b1 = server.connect("/ws/b").await;
    for client in [&mut a1, &mut a2, &mut a3, &mut b1] {
        assert_eq!(client.recv_json().await, json!({ "count": 0 }));
    }

    a1.send_text("increment").await;
    for client in [&mut a1, &mut a2, &mut a3] {
        assert_eq!(client.recv_json().await, json!({ "count": 1 }));
    }
    a2.send_text(r#"{"op":"increment","by":5}"#).await;
    for client in [&mut a1, &mut a2, &mut a3] {
        assert_eq!(client.recv_json().await, json!({ "count": 6 }));
    }
    b1.expect_silence(Duration::from_millis(200)).await;

    b1.send_text("decrement").await;
    assert_eq!(b1.recv_json().await, json!({ "count": -1 }));
    a3.expect_silence(Duration::from_millis(200)).await;

    // Refused commands are answered to the sender alone, word for word.
    b1.send_text("nope").await;
    assert_eq!(
        b1.recv_json().await,
        json!({ "error": "unknown command \"nope\"" })
    );
    b1.send_text(r#"{"op":"increment","by":0}"#).await;
    assert_eq!(
        b1.recv_json().await,
        json!({ "error": "\"by\" must be an integer from 1 to 1000000" })
    );
    let (_, rooms) = server.get_json("/rooms").await;
    let mut infos: Vec<_> = rooms
        .as_array()
        .into_iter()
        .flatten()
        .map(|room| (room["room"].clone(), room["info"].clone()))
        .collect();
    infos.sort_by_key(|(room, _)| room.to_string());
    assert_eq!(
        infos,
        [
            (json!("a"), json!({ "count": 6 })),
            (json!("b"), json!({ "count": -1 }))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_addressed_by_name_when_several_are_loaded() {
    services_by_name("counter").await;
}

/// The same check with the TypeScript counter as the configured service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_addressed_by_name_when_several_are_loaded_ts() {
    services_by_name("counter-ts").await;
}

/// Counter plugin `counter` (configured to start at 41) beside misbehave.
async fn services_by_name(counter: &str) {
    let server = TestServer::start(
        vec![
            ServiceSpec::new("counter", plugin(counter)).with_config(json!({ "start": 41 })),
            ServiceSpec::new("echo", plugin("misbehave")),
        ],
        test_limits(),
    )
    .await;
    let mut counter = server.connect("/ws/counter/r").await;
    assert_eq!(counter.recv_json().await, json!({ "count": 41 }));
    let mut echo = server.connect("/ws/echo/r").await;
    echo.send_text("echo:hi").await;
    assert_eq!(echo.recv_text().await, "hi");
    // The same room id in two services is two rooms.
    let (_, rooms) = server.get_json("/rooms").await;
    assert_eq!(rooms.as_array().map(Vec::len), Some(2));
    // `/ws/{room}` is ambiguous with two services.
    let (status, body) = server.get_json("/rooms/nope/r").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_round_trip_unchanged() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/bin").await;
    let payload: Vec<u8> = (0..=255u8).cycle().take(50_000).collect();
    client.send_binary(&payload).await;
    match client.recv().await {
        Message::Binary(bytes) => assert_eq!(bytes.as_ref(), payload.as_slice()),
        other => panic!("expected binary, got {other:?}"),
    }
    client.send_binary(&[]).await;
    assert_eq!(client.recv().await, Message::binary(Vec::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_replace_and_cancel() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/timers").await;

    client.send_text("timer:1:50").await;
    assert_eq!(client.recv_text().await, "timer-set:1");
    assert_eq!(client.recv_text().await, "timer-fired:1");

    client.send_text("timer:2:150").await;
    assert_eq!(client.recv_text().await, "timer-set:2");
    client.send_text("cancel:2").await;
    assert_eq!(client.recv_text().await, "cancelled:2");
    client.expect_silence(Duration::from_millis(300)).await;

    // Setting a pending id replaces it: one firing, at the new time.
    client.send_text("timer:3:5000").await;
    assert_eq!(client.recv_text().await, "timer-set:3");
    client.send_text("timer:3:30").await;
    assert_eq!(client.recv_text().await, "timer-set:3");
    assert_eq!(client.recv_text().await, "timer-fired:3");
    client.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_are_bounded_per_room() {
    let limits = roomhost_host::Limits {
        max_timers_per_room: 10,
        ..test_limits()
    };
    let server = TestServer::start(vec![ServiceSpec::new("m", plugin("misbehave"))], limits).await;
    let mut client = server.connect("/ws/t").await;
    client.send_text("timers:50").await;
    assert_eq!(client.recv_text().await, "timers-set:10");
    client.send_text("timer:999:10").await;
    let reply = client.recv_text().await;
    assert!(
        reply.starts_with("timer-error:") && reply.contains("10"),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_a_pending_timer_outlives_its_clients() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/linger").await;
    client.send_text("timer:1:400").await;
    assert_eq!(client.recv_text().await, "timer-set:1");
    client.close().await;
    // The room hears of the close after the client does: wait for it, then
    // the room is still there, empty, held by its timer.
    eventually("the room to see its client leave", || async {
        let (status, room) = server.get_json("/rooms/misbehave/linger").await;
        assert_eq!(status, 200, "the room ended before its timer");
        (room["clients"] == 0).then_some(())
    })
    .await;
    eventually("the room to end after its timer", || async {
        let (status, _) = server.get_json("/rooms/misbehave/linger").await;
        (status == 404).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_connect_is_closed_with_the_plugins_reason() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/r?reject=room%20is%20full").await;
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(1008));
    assert_eq!(closed.reason, "room is full");
    // The rejected client never became a member, so the room ended.
    eventually("the room to end", || async {
        let (status, _) = server.get_json("/rooms/misbehave/r").await;
        (status == 404).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rejects_taken_names_and_announces_joins_and_leaves() {
    chat_names_joins_and_leaves("chat").await;
}

/// The same check against the TypeScript chat (`plugins/chat-ts`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rejects_taken_names_and_announces_joins_and_leaves_ts() {
    chat_names_joins_and_leaves("chat-ts").await;
}

/// Chat plugin `name`'s protocol over real sockets.
async fn chat_names_joins_and_leaves(name: &str) {
    let server = TestServer::single(name).await;
    let mut alice = server.connect("/ws/lobby?name=alice").await;
    let welcome = alice.recv_json().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["you"], "alice");

    let mut impostor = server.connect("/ws/lobby?name=alice").await;
    let closed = impostor.closed().await;
    assert_eq!(closed.code, Some(1008));
    assert!(closed.reason.contains("alice"), "{closed:?}");

    let mut bob = server.connect("/ws/lobby?name=bob").await;
    assert_eq!(bob.recv_json().await["type"], "welcome");
    assert_eq!(
        alice.recv_json().await,
        json!({ "type": "joined", "name": "bob" })
    );

    bob.send_text(r#"{"type":"say","text":"hello"}"#).await;
    for client in [&mut alice, &mut bob] {
        let said = client.recv_json().await;
        assert_eq!(
            (said["type"].as_str(), said["from"].as_str()),
            (Some("said"), Some("bob"))
        );
        assert_eq!(said["text"], "hello");
    }
    bob.close().await;
    assert_eq!(
        alice.recv_json().await,
        json!({ "type": "left", "name": "bob" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_can_close_a_client_with_its_own_code() {
    let server = TestServer::single("misbehave").await;
    let mut stays = server.connect("/ws/k").await;
    admitted(&mut stays, "k").await;
    let mut kicked = server.connect("/ws/k").await;
    kicked.send_text("close:4001:go away").await;
    let closed = kicked.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (Some(4001), "go away")
    );
    // The room hears about it as a disconnect.
    assert!(stays.recv_text().await.starts_with("left:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_listed_with_their_info_and_leave_after_their_last_client() {
    let server = TestServer::single("misbehave").await;
    let mut first = server.connect("/ws/listed").await;
    let mut second = server.connect("/ws/listed").await;
    admitted(&mut second, "listed").await;
    first.send_text(r#"info:{"topic":"rust"}"#).await;
    assert_eq!(first.recv_text().await, "info-ok");
    first.send_text("info:not json").await;
    assert!(first.recv_text().await.starts_with("info-error:"));

    let (status, room) = server.get_json("/rooms/misbehave/listed").await;
    assert_eq!(status, 200);
    assert_eq!(room["clients"], 2);
    assert_eq!(room["info"], json!({ "topic": "rust" }));
    assert_eq!(room["plugin_version"].as_str().map(str::len), Some(12));

    let (_, status) = server.get_json("/status").await;
    assert_eq!(status["rooms"], 1);
    assert_eq!(status["connections"], 2);
    assert_eq!(status["services"][0]["name"], "misbehave");

    first.close().await;
    second.close().await;
    eventually("the room to leave /rooms", || async {
        let (_, rooms) = server.get_json("/rooms").await;
        (rooms == json!([])).then_some(())
    })
    .await;
    let (status, _) = server.get_json("/rooms/misbehave/listed").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_imports_answer() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/room%20one").await;
    client.send_text("room").await;
    assert_eq!(client.recv_text().await, "room one");
    client.send_text("now").await;
    let now: u64 = client.recv_text().await.parse().expect("a number");
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or_default();
    assert!(
        now.abs_diff(wall) < 5_000,
        "now-ms {now} vs wall clock {wall}"
    );
    client.send_text("random").await;
    let first = client.recv_text().await;
    client.send_text("random").await;
    assert_ne!(first, client.recv_text().await);
}

/// A client that closes first gets the close handshake's reply (browsers
/// report 1006 otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_initiated_close_is_answered() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/closing").await;
    client
        .stream()
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .expect("close sent");
    let closed = client.closed().await;
    assert_eq!(
        closed.code,
        Some(1000),
        "the server echoes the close: {closed:?}"
    );
    server.stop().await;
}
