//! Durable rooms, end to end: the real server, the `durable` fixture built
//! to wasm, real sockets. What a room stores comes back when it starts
//! again (after it ended, after a restart, with durable timers), writes are
//! refused whole at the caps, and the output gate holds what an event sent
//! until its commit is durable: a slow backend delays the answer, a failing
//! one disposes the room and the answer never arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use roomhost_e2e::{Client, TestServer, eventually, http_request, plugin, test_limits};
use roomhost_host::ServiceSpec;
use roomhost_host::storage::{
    Backend, EmbeddedBackend, MemoryBackend, RoomCommit, StorageError, StoredRoom,
    StoredRoomSummary,
};

fn durable() -> Vec<ServiceSpec> {
    vec![ServiceSpec::new("durable", plugin("durable"))]
}

async fn ask(client: &mut Client, command: &str) -> String {
    client.send_text(command).await;
    client.recv_text().await
}

/// A backend around another that can be slowed down or made to fail: the
/// faults a disk or a network store has, injected through the trait.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn Backend>,
    commit_delay_ms: AtomicU64,
    failing: AtomicBool,
    commits: AtomicU64,
}

impl Faulty {
    fn new(inner: Arc<dyn Backend>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            commit_delay_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            commits: AtomicU64::new(0),
        })
    }
}

impl Backend for Faulty {
    fn load(&self, service: &str, room: &str) -> Result<StoredRoom, StorageError> {
        self.inner.load(service, room)
    }

    fn commit(&self, commits: &[RoomCommit]) -> Result<(), StorageError> {
        std::thread::sleep(Duration::from_millis(
            self.commit_delay_ms.load(Ordering::SeqCst),
        ));
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageError::Backend("injected: disk full".into()));
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(commits)
    }

    fn rooms(&self) -> Result<Vec<StoredRoomSummary>, StorageError> {
        self.inner.rooms()
    }

    fn delete_room(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        self.inner.delete_room(service, room)
    }

    fn backup(&self, to: &std::path::Path) -> Result<u64, StorageError> {
        self.inner.backup(to)
    }

    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }

    fn describe(&self) -> String {
        format!("faulty {}", self.inner.describe())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_ended_wakes_with_what_it_stored() {
    let server =
        TestServer::start_with_storage(durable(), test_limits(), Arc::new(MemoryBackend::new()))
            .await;
    let mut client = server.connect("/ws/notes").await;
    assert_eq!(ask(&mut client, "put a 1").await, "ok a");
    assert_eq!(ask(&mut client, "put b 2").await, "ok b");
    assert_eq!(ask(&mut client, "del b").await, "deleted b true");
    client.close().await;
    // The room ends with its last client; its data stays.
    eventually("the room to end", || async {
        let (_, rooms) = server.get_json("/rooms").await;
        rooms.as_array().is_some_and(Vec::is_empty).then_some(())
    })
    .await;
    let (_, stored) = server.get_json("/storage/rooms").await;
    assert_eq!(stored[0]["room"], "notes", "{stored}");
    let mut client = server.connect("/ws/notes").await;
    assert_eq!(ask(&mut client, "get a").await, "value a 1");
    assert_eq!(ask(&mut client, "get b").await, "none b");
    // `init` read the counter back from storage.
    assert_eq!(ask(&mut client, "count").await, "count 2");
    let (_, room) = server.get_json("/rooms/durable/notes").await;
    assert!(room["storage_bytes"].as_u64().unwrap() > 0, "{room}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_restart_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_store_in(durable(), test_limits(), dir.path()).await;
    let mut client = server.connect("/ws/doc").await;
    for i in 0..20 {
        assert_eq!(
            ask(&mut client, &format!("put k{i:02} v{i}")).await,
            format!("ok k{i:02}")
        );
    }
    let response = http_request(server.addr(), "PUT", "/rooms/durable/doc/k/http", b"body")
        .await
        .unwrap();
    assert_eq!(response.status, 204);
    drop(client);
    server.stop().await;

    let server = TestServer::start_with_store_in(durable(), test_limits(), dir.path()).await;
    let mut client = server.connect("/ws/doc").await;
    assert_eq!(ask(&mut client, "count").await, "count 20");
    assert_eq!(ask(&mut client, "get k19").await, "value k19 v19");
    assert_eq!(ask(&mut client, "get http").await, "value http body");
    let keys = ask(&mut client, "list k").await;
    assert_eq!(keys.split(',').count(), 20, "{keys}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_a_cap_are_refused_whole_and_keep_what_was_stored() {
    let limits = roomhost_host::Limits {
        max_room_storage_bytes: 1000,
        ..test_limits()
    };
    let server =
        TestServer::start_with_storage(durable(), limits, Arc::new(MemoryBackend::new())).await;
    let mut client = server.connect("/ws/capped").await;
    assert_eq!(ask(&mut client, "fill doc 500").await, "ok doc");
    let refused = ask(&mut client, "fill doc 2000").await;
    assert!(refused.contains("max_room_storage_bytes"), "{refused}");
    let value = ask(&mut client, "get doc").await;
    assert_eq!(
        value.len(),
        "value doc ".len() + 500,
        "the old value is intact"
    );
    let refused = ask(&mut client, "batch-fail").await;
    assert!(refused.contains("max_storage_value_bytes"), "{refused}");
    assert_eq!(ask(&mut client, "get first").await, "none first");
    // The room goes on.
    assert_eq!(ask(&mut client, "put small x").await, "ok small");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_waits_for_its_commit_and_a_failed_commit_never_answers() {
    let backend = Faulty::new(Arc::new(MemoryBackend::new()));
    let server = TestServer::start_with_storage(durable(), test_limits(), backend.clone()).await;
    let mut client = server.connect("/ws/gated").await;
    assert_eq!(ask(&mut client, "put a 1").await, "ok a");

    // A slow disk: the acknowledgement comes only once the write is durable.
    backend.commit_delay_ms.store(400, Ordering::SeqCst);
    let asked = Instant::now();
    assert_eq!(ask(&mut client, "put b 2").await, "ok b");
    assert!(
        asked.elapsed() >= Duration::from_millis(400),
        "answered after {:?}, before the commit",
        asked.elapsed()
    );
    // A read-only event has nothing to commit and is not held.
    let asked = Instant::now();
    assert_eq!(ask(&mut client, "get b").await, "value b 2");
    assert!(asked.elapsed() < Duration::from_millis(400));

    // A failing disk: the room is disposed and the acknowledgement of the
    // write that was lost is never sent.
    backend.commit_delay_ms.store(0, Ordering::SeqCst);
    backend.failing.store(true, Ordering::SeqCst);
    client.send_text("put c 3").await;
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(1011));
    assert!(
        closed.reason.contains("storage commit failed"),
        "{}",
        closed.reason
    );
    backend.failing.store(false, Ordering::SeqCst);
    let mut client = server.connect("/ws/gated").await;
    assert_eq!(ask(&mut client, "get c").await, "none c");
    assert_eq!(ask(&mut client, "get b").await, "value b 2");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_answer_waits_for_its_commit() {
    let backend = Faulty::new(Arc::new(MemoryBackend::new()));
    let limits = roomhost_host::Limits {
        http_timeout: Duration::from_secs(5),
        ..test_limits()
    };
    let services =
        vec![ServiceSpec::new("durable", plugin("durable")).with_http_creates_rooms(true)];
    let server = TestServer::start_with_storage(services, limits, backend.clone()).await;
    backend.failing.store(true, Ordering::SeqCst);
    let response = http_request(server.addr(), "PUT", "/rooms/durable/web/k/x", b"1")
        .await
        .unwrap();
    assert!(response.status >= 500, "status {}", response.status);
    backend.failing.store(false, Ordering::SeqCst);
    let response = http_request(server.addr(), "GET", "/rooms/durable/web/k/x", b"")
        .await
        .unwrap();
    assert_eq!(response.status, 404, "the write that failed is not there");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_timer_fires_after_a_restart_that_missed_it() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let server = TestServer::start_with_storage(durable(), test_limits(), backend.clone()).await;
    let mut client = server.connect("/ws/alarm").await;
    assert_eq!(ask(&mut client, "alarm 300").await, "armed");
    drop(client);
    // Down before the alarm is due; up again after.
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = TestServer::start_with_storage(durable(), test_limits(), backend.clone()).await;
    // The room wakes on its own: no client asked for it.
    eventually("the alarm to fire", || async {
        let stored = backend.load("durable", "alarm").ok()?;
        stored
            .entries
            .iter()
            .any(|(key, _)| key == b"fired")
            .then_some(())
    })
    .await;
    let stored = backend.load("durable", "alarm").unwrap();
    assert!(
        stored.timers.is_empty(),
        "a fired timer is no longer stored"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_share_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(EmbeddedBackend::open(dir.path()).unwrap());
    let server = TestServer::start_with_storage(durable(), test_limits(), backend.clone()).await;
    let mut tasks = Vec::new();
    for room in 0..20 {
        let addr = server.addr();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, &format!("/ws/r{room}"))
                .await
                .unwrap();
            for i in 0..10 {
                assert_eq!(
                    ask(&mut client, &format!("put k{i} v")).await,
                    format!("ok k{i}")
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rooms = backend.rooms().unwrap();
    assert_eq!(rooms.len(), 20);
    // Ten keys and the counter in each.
    assert!(rooms.iter().all(|room| room.entries == 11), "{rooms:?}");
    let metrics = http_request(server.addr(), "GET", "/metrics", b"")
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains("roomhost_storage_commit_group_rooms_count 200"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_service_made_durable_by_configuration_comes_back_after_a_restart() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let counter = || {
        vec![
            ServiceSpec::new("counter", plugin("counter"))
                .with_durable_snapshots(Duration::from_millis(100)),
        ]
    };
    let server = TestServer::start_with_storage(counter(), test_limits(), backend.clone()).await;
    let mut client = server.connect("/ws/tally").await;
    assert_eq!(client.recv_json().await["count"], 0);
    for _ in 0..3 {
        client.send_text("increment").await;
        client.recv_json().await;
    }
    // Saved within the interval, while the client stays.
    eventually("the snapshot to be saved", || async {
        let stored = backend.load("counter#snapshot", "tally").ok()?;
        (!stored.entries.is_empty()).then_some(())
    })
    .await;
    client.send_text("increment").await;
    assert_eq!(client.recv_json().await["count"], 4);
    drop(client);
    // A graceful stop saves the last change.
    server.stop().await;
    let server = TestServer::start_with_storage(counter(), test_limits(), backend.clone()).await;
    let mut client = server.connect("/ws/tally").await;
    assert_eq!(client.recv_json().await["count"], 4);
    server.stop().await;
}

/// Only a plugin whose code uses storage imports it, so only its rooms pay
/// for loads and for output held until commits: the SDK must not reference
/// the storage imports from code every plugin links (Rust), and the build
/// must not give every service the world that imports them (TypeScript).
#[test]
fn only_plugins_that_use_storage_import_it() {
    let engine = roomhost_host::wasm::WasmEngine::new(&test_limits()).expect("engine");
    let uses = |name: &str| {
        roomhost_host::wasm::Plugin::load(&engine, &plugin(name), None)
            .expect("loads")
            .description()
            .uses_storage
    };
    assert!(uses("durable"));
    assert!(uses("collab"));
    assert!(!uses("counter"));
    assert!(!uses("chat"));
    // A TypeScript component imports its whole world, so the JavaScript
    // SDK's build picks the world without `storage` unless the service's
    // code mentions it.
    assert!(uses("durable-ts"));
    for name in ["counter-ts", "chat-ts", "lobby-ts"] {
        assert!(!uses(name), "{name} imports storage");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_reload_keeps_what_the_room_stored() {
    let server =
        TestServer::start_with_storage(durable(), test_limits(), Arc::new(MemoryBackend::new()))
            .await;
    let mut client = server.connect("/ws/kept").await;
    assert_eq!(ask(&mut client, "put a 1").await, "ok a");
    // The fixture has no snapshot: the new version starts fresh and the
    // client's connect is replayed, over the same storage.
    let report = server
        .handle()
        .reload("durable", &roomhost_e2e::plugin_rebuilt("durable", "v2"))
        .await
        .expect("reload");
    assert_eq!(report.restarted, 1, "{report:?}");
    assert_eq!(ask(&mut client, "get a").await, "value a 1");
    assert_eq!(
        ask(&mut client, "count").await,
        "count 1",
        "init read it back"
    );
    let (_, room) = server.get_json("/rooms/durable/kept").await;
    assert!(room["storage_bytes"].as_u64().unwrap() > 0, "{room}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_request_wakes_a_room_that_stored_data() {
    let server =
        TestServer::start_with_storage(durable(), test_limits(), Arc::new(MemoryBackend::new()))
            .await;
    // The service's requests do not create rooms...
    let response = http_request(server.addr(), "GET", "/rooms/durable/board/k/a", b"")
        .await
        .unwrap();
    assert_eq!(response.status, 404);
    let mut client = server.connect("/ws/board").await;
    assert_eq!(ask(&mut client, "put a 1").await, "ok a");
    client.close().await;
    eventually("the room to end", || async {
        let (status, _) = server.get_json("/rooms/durable/board").await;
        (status == 404).then_some(())
    })
    .await;
    // ...but a room with stored data wakes for one.
    let response = http_request(server.addr(), "GET", "/rooms/durable/board/k/a", b"")
        .await
        .unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"1"[..])
    );
    server.stop().await;
}
