//! The TypeScript SDK's own checks, run by `cargo test`: the SDK's Node
//! tests (`guest-sdk-js/test`: conversions, the harness, the contract types
//! against the WIT, a type-check of the SDK and the plugins), the unit
//! tests of the TypeScript plugins through the SDK's `TestRoom`, and the
//! SDK's host calls against the real host (`tests/fixtures/lobby-ts`). The
//! plugins' protocols over real sockets are checked beside the Rust
//! plugins' in `rooms.rs` and `reload.rs` (the `_ts` tests).
//!
//! Needs `node` and `npm` (Node 18 or later) on `PATH`; `npm ci` runs in
//! `guest-sdk-js` when its `node_modules` is missing or stale.

use std::path::Path;
use std::process::Command;

use std::time::Duration;

use roomhost_e2e::{JS_PLUGINS, TestServer, http_request, node, workspace_root};
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
    for name in JS_PLUGINS {
        let dir = workspace_root().join("plugins").join(name);
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
