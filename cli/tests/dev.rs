//! `roomhost new` and `roomhost dev` end to end: scaffold a plugin, serve it
//! in dev mode, edit it while clients are connected, break it, and check what
//! the clients and the developer see.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use roomhost_e2e::{Client, http_get_json, plugin_target_dir};

const ROOMHOST: &str = env!("CARGO_BIN_EXE_roomhost");

/// The first build compiles the SDK and serde for wasm.
const FIRST_BUILD: Duration = Duration::from_secs(600);
/// An incremental rebuild plus reload.
const REBUILD: Duration = Duration::from_secs(120);

/// A running `roomhost dev` and the lines it prints (stdout and stderr).
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Dev {
    fn start(dir: &Path) -> Dev {
        let mut child = Command::new(ROOMHOST)
            .arg("dev")
            .arg(dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--debounce-ms",
                "100",
                "--target-dir",
            ])
            // Shared with the CLI's other crate builds: the SDK compiles once.
            .arg(dev_target_dir())
            // Its own store: the default one in the shared target directory
            // is held by whichever dev test runs first.
            .arg("--data-dir")
            .arg(dir.join("roomhost-dev-data"))
            .env("RUST_LOG", "warn")
            // dev must not fill the user's compile cache.
            .env("XDG_CACHE_HOME", user_cache(dir))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("roomhost dev starts");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        // Only the readers hold senders: when roomhost exits, waits end.
        drop(sender);
        let mut dev = Dev {
            child,
            lines,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let banner = dev.wait_for("listening on", FIRST_BUILD);
        dev.addr = banner
            .rsplit("http://")
            .next()
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {banner:?}"));
        dev
    }

    /// Waits for a printed line containing `needle`; returns it. Fails with
    /// everything printed meanwhile.
    fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(error) => panic!(
                    "roomhost dev never printed {needle:?} ({error}); it printed:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// Everything printed so far.
    fn drain(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The target directory the dev tests build in.
fn dev_target_dir() -> PathBuf {
    plugin_target_dir().join("from-docs")
}

/// The user cache directory a dev process under test sees.
fn user_cache(crate_dir: &Path) -> PathBuf {
    crate_dir.parent().expect("a parent").join("user-cache")
}

fn scaffold(name: &str) -> PathBuf {
    scaffold_in(name, &[])
}

/// `roomhost new NAME --lang ts`: the npm install runs too.
fn scaffold_ts(name: &str) -> PathBuf {
    scaffold_in(name, &["--lang", "ts"])
}

fn scaffold_in(name: &str, options: &[&str]) -> PathBuf {
    let parent = plugin_target_dir()
        .join("cli-tests")
        .join(format!("dev-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).expect("temp dir");
    let dir = parent.join(name);
    let output = Command::new(ROOMHOST)
        .args(["new", name, "--path"])
        .arg(&dir)
        .args(options)
        .output()
        .expect("roomhost new runs");
    assert!(
        output.status.success(),
        "roomhost new failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("roomhost dev"));
    dir
}

/// A client on each path, past the scaffold's welcome.
async fn welcomed<const N: usize>(addr: SocketAddr, paths: [&str; N]) -> Vec<Client> {
    let mut clients = Vec::new();
    for path in paths {
        let mut client = Client::connect(addr, path).await.expect("connects");
        assert_eq!(client.recv_json().await["type"], "welcome");
        clients.push(client);
    }
    clients
}

fn edit(dir: &Path, from: &str, to: &str) {
    edit_file(&dir.join("src/lib.rs"), from, to);
}

fn edit_file(path: &Path, from: &str, to: &str) {
    let source = std::fs::read_to_string(path).expect("the scaffold's source");
    assert!(source.contains(from), "{from:?} not in the scaffold");
    std::fs::write(path, source.replace(from, to)).expect("edit the scaffold's source");
}

/// The issue's promise: `roomhost new demo --lang ts && cd demo && roomhost
/// dev`, edit the service, and see the change live with clients connected
/// and the rooms' state kept (snapshot/restore in the TypeScript class).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_scaffolded_typescript_service_reloads_it_under_connected_clients() {
    let dir = scaffold_ts("tsdemo");
    let source = dir.join("src/index.ts");
    let mut dev = Dev::start(&dir);
    let mut clients = welcomed(dev.addr, ["/ws/ts-room?name=ada", "/ws/ts-room?name=bob"]).await;
    clients[0].send_text("before").await;
    for client in &mut clients {
        let echo = client.recv_json().await;
        assert_eq!(
            (
                echo["type"].as_str(),
                echo["from"].as_str(),
                echo["count"].as_u64()
            ),
            (Some("echo"), Some("ada"), Some(1))
        );
    }

    dev.drain();
    edit_file(&source, "type: 'echo'", "type: 'shout'");
    let reloaded = dev.wait_for("↻ reloaded", REBUILD);
    assert!(reloaded.contains("restored 1"), "{reloaded}");
    clients[1].send_text("after").await;
    for client in &mut clients {
        let shout = client.recv_json().await;
        assert_eq!(shout["type"], "shout", "{shout}");
        assert_eq!(shout["count"], 2, "state kept: {shout}");
        // The host kept the client's state (its name) across the reload.
        assert_eq!(shout["from"], "bob", "{shout}");
    }

    // A syntax error: shown, and the last good version serves on.
    edit_file(&source, "this.count += 1;", "this.count += ;");
    let failed = dev.wait_for("✗ build failed", REBUILD);
    assert!(
        failed.contains("last good version keeps serving"),
        "{failed}"
    );
    clients[0].send_text("still").await;
    for client in &mut clients {
        assert_eq!(client.recv_json().await["count"], 3);
    }
    edit_file(&source, "this.count += ;", "this.count += 10;");
    dev.wait_for("↻ reloaded", REBUILD);
    clients[0].send_text("fixed").await;
    for client in &mut clients {
        assert_eq!(client.recv_json().await["count"], 13);
    }
}

#[test]
fn the_typescript_scaffold_tests_pass() {
    let dir = scaffold_ts("ts-scaffold-tests");
    for script in ["test", "check"] {
        let output = Command::new("npm")
            .args(["run", script])
            .current_dir(&dir)
            .output()
            .expect("npm runs");
        assert!(
            output.status.success(),
            "npm run {script} failed in the TypeScript scaffold:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_scaffolded_plugin_reloads_it_under_connected_clients() {
    let dir = scaffold("demo");
    let mut dev = Dev::start(&dir);

    // The compiled plugin went to the target directory, not the user's cache.
    assert!(
        !user_cache(&dir).join("roomhost").exists(),
        "dev wrote to the user's compile cache"
    );
    let cached = std::fs::read_dir(dev_target_dir().join("roomhost-dev-cache"))
        .expect("the dev compile cache")
        .flatten()
        .any(|entry| entry.path().extension().is_some_and(|ext| ext == "cwasm"));
    assert!(cached, "no compiled plugin in the target directory's cache");

    let mut clients = welcomed(dev.addr, ["/ws/lobby-room"; 3]).await;
    clients[0].send_text("before").await;
    for client in &mut clients {
        let echo = client.recv_json().await;
        assert_eq!(
            (echo["type"].as_str(), echo["count"].as_u64()),
            (Some("echo"), Some(1))
        );
    }

    // Change the reply: clients see the new behaviour with the room's count
    // intact, on the same sockets.
    dev.drain();
    edit(&dir, r#""type": "echo""#, r#""type": "shout""#);
    let reloaded = dev.wait_for("↻ reloaded", REBUILD);
    assert!(
        reloaded.contains("restored 1"),
        "the room restored (the scaffold has no lobby): {reloaded}"
    );
    clients[1].send_text("after").await;
    for client in &mut clients {
        let shout = client.recv_json().await;
        assert_eq!(shout["type"], "shout", "{shout}");
        assert_eq!(shout["count"], 2, "state kept: {shout}");
        assert_eq!(shout["text"], "after");
    }
    let (_, rooms) = http_get_json(dev.addr, "/rooms").await.expect("/rooms");
    let version = reloaded.rsplit("version ").next().expect("a version");
    assert_eq!(rooms[0]["plugin_version"], version, "{rooms}");

    // A broken edit: the error is shown, the last good version serves on.
    edit(&dir, "self.count += 1;", "self.count += ;");
    let failed = dev.wait_for("✗ build failed", REBUILD);
    assert!(
        failed.contains("last good version keeps serving"),
        "{failed}"
    );
    clients[2].send_text("still").await;
    for client in &mut clients {
        let shout = client.recv_json().await;
        assert_eq!(
            (shout["type"].as_str(), shout["count"].as_u64()),
            (Some("shout"), Some(3))
        );
    }
    let (_, history) = http_get_json(dev.addr, "/_dev/history")
        .await
        .expect("history");
    let last = history
        .as_array()
        .and_then(|events| events.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["type"].as_str(), last["state"].as_str()),
        (Some("build"), Some("failed")),
        "{history}"
    );
    assert!(
        last["message"]
            .as_str()
            .unwrap_or_default()
            .contains("error"),
        "{last}"
    );

    // Fixing it reloads again; no client was ever closed.
    edit(&dir, "self.count += ;", "self.count += 10;");
    dev.wait_for("↻ reloaded", REBUILD);
    clients[0].send_text("fixed").await;
    for client in &mut clients {
        assert_eq!(client.recv_json().await["count"], 13);
    }
    for client in &mut clients {
        client.expect_silence(Duration::from_millis(50)).await;
    }

    // Saving without a change rebuilds the same component: nothing reloads.
    let lib = dir.join("src/lib.rs");
    std::fs::write(&lib, std::fs::read(&lib).expect("lib.rs")).expect("save lib.rs");
    let unchanged = dev.wait_for("plugin unchanged", REBUILD);
    assert!(unchanged.contains("rooms untouched"), "{unchanged}");
    clients[1].send_text("same").await;
    for client in &mut clients {
        assert_eq!(client.recv_json().await["count"], 23);
    }
    assert!(
        !dev.drain().iter().any(|line| line.contains("↻ reloaded")),
        "an identical build was reloaded"
    );
}

#[test]
fn the_scaffold_unit_tests_pass() {
    let dir = scaffold("scaffold-tests");
    let output = Command::new(env!("CARGO"))
        .args(["test", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(plugin_target_dir().join("scaffold-native"))
        .output()
        .expect("cargo test runs");
    assert!(
        output.status.success(),
        "the scaffold's tests failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn new_refuses_bad_names_and_existing_directories() {
    let output = Command::new(ROOMHOST)
        .args(["new", "1bad"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid crate name"));

    // Its service type would be `Room`, which the scaffold imports.
    let output = Command::new(ROOMHOST)
        .args(["new", "room", "--path"])
        .arg(plugin_target_dir().join("cli-tests").join("never-created"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`Room`") && stderr.contains("my-room"),
        "{stderr}"
    );

    let dir = scaffold("taken");
    let output = Command::new(ROOMHOST)
        .args(["new", "taken", "--path"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
}

#[test]
fn dev_on_a_directory_without_a_crate_fails_clearly() {
    let output = Command::new(ROOMHOST)
        .args([
            "dev",
            "/nonexistent-roomhost-crate",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open the plugin crate"));
}
