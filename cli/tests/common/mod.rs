//! Running the `roomhost` binary from tests and benchmarks: `serve` with
//! its banner read, signals, and waiting for it to exit.

#![allow(dead_code)] // Each test binary uses part of it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ROOMHOST: &str = env!("CARGO_BIN_EXE_roomhost");

/// A `roomhost serve` process and what it printed at startup.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub banner: Vec<String>,
}

/// Starts `roomhost serve ARGS` on an ephemeral port, caching compiled
/// plugins in `cache_dir`, and reads its banner. Rooms store their data in
/// `cache_dir/data` unless `args` say where (`--data-dir`, `--no-storage`,
/// `--file`, `--cluster`).
/// A server still running when its test ends (a failed assertion) is
/// killed, so no process outlives the test.
impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn serve(args: &[&str], cache_dir: &Path) -> Served {
    serve_with_env(args, &[], cache_dir)
}

/// [`serve`] with these environment variables set (and the test runner's
/// `ROOMHOST_WORKERS` never inherited).
pub fn serve_with_env(args: &[&str], env: &[(&str, &str)], cache_dir: &Path) -> Served {
    let mut command = Command::new(ROOMHOST);
    command
        .env_remove("ROOMHOST_WORKERS")
        .envs(env.iter().copied());
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(cache_dir)
        .args(args);
    let placed = args
        .iter()
        .any(|arg| ["--data-dir", "--no-storage", "--file", "--cluster"].contains(arg));
    if !placed {
        command.arg("--data-dir").arg(cache_dir.join("data"));
    }
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("roomhost starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("a banner line")
        .expect("readable stdout");
    let addr = first
        .rsplit("http://")
        .next()
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let mut banner = vec![first];
    for line in lines.by_ref() {
        let line = line.expect("readable stdout");
        let done = line.contains("status:");
        banner.push(line);
        if done {
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        addr,
        banner,
    }
}

pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().expect("wait works") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("roomhost did not exit within 10 s");
}

/// What one crash trial found.
#[derive(Debug, Default)]
pub struct Crash {
    /// Writes clients saw acknowledged before the kill.
    pub acknowledged: usize,
    /// Acknowledged writes missing after the restart.
    pub lost: Vec<String>,
    /// Whether the store could not be opened again (a corrupt file).
    pub corrupt: Option<String>,
}

/// One crash trial: `writers` clients (one room each) write keys one at a
/// time through `roomhost serve` over `data_dir`; the server is killed with
/// SIGKILL after `kill_after`; a new server over the same directory must
/// hold every write a client saw acknowledged.
pub async fn crash_trial(
    durable_wasm: &Path,
    data_dir: &Path,
    cache_dir: &Path,
    writers: usize,
    kill_after: Duration,
    trial: usize,
) -> Crash {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let plugin = format!("durable={}", durable_wasm.display());
    let data = data_dir.to_str().expect("UTF-8 path");
    let mut served = serve(&["--plugin", &plugin, "--data-dir", data], cache_dir);
    let addr = served.addr;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let url = format!("ws://{addr}/ws/w{writer}");
            let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else {
                return;
            };
            for seq in 0.. {
                let key = format!("t{trial}-w{writer}-{seq:07}");
                if socket
                    .send(Message::text(format!("put {key} v")))
                    .await
                    .is_err()
                {
                    return;
                }
                match socket.next().await {
                    Some(Ok(Message::Text(text))) if text.as_str() == format!("ok {key}") => {
                        acked.lock().expect("not poisoned").push((writer, key));
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(kill_after).await;
    served.child.kill().expect("SIGKILL");
    served.child.wait().expect("the killed server is reaped");
    for task in tasks {
        let _ = task.await;
    }
    let acked = std::mem::take(&mut *acked.lock().expect("not poisoned"));

    let mut crash = Crash {
        acknowledged: acked.len(),
        ..Crash::default()
    };
    let mut served = match std::panic::catch_unwind(|| {
        serve(&["--plugin", &plugin, "--data-dir", data], cache_dir)
    }) {
        Ok(served) => served,
        Err(_) => {
            crash.corrupt = Some("the server did not start over the store".into());
            return crash;
        }
    };
    for writer in 0..writers {
        let url = format!("ws://{}/ws/w{writer}", served.addr);
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connects after the restart");
        socket
            .send(Message::text(format!("list t{trial}-w{writer}-")))
            .await
            .expect("sends");
        let stored = match socket.next().await {
            Some(Ok(Message::Text(text))) => text.to_string(),
            other => panic!("no answer to list: {other:?}"),
        };
        let stored: std::collections::HashSet<&str> = stored
            .strip_prefix("keys ")
            .unwrap_or_default()
            .split(',')
            .collect();
        crash.lost.extend(
            acked
                .iter()
                .filter(|(owner, key)| *owner == writer && !stored.contains(key.as_str()))
                .map(|(_, key)| key.clone()),
        );
    }
    terminate(&served.child);
    wait_exit(&mut served.child);
    crash
}
