//! The lobby, hand-off between rooms, and the room directory, over real
//! WebSockets with the `misbehave` fixture.

use std::time::Duration;

use roomhost_e2e::{Client, TestServer, admitted, plugin, test_limits};
use roomhost_host::ServiceSpec;
use serde_json::json;

async fn whoami(client: &mut Client) -> String {
    client.send_text("whoami").await;
    next_reply(client).await
}

async fn expect_text(client: &mut Client, expected: &str) {
    assert_eq!(next_reply(client).await, expected);
}

/// The next frame that is not a directory notice: a client in the lobby
/// also gets `changed:`/`closed:` broadcasts, whenever rooms change.
async fn next_reply(client: &mut Client) -> String {
    loop {
        let text = client.recv_text().await;
        if !(text.starts_with("changed:") || text.starts_with("closed:")) {
            return text;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_root_is_the_lobby_and_transfers_move_clients() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws").await;
    assert_eq!(whoami(&mut client).await, "lobby");

    client.send_text("go:r1:hello").await;
    expect_text(&mut client, "arrived:lobby:hello:").await;
    assert_eq!(whoami(&mut client).await, "room:r1");

    // A room may send a client back to the lobby.
    client.send_text("go-lobby:bye").await;
    expect_text(&mut client, "arrived:r1:bye:").await;
    assert_eq!(whoami(&mut client).await, "lobby");

    // The lobby is not a room of the directory.
    let (_, rooms) = server.get_json("/rooms").await;
    assert_eq!(rooms, json!([]));
    let (_, status) = server.get_json("/status").await;
    assert_eq!(status["services"][0]["lobby_clients"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_during_a_move_are_neither_lost_nor_reordered() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/source").await;
    client.send_text("go:target:x").await;
    for n in 0..200 {
        client.send_text(&format!("echo:{n}")).await;
    }
    expect_text(&mut client, "arrived:source:x:").await;
    for n in 0..200 {
        expect_text(&mut client, &n.to_string()).await;
    }
    assert_eq!(whoami(&mut client).await, "room:target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_are_stable_and_send_reaches_any_client_of_the_service() {
    let server = TestServer::single("misbehave").await;
    let mut mover = server.connect("/ws/start").await;
    let mut witness = server.connect("/ws/start").await;
    admitted(&mut witness, "start").await;
    mover.send_text("go:elsewhere:").await;
    expect_text(&mut mover, "arrived:start::").await;
    let left = witness.recv_text().await;
    let id = left.strip_prefix("left:").expect("a left notice");

    // The witness, in another room, reaches the mover by its original id.
    witness.send_text(&format!("send-to:{id}:found you")).await;
    expect_text(&mut mover, "found you").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_a_missing_room_without_create_fails_for_the_caller() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/here").await;
    client.send_text("go-existing:nowhere:x").await;
    let reply = client.recv_text().await;
    assert_eq!(reply, "transfer-error:no such room");
    assert_eq!(whoami(&mut client).await, "room:here");

    // With the room live, the same transfer works.
    let mut resident = server.connect("/ws/there").await;
    admitted(&mut resident, "there").await;
    client.send_text("go-existing:there:x").await;
    expect_text(&mut client, "arrived:here:x:").await;
    assert_eq!(whoami(&mut client).await, "room:there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_rejected_by_the_target_comes_back_with_the_reason() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/home").await;
    client.send_text("go:picky:reject:members only").await;
    expect_text(
        &mut client,
        "arrived:picky:reject:members only:members only",
    )
    .await;
    assert_eq!(whoami(&mut client).await, "room:home");
    // The rejecting room never had a member, so it ends (right after it
    // answered, which can be after the client is back).
    roomhost_e2e::eventually("the rejecting room ends", || async {
        let (status, _) = server.get_json("/rooms/misbehave/picky").await;
        (status == 404).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_hears_about_room_changes_and_lists_rooms() {
    let server = TestServer::single("misbehave").await;
    let mut lobby = server.connect("/ws").await;
    assert_eq!(whoami(&mut lobby).await, "lobby");

    let member = server.connect("/ws/watched").await;
    assert_eq!(lobby.recv_text().await, "changed:watched:1");
    lobby.send_text("rooms").await;
    let rooms: serde_json::Value = serde_json::from_str(&lobby.recv_text().await).unwrap();
    assert_eq!(rooms, json!([{ "room": "watched", "clients": 1 }]));

    // Notices are coalesced per room: the 0-client update may be folded
    // into the close if the lobby had not taken it yet.
    member.close().await;
    let mut notice = lobby.recv_text().await;
    if notice == "changed:watched:0" {
        notice = lobby.recv_text().await;
    }
    assert_eq!(notice, "closed:watched");
    lobby.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lobby_can_claim_the_server_root() {
    let server = TestServer::start(
        vec![
            ServiceSpec::new("rooted", plugin("misbehave"))
                .with_config(json!({ "serve_root": true })),
            ServiceSpec::new("other", plugin("misbehave")),
        ],
        test_limits(),
    )
    .await;
    let mut at_root = server.connect("/").await;
    assert_eq!(whoami(&mut at_root).await, "lobby");
    at_root.send_text("go:r:").await;
    expect_text(&mut at_root, "arrived:lobby::").await;
    let (status, _) = server.get_json("/rooms/rooted/r").await;
    assert_eq!(status, 200);

    // With several services, /ws/{service} is that service's lobby.
    let mut other = server.connect("/ws/other").await;
    assert_eq!(whoami(&mut other).await, "lobby");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_claim_the_root_is_not_served() {
    let server = TestServer::single("misbehave").await;
    let url = format!("ws://{}/", server.addr());
    let error = tokio_tungstenite::connect_async(&url)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("404"), "{error}");
}
