//! Room execution: what a plugin prints reaches the host log without
//! harming the host, a busy room cannot starve its neighbours, a host bug
//! in a room's task is contained to that room, and a plugin asking for WASI
//! the host does not give is refused at load.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use roomhost_e2e::{Client, TestServer, eventually, plugin, test_limits};
use roomhost_host::wasm::WasmEngine;
use roomhost_host::{Limits, Plugin, PluginError, ServiceSpec};

/// Everything this test binary logs, for assertions on plugin output.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per binary");
        log
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines(log: &Mutex<Vec<u8>>, containing: &str) -> Vec<String> {
    let log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|line| line.contains(containing))
        .map(str::to_owned)
        .collect()
}

async fn echo(client: &mut Client, text: &str) {
    client.send_text(&format!("echo:{text}")).await;
    assert_eq!(client.recv_text().await, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printing_plugin_logs_under_a_limit_and_keeps_its_room() {
    let log = captured_log();
    let limits = Limits {
        plugin_log_lines: 50,
        // 10,000 WASI writes through a debug build of the host on a loaded
        // machine: this test is about output, not the deadline.
        call_deadline: Duration::from_secs(5),
        ..test_limits()
    };
    let server = TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        limits,
    )
    .await;
    let mut client = server.connect("/ws/print-room").await;
    client.send_text("print").await;
    assert_eq!(client.recv_text().await, "printed");
    // The room is alive and the same client is still connected.
    echo(&mut client, "still here").await;

    let stdout = log_lines(&log, "hello from stdout");
    assert_eq!(stdout.len(), 1, "{stdout:?}");
    assert!(
        stdout[0].contains("INFO"),
        "stdout logs at info: {stdout:?}"
    );
    assert!(
        stdout[0].contains("room=print-room"),
        "tagged with the room: {stdout:?}"
    );
    let stderr = log_lines(&log, "hello from stderr");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].contains("WARN"),
        "stderr logs at warn: {stderr:?}"
    );
    // 10,000 lines were printed; about the budget (50 a second, a second's
    // worth at once) got through, plus what refilled while the call ran.
    let flood = log_lines(&log, "flood ");
    assert!(
        !flood.is_empty() && flood.len() < 500,
        "{} flood lines logged",
        flood.len()
    );
    let dropped = log_lines(&log, "plugin output dropped");
    assert!(!dropped.is_empty(), "the drop is reported");
    // The 1 MiB line was cut, not logged whole.
    let longest = log_lines(&log, "yyyy")
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0);
    assert!(longest > 0 && longest < 8 * 1024, "longest line {longest}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_rooms_do_not_starve_a_quiet_one() {
    let server = TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        test_limits(),
    )
    .await;
    let mut quiet = server.connect("/ws/quiet").await;
    // Four rooms, each with 20 legal 80 ms calls queued: 6.4 s of CPU
    // demanded at once from a 2-worker runtime.
    let mut busy = Vec::new();
    for room in 0..4 {
        let mut client = server.connect(&format!("/ws/busy-{room}")).await;
        for _ in 0..20 {
            client.send_text("spin:80").await;
        }
        busy.push(client);
    }
    // The quiet room keeps answering meanwhile, each echo well inside a
    // second. (Unsliced, each worker ran one busy room's whole queue before
    // anything else: the quiet room waited seconds.)
    let mut slowest = Duration::ZERO;
    for round in 0..20 {
        let sent = tokio::time::Instant::now();
        echo(&mut quiet, &format!("ping {round}")).await;
        slowest = slowest.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("slowest quiet echo beside four busy rooms: {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    // Every busy call completes: waiting for a turn is not a deadline.
    for client in &mut busy {
        for _ in 0..20 {
            assert_eq!(client.recv_text().await, "spun:80");
        }
    }
    // `/rooms` shows where the CPU went.
    let (_, rooms) = server.get_json("/rooms").await;
    let cpu = |room: &str| {
        rooms
            .as_array()
            .and_then(|rooms| rooms.iter().find(|entry| entry["room"] == room))
            .and_then(|entry| entry["cpu_ms"].as_f64())
            .unwrap_or_else(|| panic!("no cpu_ms for {room} in {rooms}"))
    };
    // `spin` waits on the wall clock, so a call that waited for its turn
    // burns less CPU; each still ran at least one 2 ms slice.
    assert!(cpu("busy-0") >= 20.0 * 2.0, "busy used {}", cpu("busy-0"));
    assert!(
        cpu("quiet") < cpu("busy-0") / 10.0,
        "quiet used {}",
        cpu("quiet")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_waiting_on_wasi_is_ended_at_its_deadline() {
    let server = TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        test_limits(),
    )
    .await;
    let mut neighbour = server.connect("/ws/neighbour").await;
    // A short sleep is legal.
    let mut napper = server.connect("/ws/napper").await;
    napper.send_text("sleep:10").await;
    assert_eq!(napper.recv_text().await, "slept:10");
    // A sleep past the deadline ends the room, however long it asked for.
    let mut sleeper = server.connect("/ws/sleeper").await;
    let started = tokio::time::Instant::now();
    sleeper.send_text("sleep:3600000").await;
    let closed = sleeper.closed().await;
    assert_eq!(closed.code, Some(1011), "{closed:?}");
    assert!(closed.reason.contains("waited"), "{closed:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    echo(&mut neighbour, "unaffected").await;
    echo(&mut napper, "unaffected").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_room_task_is_contained_to_that_room() {
    let server = TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        test_limits(),
    )
    .await;
    let mut neighbour = server.connect("/ws/neighbour").await;
    let mut victim = server.connect("/ws/doomed").await;
    echo(&mut victim, "before").await;
    // Both rooms live before the counts are read.
    echo(&mut neighbour, "before").await;

    let (_, before) = server.get_json("/status").await;
    let rooms = server.handle().rooms();
    assert!(rooms.inject_panic("misbehave", "doomed").await);
    let closed = victim.closed().await;
    assert_eq!(closed.code, Some(1011), "{closed:?}");
    assert!(closed.reason.contains("internal error"), "{closed:?}");

    // Gone from the table and from the counts, and the id works again.
    eventually("the room leaves /rooms and /status", || async {
        let (_, status) = server.get_json("/status").await;
        let listed = rooms.get("misbehave", "doomed").is_some();
        let one_less =
            |field: &str| status[field].as_u64() == before[field].as_u64().map(|n| n - 1);
        (!listed && one_less("rooms") && one_less("connections")).then_some(())
    })
    .await;
    echo(&mut neighbour, "unaffected").await;
    let mut fresh = server.connect("/ws/doomed").await;
    echo(&mut fresh, "fresh").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_importing_sockets_is_refused_at_load() {
    let engine = WasmEngine::new(&test_limits()).expect("engine");
    let refused = Plugin::load(&engine, &plugin("netplug"), None)
        .err()
        .expect("netplug imports wasi:sockets and must be refused");
    assert!(
        matches!(&refused, PluginError::RefusedImport { import, .. } if import.starts_with("wasi:sockets/")),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(message.contains("wasi:sockets/"), "{message}");
    // Every shipped plugin and fixture loads: the WASI they import is given.
    for name in [
        "counter",
        "chat",
        "relay",
        "watch-party",
        "game-lobby",
        "collab",
        "misbehave",
        "counter-ts",
        "chat-ts",
    ] {
        Plugin::load(&engine, &plugin(name), None)
            .unwrap_or_else(|error| panic!("{name} does not load: {error}"));
    }
}
