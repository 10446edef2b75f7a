//! The TypeScript SDK's own checks, run by `cargo test`: the SDK's Node
//! tests (`guest-sdk-js/test`: conversions, the harness, the contract types
//! against the WIT, a type-check of the SDK and the plugins), the unit
//! tests of the TypeScript plugins through the SDK's `TestRoom`, and the
//! SDK's host calls against the real host (`tests/fixtures/lobby-ts`), and
//! a TypeScript room's storage across a restart of the server
//! (`tests/fixtures/durable-ts`). The
//! plugins' protocols over real sockets are checked beside the Rust
//! plugins' in `rooms.rs` and `reload.rs` (the `_ts` tests).
//!
//! Needs `node` and `npm` (Node 18 or later) on `PATH`; `npm ci` runs in
//! `guest-sdk-js` when its `node_modules` is missing or stale.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use roomhost_e2e::{
    Client, JS_PLUGINS, TestServer, http_request, node, plugin, test_limits, workspace_root,
};
use roomhost_host::ServiceSpec;
use roomhost_host::storage::MemoryBackend;
use serde_json::json;

/// Runs `node ARGS` in `dir` and fails with its output unless it exits 0.
fn node_succeeds(dir: &Path, args: &[&str]) {
    let output = Command::new("node")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run node: {error}"));
    assert!(
        output.status.success(),
        "node {args:?} in {} failed ({}):\n{}{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sdk_ready() -> std::path::PathBuf {
    let sdk = workspace_root().join("guest-sdk-js");
    if let Err(error) = node::npm_ci(&sdk) {
        panic!("the TypeScript SDK cannot be installed: {error}");
    }
    sdk
}

#[test]
fn the_sdk_tests_pass() {
    let sdk = sdk_ready();
    node_succeeds(&sdk, &["--test", "test/"]);
}

#[test]
fn the_typescript_plugins_unit_tests_pass() {
    let sdk = sdk_ready();
    let bin = sdk.join("bin").join("roomhost-js.mjs");
    let plugins = JS_PLUGINS
        .iter()
        .map(|name| workspace_root().join("plugins").join(name));
    // The storage fixture's harness tests assert the answers its end-to-end
    // tests below get from the real host.
    let fixtures = [workspace_root().join("tests/fixtures/durable-ts")];
    for dir in plugins.chain(fixtures) {
        node_succeeds(&dir, &[&bin.to_string_lossy(), "test", "."]);
    }
}

/// A TypeScript lobby hands a client to a room with data; the room's
/// timers, client state (and the host's refusal of an oversized one),
/// HTTP face, secure `Math.random` and kicks all reach the real host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_lobby_hands_clients_to_rooms_that_use_the_host() {
    let server = TestServer::single("lobby-ts").await;
    let mut ada = server.connect("/ws?room=hall").await;
    assert_eq!(
        ada.recv_json().await,
        json!({ "room": "hall", "handoff": "from lobby", "fromRoom": null })
    );
    let mut bob = server.connect("/ws?room=hall").await;
    bob.recv_json().await;

    ada.send_text("timer").await;
    assert_eq!(ada.recv_text().await, "tick");
    assert_eq!(bob.recv_text().await, "tick");

    ada.send_text("state:ada").await;
    assert_eq!(ada.recv_json().await, json!({ "state": "ada" }));
    ada.send_text("big").await;
    assert_eq!(
        ada.recv_json().await,
        json!({ "refused": "too-large", "limit": 4096 })
    );

    let response = http_request(server.addr(), "POST", "/rooms/lobby-ts/hall/echo", b"hello")
        .await
        .expect("the room answers HTTP");
    assert_eq!(response.status, 200);
    assert!(
        response.head.contains("content-type: application/json"),
        "{}",
        response.head
    );
    assert_eq!(
        response.json().expect("JSON"),
        json!({ "method": "POST", "path": "/echo", "body": "hello", "clients": 2 })
    );

    // Each room draws from the host's generator, not from the sequence the
    // engine was snapshotted with: two rooms' first draws differ.
    let mut other = server.connect("/ws?room=other-hall").await;
    other.recv_json().await;
    ada.send_text("random").await;
    other.send_text("random").await;
    let (first, second) = (ada.recv_json().await, other.recv_json().await);
    assert_ne!(first["random"][0], second["random"][0], "{first} {second}");

    bob.send_text("kick").await;
    let closed = bob.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (Some(4001), "kicked by the fixture")
    );
    ada.expect_silence(Duration::from_millis(100)).await;
    server.stop().await;
}

fn durable_ts() -> Vec<ServiceSpec> {
    vec![ServiceSpec::new("durable-ts", plugin("durable-ts"))]
}

async fn ask(client: &mut Client, command: &str) -> String {
    client.send_text(command).await;
    client.recv_text().await
}

/// What a TypeScript room stores survives the server: a second server over
/// the same store (redb in a temporary directory) starts the room with its
/// data (`init` reads its count back), and a durable timer that came due
/// while no server ran fires once the next one starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_rooms_stored_data_survives_a_server_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start_with_store_in(durable_ts(), test_limits(), dir.path()).await;
    let mut client = server.connect("/ws/notes").await;
    for (key, value) in [("a", "1"), ("b", "2"), ("c", "3 and more")] {
        assert_eq!(
            ask(&mut client, &format!("put {key} {value}")).await,
            format!("ok {key}")
        );
    }
    assert_eq!(ask(&mut client, "del b").await, "deleted b true");
    assert_eq!(ask(&mut client, "alarm 500").await, "armed");
    drop(client);
    server.stop().await;
    // The alarm comes due while no server runs.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let server = TestServer::start_with_store_in(durable_ts(), test_limits(), dir.path()).await;
    let mut client = server.connect("/ws/notes").await;
    assert_eq!(
        ask(&mut client, "count").await,
        "count 3",
        "init read it back"
    );
    assert_eq!(ask(&mut client, "get a").await, "value a 1");
    assert_eq!(ask(&mut client, "get b").await, "none b");
    assert_eq!(ask(&mut client, "get c").await, "value c 3 and more");
    // The overdue alarm fired at startup (or when the room woke for this
    // client) and stored its time.
    let mut answer = ask(&mut client, "get fired").await;
    for _ in 0..100 {
        if answer != "none fired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer = ask(&mut client, "get fired").await;
    }
    let fired = answer.strip_prefix("value fired ").unwrap_or(&answer);
    assert!(
        fired.parse::<u64>().is_ok(),
        "the alarm did not fire: {answer}"
    );
    assert_eq!(ask(&mut client, "list").await, "keys a,c,fired");
    server.stop().await;
}

/// The host's refusals reach a TypeScript room as typed `StorageError`s
/// with the host's sizes and limits, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_room_gets_the_hosts_storage_refusals() {
    let backend = Arc::new(MemoryBackend::new());
    let small = roomhost_host::Limits {
        max_room_storage_bytes: 1000,
        ..test_limits()
    };
    let server = TestServer::start_with_storage(durable_ts(), small, backend).await;
    let mut client = server.connect("/ws/capped").await;
    let filled = ask(&mut client, "fill doc 500").await;
    assert_eq!(filled, "ok doc");
    // "k/doc" plus 2,000 bytes replacing the 500.
    assert_eq!(
        ask(&mut client, "fill doc 2000").await,
        "refused room-full 2005 1000"
    );
    let long_key = "x".repeat(2100);
    assert_eq!(
        ask(&mut client, &format!("fill {long_key} 1")).await,
        "refused key-too-large 2102 2048"
    );
    assert_eq!(
        ask(&mut client, "size").await,
        "size 505",
        "nothing changed"
    );
    assert_eq!(ask(&mut client, "put small x").await, "ok small");
    server.stop().await;
}
