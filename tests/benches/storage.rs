//! Durable rooms under write load, on the real server and the `durable`
//! fixture, with the embedded store (redb, fsync per commit) in a temporary
//! directory on this machine's disk.
//!
//! `cargo bench -p roomhost-e2e --bench storage [-- SECS]` (default 5 s per
//! run, 3 runs per scenario, medians reported) measures acknowledged writes
//! per second and the p50/p99 time from a client's `put` to its `ok`, which
//! the output gate sends only once the write is durable:
//!
//! - 1 room × 1 client, 1 room × 32 clients, 1,000 rooms × 1 client, each
//!   client writing one key at a time;
//! - with group commit (the host's storage thread) and with one fsync per
//!   room commit (a backend wrapper that writes each commit in its own
//!   transaction);
//! - the gate's cost when there is nothing to commit (`get`), and a write
//!   with the in-memory backend (the gate without a disk);
//! - restart: binding a server over 10,000 stored rooms, and the first read
//!   of one of them.
//!
//! Besides the client-side figures it reports the host's commit latency
//! (from the request to durable, `/metrics`), p99 as its bucket's bound.
//!
//! Clients run in this process, sharing the machine's cores with the
//! server. Results are recorded in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roomhost_e2e::{Client, TestServer, plugin, test_limits};
use roomhost_host::storage::{
    Backend, Changes, EmbeddedBackend, MemoryBackend, RoomCommit, StorageError, StoredRoom,
    StoredRoomSummary,
};
use roomhost_host::{Limits, ServiceSpec};

const RUNS: usize = 3;

/// One fsync per room commit: the host's groups, written one by one.
#[derive(Debug)]
struct OneByOne(Arc<dyn Backend>);

impl Backend for OneByOne {
    fn load(&self, service: &str, room: &str) -> Result<StoredRoom, StorageError> {
        self.0.load(service, room)
    }
    fn commit(&self, commits: &[RoomCommit]) -> Result<(), StorageError> {
        commits
            .iter()
            .try_for_each(|commit| self.0.commit(std::slice::from_ref(commit)))
    }
    fn rooms(&self) -> Result<Vec<StoredRoomSummary>, StorageError> {
        self.0.rooms()
    }
    fn delete_room(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        self.0.delete_room(service, room)
    }
    fn backup(&self, to: &std::path::Path) -> Result<u64, StorageError> {
        self.0.backup(to)
    }
    fn is_durable(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("one by one {}", self.0.describe())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Store {
    Grouped,
    OneByOne,
    Memory,
}

struct Run {
    writes_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The host's commit latency (request to durable), p99 as the upper
    /// bound of its histogram bucket.
    commit_p99_ms: f64,
}

/// The upper bound, in ms, of the bucket holding quantile `q` of the
/// host's commit latency histogram (`/metrics`).
fn commit_quantile_ms(metrics: &str, q: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|line| {
            let rest =
                line.strip_prefix("roomhost_storage_commit_duration_seconds_bucket{le=\"")?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |(_, count)| *count);
    buckets
        .iter()
        .find(|(_, count)| *count >= total * q)
        .map_or(f64::NAN, |(le, _)| le * 1e3)
}

fn limits(rooms: usize) -> Limits {
    Limits {
        max_rooms: rooms + 10,
        max_connections: rooms * 32 + 10,
        room_creations_per_minute: rooms * 600,
        ..test_limits()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// One scenario run. With `interval`, each client writes on a fixed
/// schedule (an open loop: latency is measured from the scheduled time, so
/// waiting to send counts); without, as fast as its acknowledgements return.
async fn run(
    store: Store,
    rooms: usize,
    clients_per_room: usize,
    command: &str,
    secs: u64,
    interval: Option<Duration>,
) -> Run {
    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let backend: Arc<dyn Backend> = match store {
        Store::Grouped => Arc::new(EmbeddedBackend::open(dir.path()).unwrap()),
        Store::OneByOne => Arc::new(OneByOne(Arc::new(
            EmbeddedBackend::open(dir.path()).unwrap(),
        ))),
        Store::Memory => Arc::new(MemoryBackend::new()),
    };
    let services = vec![ServiceSpec::new("durable", plugin("durable"))];
    let server = TestServer::start_with_storage(services, limits(rooms), backend).await;
    let mut clients = Vec::new();
    for room in 0..rooms {
        for client in 0..clients_per_room {
            let mut socket = Client::connect(server.addr(), &format!("/ws/r{room}"))
                .await
                .expect("connects");
            // Warm: the room exists and has stored once.
            socket.send_text(&format!("put warm{client} x")).await;
            socket.recv_text().await;
            clients.push(socket);
        }
    }
    let until = Instant::now() + Duration::from_secs(secs);
    let command = command.to_owned();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, mut client)| {
            let command = command.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                // Clients start spread over one interval.
                let offset = interval.map_or(Duration::ZERO, |every| {
                    every.mul_f64((index % 1000) as f64 / 1000.0)
                });
                let start = Instant::now() + offset;
                while Instant::now() < until {
                    let sent = match interval {
                        Some(every) => {
                            let due = start + every * u32::try_from(i).unwrap_or(u32::MAX);
                            tokio::time::sleep_until(due.into()).await;
                            due
                        }
                        None => Instant::now(),
                    };
                    client
                        .send_text(&format!("{command} c{index}k{} value-{i}", i % 64))
                        .await;
                    client.recv_text().await;
                    latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let metrics = roomhost_e2e::http_request(server.addr(), "GET", "/metrics", b"")
        .await
        .expect("metrics");
    let commit_p99_ms = commit_quantile_ms(&String::from_utf8_lossy(&metrics.body), 0.99);
    server.stop().await;
    latencies.sort_by(f64::total_cmp);
    Run {
        writes_per_sec: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        commit_p99_ms,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn scenario(
    name: &str,
    store: Store,
    rooms: usize,
    per_room: usize,
    command: &str,
    secs: u64,
    interval: Option<Duration>,
) {
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(run(store, rooms, per_room, command, secs, interval).await);
    }
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | ≤ {:.2} |",
        median(runs.iter().map(|r| r.writes_per_sec).collect()),
        median(runs.iter().map(|r| r.p50_ms).collect()),
        median(runs.iter().map(|r| r.p99_ms).collect()),
        median(runs.iter().map(|r| r.commit_p99_ms).collect()),
    );
}

async fn restart(stored_rooms: usize) {
    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    {
        let backend = EmbeddedBackend::open(dir.path()).unwrap();
        let commits: Vec<RoomCommit> = (0..stored_rooms)
            .map(|room| {
                let mut changes = Changes::default();
                for key in 0..10u8 {
                    changes
                        .entries
                        .insert(vec![b'k', key], Some(vec![b'v'; 100]));
                }
                RoomCommit {
                    service: "durable".into(),
                    room: format!("r{room}").into(),
                    changes,
                }
            })
            .collect();
        backend.commit(&commits).unwrap();
    }
    let mut binds = Vec::new();
    let mut firsts = Vec::new();
    for _ in 0..RUNS {
        // The last server's storage thread lets go of the file just after
        // it stops.
        let backend = loop {
            match EmbeddedBackend::open(dir.path()) {
                Ok(backend) => break Arc::new(backend),
                Err(StorageError::InUse(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(error) => panic!("{error}"),
            }
        };
        let started = Instant::now();
        let services = vec![ServiceSpec::new("durable", plugin("durable"))];
        let server = TestServer::start_with_storage(services, limits(10), backend).await;
        binds.push(started.elapsed().as_secs_f64() * 1e3);
        let asked = Instant::now();
        let mut client = Client::connect(server.addr(), "/ws/r4242").await.unwrap();
        client.send_text("get k").await;
        let answer = client.recv_text().await;
        assert!(answer.starts_with("none") || answer.starts_with("value"));
        firsts.push(asked.elapsed().as_secs_f64() * 1e3);
        drop(client);
        server.stop().await;
    }
    println!(
        "restart over {stored_rooms} stored rooms: bind {:.1} ms, first read of a stored room {:.2} ms (medians of {RUNS})",
        median(binds),
        median(firsts)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(5);
    plugin("durable");
    println!("| scenario | acknowledged writes/s | ack p50 ms | ack p99 ms | commit p99 ms |");
    println!("|---|---|---|---|---|");
    for (store, label) in [
        (Store::Grouped, "group commit"),
        (Store::OneByOne, "one fsync per commit"),
    ] {
        scenario(
            &format!("1 room × 1 client, {label}"),
            store,
            1,
            1,
            "put",
            secs,
            None,
        )
        .await;
        scenario(
            &format!("1 room × 32 clients, {label}"),
            store,
            1,
            32,
            "put",
            secs,
            None,
        )
        .await;
        scenario(
            &format!("1,000 rooms × 1 client, {label}"),
            store,
            1000,
            1,
            "put",
            secs,
            None,
        )
        .await;
    }
    // The output gate's cost to one client: a write's answer waits for the
    // fsync (group commit), for a commit without a disk (in memory), or for
    // nothing (a read: the gate holds and releases it in the same event).
    for (name, store, command) in [
        ("1 room × 1 client, in-memory backend", Store::Memory, "put"),
        ("1 room × 1 client, reads only", Store::Grouped, "get"),
    ] {
        scenario(name, store, 1, 1, command, secs, None).await;
    }
    scenario(
        "1,000 rooms × 1 client, in-memory backend",
        Store::Memory,
        1000,
        1,
        "put",
        secs,
        None,
    )
    .await;
    scenario(
        "1,000 rooms × 1 client, reads only (gate, nothing to commit)",
        Store::Grouped,
        1000,
        1,
        "get",
        secs,
        None,
    )
    .await;
    // The goal's shape: 20,000 writes/s offered across 1,000 rooms (one
    // write per room every 50 ms), latency at that rate.
    let every = Some(Duration::from_millis(50));
    for (store, label) in [
        (Store::Grouped, "group commit"),
        (Store::Memory, "in-memory backend"),
    ] {
        let name = format!("1,000 rooms × 1 client at 20,000 writes/s offered, {label}");
        scenario(&name, store, 1000, 1, "put", secs, every).await;
    }
    restart(10_000).await;
}
