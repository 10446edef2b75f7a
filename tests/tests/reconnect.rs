//! Reconnection against a real server, with the `resumable` fixture (1.5 s
//! grace): a lost client comes back with its id and what it missed, and the
//! races peers get wrong: a reconnect before the drop was noticed, a token
//! used twice, a reconnect after the window, a bad token during it.

use std::time::Duration;

use roomhost_e2e::{Client, TestServer};

/// Connects to room `r` and returns the client, its id and its token.
async fn member(server: &TestServer, query: &str) -> (Client, String, String) {
    let mut client = server.connect(&format!("/ws/r{query}")).await;
    let token = client.recv_text().await;
    let token = token.strip_prefix("token:").expect("a token").to_owned();
    client.send_text("whoami").await;
    let id = next_matching(&mut client, "id:").await;
    (client, id.trim_start_matches("id:").to_owned(), token)
}

/// The next text frame starting with `prefix`, skipping others.
async fn next_matching(client: &mut Client, prefix: &str) -> String {
    loop {
        let text = client.recv_text().await;
        if text.starts_with(prefix) {
            return text;
        }
    }
}

/// A new connection presenting `token`.
async fn resume(server: &TestServer, token: &str) -> Client {
    server
        .connect(&format!("/ws/r?roomhost_resume={token}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_client_comes_back_with_its_id_and_what_it_missed() {
    let server = TestServer::single("resumable").await;
    let (alice, alice_id, token) = member(&server, "").await;
    let (mut bob, _, _) = member(&server, "").await;
    // The connection drops without a close frame.
    drop(alice);
    assert_eq!(
        next_matching(&mut bob, "left:").await,
        format!("left:{alice_id}:Suspended")
    );
    bob.send_text("say:while you were away").await;
    // A round trip: the room has handled the `say` before the resume.
    let bob_id = id_of(&mut bob).await;

    let mut back = resume(&server, &token).await;
    // What it missed comes first, then the greeting with its next token.
    assert_eq!(
        next_matching(&mut back, "said:").await,
        format!("said:{bob_id}:while you were away")
    );
    let resumed = next_matching(&mut back, "resumed:").await;
    assert_ne!(resumed, format!("resumed:{token}"), "a fresh token");
    back.send_text("whoami").await;
    assert_eq!(
        next_matching(&mut back, "id:").await,
        format!("id:{alice_id}")
    );
    assert_eq!(
        next_matching(&mut bob, "back:").await,
        format!("back:{alice_id}")
    );
    server.stop().await;
}

/// The client's id, after a round trip through its room.
async fn id_of(client: &mut Client) -> String {
    client.send_text("whoami").await;
    next_matching(client, "id:")
        .await
        .trim_start_matches("id:")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_before_the_drop_was_noticed_replaces_the_old_connection() {
    let server = TestServer::single("resumable").await;
    let (mut old, id, token) = member(&server, "").await;
    let mut new = resume(&server, &token).await;
    next_matching(&mut new, "resumed:").await;
    let closed = old.closed().await;
    assert_eq!(closed.code, Some(1000), "{closed:?}");
    assert!(closed.reason.contains("replaced"), "{closed:?}");
    new.send_text("whoami").await;
    assert_eq!(next_matching(&mut new, "id:").await, format!("id:{id}"));
    // The old connection's end does not remove the client.
    new.expect_silence(Duration::from_millis(300)).await;
    new.send_text("whoami").await;
    assert_eq!(next_matching(&mut new, "id:").await, format!("id:{id}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_once() {
    let server = TestServer::single("resumable").await;
    let (old, _, token) = member(&server, "").await;
    drop(old);
    let mut first = resume(&server, &token).await;
    next_matching(&mut first, "resumed:").await;
    let mut second = resume(&server, &token).await;
    let closed = second.closed().await;
    assert_eq!(closed.code, Some(1008), "{closed:?}");
    assert!(closed.reason.contains("resume refused"), "{closed:?}");
    // The first one is unaffected.
    first.send_text("whoami").await;
    next_matching(&mut first, "id:").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_the_client_is_gone() {
    let server = TestServer::single("resumable").await;
    let (alice, alice_id, token) = member(&server, "").await;
    let (mut bob, _, _) = member(&server, "").await;
    drop(alice);
    assert_eq!(
        next_matching(&mut bob, "left:").await,
        format!("left:{alice_id}:Suspended")
    );
    assert_eq!(
        next_matching(&mut bob, "left:").await,
        format!("left:{alice_id}:Lost")
    );
    let mut late = resume(&server, &token).await;
    assert_eq!(late.closed().await.code, Some(1008));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_during_the_window_does_not_end_it() {
    let server = TestServer::single("resumable").await;
    let (alice, alice_id, token) = member(&server, "").await;
    let (mut bob, _, _) = member(&server, "").await;
    drop(alice);
    next_matching(&mut bob, "left:").await;
    let mut forger = resume(&server, "00112233445566778899aabbccddeeff").await;
    assert_eq!(forger.closed().await.code, Some(1008));
    let mut back = resume(&server, &token).await;
    next_matching(&mut back, "resumed:").await;
    back.send_text("whoami").await;
    assert_eq!(
        next_matching(&mut back, "id:").await,
        format!("id:{alice_id}")
    );
    // And the grace timer is gone: no `Lost` follows.
    assert_eq!(
        next_matching(&mut bob, "back:").await,
        format!("back:{alice_id}")
    );
    bob.expect_silence(Duration::from_millis(2000)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_fails_leaves_no_token_behind() {
    let server = TestServer::single("resumable").await;
    let (mut alice, _, token) = member(&server, "").await;
    alice.send_text("trap").await;
    assert_eq!(alice.closed().await.code, Some(1011));
    drop(alice);
    roomhost_e2e::eventually("the connection's task ends", || async {
        let (_, status) = server.get_json("/status").await;
        (status["connections"] == 0).then_some(())
    })
    .await;
    // Its connection ended with the room: nothing waits to be resumed, so
    // the token is forgotten, not kept pointing at a dead room.
    let mut late = resume(&server, &token).await;
    let closed = late.closed().await;
    assert_eq!(closed.code, Some(1008), "{closed:?}");
    assert!(closed.reason.contains("unknown"), "{closed:?}");
    server.stop().await;
}
