//! collab survives SIGKILL: real Yjs clients (yjs with y-websocket,
//! `tests/node/crash.mjs`) edit a document through `roomhost serve`; the
//! server is killed with SIGKILL mid-stream and started again over the same
//! data directory; a new client then holds every edit that any client had
//! seen (collab broadcasts an edit only once it is stored, so seeing it is
//! the acknowledgement). Needs Node.js and npm, like the collab tests.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use roomhost_e2e::node::{node_dir, node_ready};
use roomhost_e2e::plugin;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_a_client_saw_survives_sigkill() {
    node_ready();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let plugin = format!("collab={}", plugin("collab").display());
    let args = ["--plugin", &plugin, "--data-dir", data.to_str().unwrap()];
    let mut served = common::serve(&args, dir.path());
    let url = format!("ws://{}/ws", served.addr);

    let mut editing = tokio::process::Command::new("node")
        .args(["crash.mjs", "edit", &url, "doc"])
        .current_dir(node_dir())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(editing.stdout.take().unwrap()).lines();
    let mut seen = HashSet::new();
    let watched = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(item) = line.strip_prefix("seen ") {
                seen.insert(item.to_owned());
                if seen.len() == 300 {
                    break;
                }
            }
        }
    })
    .await;
    assert!(
        watched.is_ok(),
        "the observer saw only {} edits",
        seen.len()
    );
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    // Whatever reached the observer before the kill is what it saw.
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await
    {
        if let Some(item) = line.strip_prefix("seen ") {
            seen.insert(item.to_owned());
        }
    }
    editing.kill().await.unwrap();

    let mut served = common::serve(&args, dir.path());
    let url = format!("ws://{}/ws", served.addr);
    let read = tokio::process::Command::new("node")
        .args(["crash.mjs", "read", &url, "doc"])
        .current_dir(node_dir())
        .output()
        .await
        .expect("node runs");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let items: Vec<String> = serde_json::from_slice(&read.stdout).expect("the items as JSON");
    let kept: HashSet<&str> = items.iter().map(String::as_str).collect();
    let lost: Vec<&String> = seen
        .iter()
        .filter(|item| !kept.contains(item.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} seen edits lost: {lost:?}",
        lost.len(),
        seen.len()
    );
    common::terminate(&served.child);
    common::wait_exit(&mut served.child);
}
