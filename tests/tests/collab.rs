//! The collab plugin against real Yjs clients: `tests/node/collab.mjs` runs
//! yjs 13 documents with y-websocket 2.1.0 providers (and `fetch` for the
//! REST face) against a real server, one cargo test per check of the script
//! (`--only NAME`), so a failure names the check.
//!
//! Needs `node` and `npm` (Node 18 or later) on `PATH`, and fails without them.
//! `npm ci` runs in `tests/node` once, when `node_modules` is missing or older
//! than `package-lock.json`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use roomhost_e2e::{TestServer, node, plugin, test_limits, workspace_root};
use roomhost_host::ServiceSpec;

/// How long one run of the script may take before the test fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long each wait inside the script lasts (`COLLAB_TIMEOUT_MS`): generous,
/// because the checks share two cores with each other and the servers.
const WAIT_MS: &str = "20000";

/// The checks of `collab.mjs --list`, each covered by one test below.
const CHECKS: &[&str] = &[
    "convergence",
    "late-joiner",
    "awareness",
    "rooms",
    "large-doc",
    "rest",
];

fn node_dir() -> PathBuf {
    workspace_root().join("tests").join("node")
}

/// Makes sure `npm ci` has run in `tests/node`: once per test binary.
fn node_ready() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(error) = READY.get_or_init(|| node::npm_ci(&node_dir())) {
        panic!("the Node.js checks cannot run: {error}");
    }
}

/// Runs `node collab.mjs ARGS` and fails the test, with the script's output,
/// unless it exits 0.
async fn run_script(args: &[String]) -> String {
    node_ready();
    let mut command = tokio::process::Command::new("node");
    command
        .arg("collab.mjs")
        .args(args)
        .current_dir(node_dir())
        .env("COLLAB_TIMEOUT_MS", WAIT_MS)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let run = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("node collab.mjs {args:?} did not finish in {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|error| panic!("cannot run node: {error}"));
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "node collab.mjs {} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        args.join(" "),
        run.status
    );
    stdout
}

/// Serves collab as the only service (rooms at `/ws/{room}`) and runs one
/// check of the script against it.
async fn check(name: &str) {
    check_with(name, test_limits()).await;
}

/// [`check`] under `limits`.
async fn check_with(name: &str, limits: roomhost_host::Limits) {
    node_ready();
    let server = TestServer::start(
        vec![ServiceSpec::new("collab", plugin("collab")).with_http_creates_rooms(true)],
        limits,
    )
    .await;
    let addr = server.addr();
    let stdout = run_script(&[
        format!("ws://{addr}/ws"),
        "--roomhost".into(),
        format!("http://{addr}"),
        "--only".into(),
        name.into(),
    ])
    .await;
    // The script ran the check (it does not skip silently).
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with(&format!("ok   {name}:"))),
        "the script did not report {name} as passed:\n{stdout}"
    );
    server.stop().await;
}

#[tokio::test]
async fn convergence() {
    check("convergence").await;
}

#[tokio::test]
async fn late_joiner() {
    check("late-joiner").await;
}

#[tokio::test]
async fn awareness() {
    check("awareness").await;
}

#[tokio::test]
async fn rooms() {
    check("rooms").await;
}

/// A 5 MB document, built from frames each under the 64 KiB a client may
/// send, converges and reaches a late joiner with the default frame limits
/// (`max_frame_bytes`, `max_plugin_frame_bytes`, `client_queue_bytes`) and
/// collab's default configuration: what a plugin sends is not bounded by
/// what a client may send.
#[tokio::test]
async fn large_document() {
    check_with("large-doc", large_document_limits()).await;
}

/// The test limits with one change for the large-doc check: the CPU
/// deadline of a callback. Answering a joiner of a 5 MB document (one
/// encode of the whole document) takes tens of milliseconds of wasm, and
/// the host measures a call's CPU as the time it is polled: on a 2-core
/// machine shared with compilers that time stretches several times, and it
/// crossed the default 100 ms (the room was disposed, 1011). The deadline is
/// not what the check is about, so it gets room to spare; every frame and
/// queue limit keeps its default.
fn large_document_limits() -> roomhost_host::Limits {
    roomhost_host::Limits {
        call_deadline: std::time::Duration::from_secs(2),
        ..test_limits()
    }
}

#[tokio::test]
async fn rest() {
    check("rest").await;
}

/// Every check of the script has a test above, so one added to the script
/// is not silently left out of `cargo test`.
#[tokio::test]
async fn every_script_check_has_a_test() {
    let listed = run_script(&["--list".into()]).await;
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(names, CHECKS, "collab.mjs --list:\n{listed}");
}

/// With several services, a document is at `/ws/collab/{doc}`: the whole
/// script through the service's own URL, as the README tells clients to
/// connect.
#[tokio::test]
async fn whole_script_beside_another_service() {
    node_ready();
    let server = TestServer::start(
        vec![
            ServiceSpec::new("collab", plugin("collab")).with_http_creates_rooms(true),
            ServiceSpec::new("counter", plugin("counter")),
        ],
        // The script includes the large-doc check.
        large_document_limits(),
    )
    .await;
    let addr = server.addr();
    let stdout = run_script(&[
        format!("ws://{addr}/ws/collab"),
        "--roomhost".into(),
        format!("http://{addr}"),
    ])
    .await;
    let summary = format!("{} passed, 0 failed", CHECKS.len());
    assert!(stdout.contains(&summary), "expected {summary:?}:\n{stdout}");
    server.stop().await;
}
