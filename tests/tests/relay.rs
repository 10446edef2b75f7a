//! The relay plugin against clients written from `relay.md` only: one socket
//! at the server root, rooms chosen by message, JSON frames.

use std::collections::HashSet;
use std::time::Duration;

use roomhost_e2e::{Client, TestServer, plugin, test_limits};
use roomhost_host::ServiceSpec;
use serde_json::{Value, json};

async fn relay_server(history_timeout_ms: u64) -> TestServer {
    TestServer::start(
        vec![
            ServiceSpec::new("relay", plugin("relay"))
                .with_config(json!({ "history_timeout_ms": history_timeout_ms })),
        ],
        test_limits(),
    )
    .await
}

async fn send(client: &mut Client, frame: Value) {
    client.send_text(&frame.to_string()).await;
}

/// A host with a fresh session; returns the host and the code.
async fn create(server: &TestServer) -> (Client, String) {
    let mut host = server.connect("/").await;
    send(&mut host, json!({ "type": "create" })).await;
    let created = host.recv_json().await;
    assert_eq!(created["type"], "created", "{created}");
    let code = created["code"].as_str().expect("a code").to_owned();
    assert!(
        code.len() == 6
            && code
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{code}"
    );
    (host, code)
}

async fn join(server: &TestServer, code: &str) -> Client {
    let mut viewer = server.connect("/").await;
    send(&mut viewer, json!({ "type": "join", "code": code })).await;
    assert_eq!(
        viewer.recv_json().await,
        json!({ "type": "joined", "code": code.to_uppercase() })
    );
    viewer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_fan_out_to_their_own_viewers_only() {
    let server = relay_server(2000).await;
    let (mut host_a, code_a) = create(&server).await;
    let (mut host_b, code_b) = create(&server).await;
    assert_ne!(code_a, code_b);
    let mut a1 = join(&server, &code_a).await;
    let mut a2 = join(&server, &code_a.to_lowercase()).await;
    let mut a3 = join(&server, &code_a).await;
    let mut b1 = join(&server, &code_b).await;

    let command = json!({ "type": "command", "data": "color red, all" });
    send(&mut host_a, command.clone()).await;
    let activate = json!({ "type": "activate", "data": "1abc" });
    send(&mut host_a, activate.clone()).await;
    for viewer in [&mut a1, &mut a2, &mut a3] {
        assert_eq!(viewer.recv_json().await, command);
        assert_eq!(viewer.recv_json().await, activate);
    }
    b1.expect_silence(Duration::from_millis(200)).await;
    host_a.expect_silence(Duration::from_millis(100)).await;

    let other = json!({ "type": "command", "data": "hide everything" });
    send(&mut host_b, other.clone()).await;
    assert_eq!(b1.recv_json().await, other);
    a1.expect_silence(Duration::from_millis(200)).await;

    // Viewers cannot speak to anyone but with history_request.
    send(&mut a1, json!({ "type": "command", "data": "evil" })).await;
    a2.expect_silence(Duration::from_millis(200)).await;
    host_a.expect_silence(Duration::from_millis(100)).await;

    // Each session is its own room, listed by its code.
    let (_, rooms) = server.get_json("/rooms").await;
    let listed: HashSet<_> = rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|room| room["room"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, HashSet::from([code_a.clone(), code_b.clone()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_history_from_the_host() {
    let server = relay_server(2000).await;
    let (mut host, code) = create(&server).await;
    send(&mut host, json!({ "type": "command", "data": "load 1abc" })).await;
    let mut late = join(&server, &code).await;
    send(&mut late, json!({ "type": "history_request" })).await;
    assert_eq!(host.recv_json().await, json!({ "type": "history_request" }));
    let history = json!({ "type": "history", "commands": ["load 1abc", "from the host"] });
    send(&mut host, history.clone()).await;
    assert_eq!(late.recv_json().await, history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_history_from_the_room_when_the_host_is_silent() {
    let server = relay_server(300).await;
    let (mut host, code) = create(&server).await;
    let mut early = join(&server, &code).await;
    send(&mut host, json!({ "type": "command", "data": "load 1abc" })).await;
    send(&mut host, json!({ "type": "activate", "data": "1abc" })).await;
    send(&mut host, json!({ "type": "command", "data": "zoom" })).await;
    // Once the early viewer has all three, the room has recorded them.
    for _ in 0..3 {
        early.recv_json().await;
    }
    early.close().await;

    let mut late = join(&server, &code).await;
    send(&mut late, json!({ "type": "history_request" })).await;
    assert_eq!(host.recv_json().await, json!({ "type": "history_request" }));
    // The host never answers: the room does, from its record, in order.
    let history = late.recv_json().await;
    assert_eq!(history["type"], "history");
    let commands = history["commands"].as_array().expect("commands");
    assert_eq!(commands.len(), 3, "{history}");
    let text = history.to_string();
    let positions: Vec<_> = ["load 1abc", "1abc", "zoom"]
        .iter()
        .map(|needle| text.rfind(needle).expect("recorded"))
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_code_is_an_error_and_the_socket_stays_usable() {
    let server = relay_server(2000).await;
    let mut viewer = server.connect("/").await;
    send(&mut viewer, json!({ "type": "join", "code": "ABCDEF" })).await;
    assert_eq!(
        viewer.recv_json().await,
        json!({ "type": "error", "message": "Unknown room code" })
    );
    send(&mut viewer, json!({ "type": "join", "code": "not-a-code" })).await;
    assert_eq!(
        viewer.recv_json().await,
        json!({ "type": "error", "message": "Unknown room code" })
    );
    // Retrying with a real code works on the same socket.
    let (_host, code) = create(&server).await;
    send(&mut viewer, json!({ "type": "join", "code": code })).await;
    assert_eq!(viewer.recv_json().await["type"], "joined");
}

async fn assert_session_ended(viewers: &mut [Client]) {
    for viewer in viewers.iter_mut() {
        let closed = viewer.recv_json().await;
        assert_eq!(closed["type"], "closed", "{closed}");
        assert!(closed["reason"].is_string());
        assert_eq!(viewer.closed().await.code, Some(1000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_close_ends_the_session_for_every_viewer() {
    let server = relay_server(2000).await;
    let (mut host, code) = create(&server).await;
    let mut viewers = vec![join(&server, &code).await, join(&server, &code).await];
    send(&mut host, json!({ "type": "close" })).await;
    assert_session_ended(&mut viewers).await;
    roomhost_e2e::eventually("the session room to end", || async {
        let (status, _) = server.get_json(&format!("/rooms/relay/{code}")).await;
        (status == 404).then_some(())
    })
    .await;
    // The code is gone.
    let mut latecomer = server.connect("/").await;
    send(&mut latecomer, json!({ "type": "join", "code": code })).await;
    assert_eq!(latecomer.recv_json().await["type"], "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_disconnect_ends_the_session_for_every_viewer() {
    let server = relay_server(2000).await;
    let (host, code) = create(&server).await;
    let mut viewers = vec![join(&server, &code).await, join(&server, &code).await];
    host.close().await;
    assert_session_ended(&mut viewers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_leaving_changes_nothing_for_the_others() {
    let server = relay_server(2000).await;
    let (mut host, code) = create(&server).await;
    let leaving = join(&server, &code).await;
    let mut staying = join(&server, &code).await;
    leaving.close().await;
    let command = json!({ "type": "command", "data": "still on" });
    send(&mut host, command.clone()).await;
    assert_eq!(staying.recv_json().await, command);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_creates_get_a_hundred_distinct_codes() {
    let limits = roomhost_host::Limits {
        max_rooms: 200,
        max_connections: 300,
        ..test_limits()
    };
    let server = TestServer::start(vec![ServiceSpec::new("relay", plugin("relay"))], limits).await;
    let addr = server.addr();
    let creates = (0..100).map(|_| {
        tokio::spawn(async move {
            let mut host = Client::connect(addr, "/").await.expect("connects");
            host.send_text(r#"{"type":"create"}"#).await;
            let created = host.recv_json().await;
            (created["code"].as_str().expect("a code").to_owned(), host)
        })
    });
    let mut codes = HashSet::new();
    let mut hosts = Vec::new();
    for create in creates {
        let (code, host) = create.await.expect("create task");
        codes.insert(code);
        hosts.push(host);
    }
    assert_eq!(codes.len(), 100);
    let (_, rooms) = server.get_json("/rooms").await;
    assert_eq!(rooms.as_array().map(Vec::len), Some(100));
}
