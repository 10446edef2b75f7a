//! `roomhost storage` against a real store: a running server's backup over
//! its admin endpoint, then the offline commands (list, export, delete,
//! import) on the data directory and on the backup.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ROOMHOST, serve, terminate, wait_exit};
use roomhost_e2e::{Client, plugin};

fn storage(args: &[&str], data_dir: &Path) -> (bool, String, String) {
    let output = Command::new(ROOMHOST)
        .arg("storage")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("roomhost runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_list_export_delete_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let durable = format!("durable={}", plugin("durable").display());
    let mut served = serve(
        &["--plugin", &durable, "--data-dir", data.to_str().unwrap()],
        dir.path(),
    );
    let mut client = Client::connect(served.addr, "/ws/notes").await.unwrap();
    client.send_text("put greeting hello").await;
    assert_eq!(client.recv_text().await, "ok greeting");

    // While it serves: the file is the server's, the backup goes through it.
    let (ok, _, stderr) = storage(&["list"], &data);
    assert!(!ok && stderr.contains("in use"), "{stderr}");
    let copy = dir.path().join("copy").join("roomhost.redb");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let server = format!("http://{}", served.addr);
    let (ok, stdout, stderr) = storage(
        &["backup", copy.to_str().unwrap(), "--server", &server],
        &data,
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("wrote"), "{stdout}");
    drop(client);
    terminate(&served.child);
    wait_exit(&mut served.child);

    // The backup is a whole store.
    let (ok, stdout, stderr) = storage(&["list"], copy.parent().unwrap());
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("durable") && stdout.contains("notes"),
        "{stdout}"
    );

    let export = dir.path().join("notes.json");
    let (ok, _, stderr) = storage(
        &[
            "export",
            "durable",
            "notes",
            "--out",
            export.to_str().unwrap(),
        ],
        &data,
    );
    assert!(ok, "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    assert!(
        json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["key"] == "greeting" && entry["value"] == "hello"),
        "{json}"
    );

    let (ok, stdout, _) = storage(&["delete", "durable", "notes"], &data);
    assert!(ok && stdout.contains("deleted"), "{stdout}");
    let (ok, stdout, _) = storage(&["list"], &data);
    assert!(ok && stdout.contains("no room stores data"), "{stdout}");
    let (ok, stdout, stderr) = storage(&["import", export.to_str().unwrap()], &data);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("imported"), "{stdout}");

    // The server finds the imported data.
    let mut served = serve(
        &["--plugin", &durable, "--data-dir", data.to_str().unwrap()],
        dir.path(),
    );
    let mut client = Client::connect(served.addr, "/ws/notes").await.unwrap();
    client.send_text("get greeting").await;
    assert_eq!(client.recv_text().await, "value greeting hello");
    drop(client);
    terminate(&served.child);
    wait_exit(&mut served.child);

    // A directory without a store is an error, not an empty store.
    let (ok, _, stderr) = storage(&["list"], &dir.path().join("nothing"));
    assert!(!ok && stderr.contains("holds no store"), "{stderr}");
}
