//! Hot reload against a real server: rooms move onto a new plugin version
//! with their sockets open, their state restored (or `connect` replayed), no
//! frame lost or reordered, and failures leave a room on the old version.

use std::time::Duration;

use roomhost_e2e::{Client, TestServer, admitted, plugin, plugin_rebuilt, test_limits};
use roomhost_host::ServiceSpec;
use serde_json::json;

/// Counts in flight while the reload runs: every increment lands exactly
/// once and in order, and the count survives (serde snapshot).
#[tokio::test]
async fn serde_snapshot_keeps_state_and_loses_no_frame() {
    snapshot_keeps_state_and_loses_no_frame("counter").await;
}

/// The same check against the TypeScript counter: its JSON snapshot
/// carries the count across the reload.
#[tokio::test]
async fn serde_snapshot_keeps_state_and_loses_no_frame_ts() {
    snapshot_keeps_state_and_loses_no_frame("counter-ts").await;
}

async fn snapshot_keeps_state_and_loses_no_frame(name: &str) {
    let server = TestServer::single(name).await;
    let mut alice = server.connect("/ws/tally").await;
    let mut bob = server.connect("/ws/tally").await;
    assert_eq!(alice.recv_json().await["count"], 0);
    assert_eq!(bob.recv_json().await["count"], 0);

    const BEFORE: i64 = 20;
    const DURING: i64 = 200;
    for _ in 0..BEFORE {
        alice.send_text("increment").await;
    }
    let handle = server.handle().clone();
    let counter = plugin_rebuilt(name, "v2");
    let service = name.to_owned();
    let reload = tokio::spawn(async move { handle.reload(&service, &counter).await });
    for _ in 0..DURING {
        alice.send_text("increment").await;
    }
    let report = reload.await.expect("reload task").expect("reload");
    assert_eq!(
        report.restored, 1,
        "the room (counter has no lobby): {report:?}"
    );
    assert!(
        report.kept_old.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );

    // Both see every count from 1 to the total, in order: nothing lost,
    // nothing reordered, no greeting replayed.
    for expected in 1..=BEFORE + DURING {
        assert_eq!(alice.recv_json().await["count"], expected);
        assert_eq!(bob.recv_json().await["count"], expected);
    }
    bob.send_text("increment").await;
    assert_eq!(bob.recv_json().await["count"], BEFORE + DURING + 1);
    assert_eq!(alice.recv_json().await["count"], BEFORE + DURING + 1);
    alice.expect_silence(Duration::from_millis(100)).await;
    server.stop().await;
}

/// A new version that cannot restore the snapshot leaves the room on the
/// old version; new rooms get the new one.
#[tokio::test]
async fn a_failed_restore_keeps_the_old_version() {
    let server = TestServer::start(
        vec![ServiceSpec::new("svc", plugin("counter"))],
        test_limits(),
    )
    .await;
    let mut client = server.connect("/ws/r1").await;
    assert_eq!(client.recv_json().await["count"], 0);
    client.send_text("increment").await;
    assert_eq!(client.recv_json().await["count"], 1);
    let old_version = server.get_json("/rooms/svc/r1").await.1["plugin_version"].clone();

    // Chat cannot restore a counter's snapshot: kept old.
    let report = server
        .handle()
        .reload("svc", &plugin("chat"))
        .await
        .expect("reload");
    assert_eq!(report.kept_old.len(), 1, "the room kept: {report:?}");
    // The reason is the service's own (serde's), not a panic location.
    let reason = &report.kept_old[0].1;
    assert!(
        reason.contains("failed to restore")
            && reason.contains("cannot restore the room's state")
            && !reason.contains("panic")
            && !reason.contains(".rs:"),
        "{report:?}"
    );
    client.send_text("increment").await;
    assert_eq!(
        client.recv_json().await["count"],
        2,
        "old version still serves"
    );
    assert_eq!(
        server.get_json("/rooms/svc/r1").await.1["plugin_version"],
        old_version
    );

    // A new room runs the new version.
    let mut fresh = server.connect("/ws/r2?name=bo").await;
    assert_eq!(fresh.recv_json().await["type"], "welcome");
    server.stop().await;
}

/// A room without snapshots restarts on the new version and every client
/// is connected again with the query it joined with, on the same socket.
#[tokio::test]
async fn no_snapshot_restarts_and_replays_connect() {
    let (server, mut ann) = hall_without_snapshots("/ws/svc/hall?name=ann").await;
    let old_version = server.get_json("/rooms/svc/hall").await.1["plugin_version"].clone();

    let report = server
        .handle()
        .reload("svc", &plugin_rebuilt("misbehave", "v2"))
        .await
        .expect("reload");
    assert_eq!(report.restarted, 2, "room and lobby restarted: {report:?}");
    ann.send_text("notes").await;
    assert_eq!(
        ann.recv_text().await,
        "notes:",
        "a restart starts from scratch"
    );
    assert_eq!(
        server.get_json("/rooms/svc/hall").await.1["plugin_version"].as_str(),
        Some(report.version.as_str())
    );

    // Onto another plugin: the replayed connect carries the original query
    // (chat welcomes "ann"), and the listing shows the new version.
    let report = server
        .handle()
        .reload("svc", &plugin("chat"))
        .await
        .expect("reload");
    // chat has no lobby: the running one is closed, only the room restarts.
    assert_eq!(report.restarted, 1, "{report:?}");
    let welcome = ann.recv_json().await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["you"].as_str()),
        (Some("welcome"), Some("ann"))
    );
    let (_, listing) = server.get_json("/rooms/svc/hall").await;
    assert_eq!(listing["clients"], 1, "{listing}");
    assert_ne!(listing["plugin_version"], old_version);
    assert_eq!(
        listing["plugin_version"].as_str(),
        Some(report.version.as_str())
    );
    server.stop().await;
}

/// A hand-written snapshot survives; a refused snapshot or a poisoned
/// restore keeps the old version and says why; a trap in snapshot disposes
/// only that room.
#[tokio::test]
async fn snapshot_failures_keep_the_old_version() {
    let server = TestServer::single("misbehave").await;
    let mut kept = server.connect("/ws/kept").await;
    kept.send_text("note:x").await;
    assert_eq!(kept.recv_text().await, "noted:1");
    let mut refusing = server.connect("/ws/refusing").await;
    refusing.send_text("refuse-snapshot").await;
    assert_eq!(refusing.recv_text().await, "ok");
    let mut poisoned = server.connect("/ws/poisoned").await;
    poisoned.send_text("poison-snapshot").await;
    assert_eq!(poisoned.recv_text().await, "ok");

    let report = server
        .handle()
        .reload("misbehave", &plugin_rebuilt("misbehave", "v2"))
        .await
        .expect("reload");
    assert_eq!(report.restored, 2, "kept and the lobby: {report:?}");
    let mut kept_old = report.kept_old.clone();
    kept_old.sort();
    assert_eq!(kept_old.len(), 2, "{report:?}");
    assert_eq!(kept_old[0].0, "poisoned");
    assert!(
        kept_old[0].1.contains("the snapshot is poisoned"),
        "{report:?}"
    );
    assert_eq!(kept_old[1].0, "refusing");
    assert!(
        kept_old[1].1.contains("snapshots refused on request"),
        "{report:?}"
    );

    kept.send_text("notes").await;
    assert_eq!(kept.recv_text().await, "notes:x");
    for client in [&mut refusing, &mut poisoned] {
        client.send_text("echo:alive").await;
        assert_eq!(client.recv_text().await, "alive");
    }
    server.stop().await;
}

/// A new version that fails after it has transferred a client away leaves
/// the room on the old version without that client: the old version hears
/// it leave, and the client lands where it was sent, a member of one room.
#[tokio::test]
async fn a_failed_restart_does_not_leave_a_moved_client_behind() {
    let (server, mut ann) = hall_without_snapshots("/ws/svc/hall").await;
    // Accepted now (the room has notes). On a restart bob's replayed
    // connect moves ann to "annex", then carl's traps.
    let mut bob = server.connect("/ws/svc/hall?replay-move=annex").await;
    admitted(&mut bob, "hall").await;
    let mut carl = server.connect("/ws/svc/hall?replay-trap").await;
    admitted(&mut carl, "hall").await;

    let report = server
        .handle()
        .reload("svc", &plugin_rebuilt("misbehave", "v2"))
        .await
        .expect("reload");
    let kept: Vec<_> = report
        .kept_old
        .iter()
        .map(|(room, _)| room.as_str())
        .collect();
    assert_eq!(kept, ["hall"], "{report:?}");
    assert!(report.kept_old[0].1.contains("replay trap"), "{report:?}");
    assert!(ann.recv_text().await.starts_with("arrived:hall:"));
    // Bob hears ann leave twice: from the new version (which had replayed
    // him before it failed; frames already sent stay sent) and from the old
    // one, which carl hears too.
    let left = carl.recv_text().await;
    assert!(
        left.starts_with("left:"),
        "the old version heard ann leave: {left}"
    );
    assert_eq!(bob.recv_text().await, left);
    assert_eq!(bob.recv_text().await, left);
    ann.send_text("whoami").await;
    assert_eq!(ann.recv_text().await, "room:annex");
    bob.send_text("notes").await;
    assert_eq!(
        bob.recv_text().await,
        "notes:a",
        "the old version still serves"
    );
    let (_, hall) = server.get_json("/rooms/svc/hall").await;
    assert_eq!(hall["clients"], 2, "ann is not also left in hall: {hall}");
    server.stop().await;
}

/// Reloading the version a room already runs leaves it alone: a service
/// without snapshots is not restarted (its state stays), and a later real
/// change still reaches it.
#[tokio::test]
async fn reloading_the_same_version_changes_nothing() {
    let (server, mut ann) = hall_without_snapshots("/ws/svc/hall").await;

    let report = server
        .handle()
        .reload("svc", &plugin("misbehave"))
        .await
        .expect("reload");
    assert_eq!(
        (report.unchanged, report.restarted, report.rooms()),
        (2, 0, 2),
        "{report:?}"
    );
    ann.send_text("notes").await;
    assert_eq!(
        ann.recv_text().await,
        "notes:a",
        "state kept: not restarted"
    );

    let report = server
        .handle()
        .reload("svc", &plugin_rebuilt("misbehave", "v2"))
        .await
        .expect("reload");
    assert_eq!((report.unchanged, report.restarted), (0, 2), "{report:?}");
    ann.send_text("notes").await;
    assert_eq!(
        ann.recv_text().await,
        "notes:",
        "restarted on the new version"
    );
    server.stop().await;
}

/// A server whose service `svc` (misbehave) has no snapshots, and ann in
/// room `hall` (joined at `path`) with one note.
async fn hall_without_snapshots(path: &str) -> (TestServer, Client) {
    let server = TestServer::start(
        vec![
            ServiceSpec::new("svc", plugin("misbehave")).with_config(json!({ "snapshots": false })),
        ],
        test_limits(),
    )
    .await;
    let mut ann = server.connect(path).await;
    ann.send_text("note:a").await;
    assert_eq!(ann.recv_text().await, "noted:1");
    (server, ann)
}

/// The reload of a service that does not exist is an error, not a panic.
#[tokio::test]
async fn reload_of_an_unknown_service_or_file_fails_cleanly() {
    let server = TestServer::single("counter").await;
    let error = server
        .handle()
        .reload("nope", &plugin("counter"))
        .await
        .expect_err("unknown service");
    assert!(error.to_string().contains("no service named"), "{error}");
    let error = server
        .handle()
        .reload("counter", "/nonexistent.wasm".as_ref())
        .await
        .expect_err("missing file");
    assert!(error.to_string().contains("cannot read plugin"), "{error}");
    server.stop().await;
}

/// A version without a lobby ends the running one: its clients are closed
/// with 1001 and the service root answers 404; rooms carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_without_a_lobby_ends_the_running_lobby() {
    let server = TestServer::start(
        vec![ServiceSpec::new("svc", plugin("misbehave"))],
        test_limits(),
    )
    .await;
    let mut in_lobby = server.connect("/ws").await;
    in_lobby.send_text("whoami").await;
    assert_eq!(in_lobby.recv_text().await, "lobby");

    // counter declares no lobby.
    let report = server
        .handle()
        .reload("svc", &plugin("counter"))
        .await
        .expect("reload");
    assert_eq!(
        report.rooms(),
        0,
        "the lobby is closed, not reloaded: {report:?}"
    );
    let closed = in_lobby.closed().await;
    assert_eq!(closed.code, Some(1001), "{closed:?}");
    assert!(
        closed.reason.contains("no longer has a lobby"),
        "{closed:?}"
    );
    assert_eq!(server.handle().rooms().len(), 0);

    let url = format!("ws://{}/ws", server.addr());
    let refused = tokio_tungstenite::connect_async(&url).await;
    assert!(refused.is_err(), "the root is refused");
    let mut room = server.connect("/ws/tally").await;
    assert_eq!(room.recv_json().await["count"], 0);
    server.stop().await;
}
