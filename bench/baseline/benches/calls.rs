//! The cost of the wasm boundary, room by room: the `fanout` service as a
//! wasm instance and as a native room over the same host state.
//!
//! `cargo bench -p roomhost-baseline --bench calls [-- ROOMS]` (default
//! 10,000 rooms, at least 2: the message calls use the first two) reports,
//! for wasm and native, with the ratio:
//! - creating a room (instantiate) and its first `init` call,
//! - resident memory per idle room (RSS growth / rooms; also split into
//!   private (anonymous) pages and pages shared with the plugin's memory
//!   image, which RSS counts once per room that maps them),
//! - room churn: a room created, initialised and dropped, again and again
//!   while the idle rooms stay live, so each new room reuses the slot the
//!   last one freed (the pooling allocator's keep-resident settings and
//!   its image reuse show here, not in fresh slots),
//! - a `message` call that broadcasts to 1 and to 100 members, measured
//!   on the same `RoomState` path (`broadcast` into client queues).
//!
//! Results are recorded in BENCHMARKS.md.

use std::time::{Duration, Instant};

use roomhost_host::client::ClientSender;
use roomhost_host::native::NativeRoom;
use roomhost_host::wasm::{RoomInstance, RoomState, WasmEngine, guest};
use roomhost_host::{Limits, Plugin};

fn main() {
    // Calls are async (time-sliced); the whole run is one task on a
    // current-thread runtime, so the figures are the calls themselves.
    // Timers on: a call that waits on the host is bounded by a timer.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let rooms = room_count(std::env::args().skip(1));
    let limits = Limits {
        max_rooms: rooms + 1,
        ..Limits::default()
    };
    let engine = WasmEngine::new(&limits).expect("engine");
    let plugin = Plugin::load(&engine, &roomhost_e2e::plugin("fanout"), None).expect("fanout");
    let factory = roomhost_baseline::native::<fanout::Fanout>();
    let init = guest::InitInfo {
        room_id: "bench".into(),
        lobby: false,
        config: "null".into(),
        restored: None,
    };
    println!("fanout service, {rooms} rooms each; wasm vs native (no load generator running)");

    // Native first: its rooms are small, so the wasm RSS figure is not
    // flattered by memory the native run freed.
    let rss = resident_bytes();
    let mut create = Vec::with_capacity(rooms);
    let mut native_rooms = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        let started = Instant::now();
        let mut room = NativeRoom::new(&factory, &limits, None);
        room.init(&init).await.expect("init");
        create.push(started.elapsed());
        native_rooms.push(room);
    }
    let native_mem = resident_bytes().saturating_sub(rss) / rooms as u64;
    let native_create = summary(&mut create);

    let rss = resident_bytes();
    let split = resident_split();
    let mut instantiate = Vec::with_capacity(rooms);
    let mut init_calls = Vec::with_capacity(rooms);
    let mut wasm_rooms = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        let started = Instant::now();
        let mut room = RoomInstance::instantiate(&engine, &plugin, &limits, None)
            .await
            .expect("instantiate");
        let instantiated = Instant::now();
        room.init(&init).await.expect("init");
        instantiate.push(instantiated - started);
        init_calls.push(instantiated.elapsed());
        wasm_rooms.push(room);
    }
    let wasm_mem = resident_bytes().saturating_sub(rss) / rooms as u64;
    let (anon, shared) = resident_split();
    let wasm_anon = anon.saturating_sub(split.0) / rooms as u64;
    let wasm_shared = shared.saturating_sub(split.1) / rooms as u64;
    let wasm_instantiate = summary(&mut instantiate);
    let wasm_init = summary(&mut init_calls);
    println!(
        "create room: wasm instantiate {} + first init {}; native new + init {}",
        wasm_instantiate.text(),
        wasm_init.text(),
        native_create.text()
    );
    println!(
        "  ratio wasm (instantiate + init) / native: {:.0}x (medians)",
        (wasm_instantiate.median + wasm_init.median).as_secs_f64()
            / native_create.median.as_secs_f64().max(1e-9)
    );
    println!(
        "resident memory per idle room: wasm {:.1} KiB, native {:.1} KiB",
        wasm_mem as f64 / 1024.0,
        native_mem as f64 / 1024.0
    );
    println!(
        "  wasm: {:.1} KiB private (anonymous), {:.1} KiB mapped from the memory image",
        wasm_anon as f64 / 1024.0,
        wasm_shared as f64 / 1024.0
    );
    churn(&engine, &plugin, &limits, &init).await;

    let frame = guest::Frame::Text("x".repeat(64));
    for (index, members) in [1, 100].into_iter().enumerate() {
        let wasm = message_calls(
            &mut wasm_rooms[index],
            members,
            &frame,
            async |room: &mut RoomInstance, msg: &guest::Frame| {
                room.message(1, msg).await.expect("message")
            },
            |room| room.state(),
        )
        .await;
        let native = message_calls(
            &mut native_rooms[index],
            members,
            &frame,
            async |room: &mut NativeRoom, msg: &guest::Frame| {
                room.message(1, msg).await.expect("message")
            },
            |room| room.state(),
        )
        .await;
        println!(
            "message call, broadcast to {members}: wasm {}; native {}; ratio {:.2}x (medians)",
            wasm.text(),
            native.text(),
            wasm.median.as_secs_f64() / native.median.as_secs_f64().max(1e-9)
        );
    }
}

/// Rooms created, initialised and dropped one after another by [`churn`]
/// (the first [`CHURN_WARMUP`] are not timed).
const CHURN_ROOMS: usize = 5_000;
const CHURN_WARMUP: usize = 500;

/// Room churn: create, `init` and drop one room at a time while the idle
/// rooms stay live. Every new room takes the slot the previous one freed,
/// so this measures slot reuse: what the pooling allocator keeps resident,
/// and what dropping a room costs.
async fn churn(engine: &WasmEngine, plugin: &Plugin, limits: &Limits, init: &guest::InitInfo) {
    let mut create = Vec::with_capacity(CHURN_ROOMS);
    let mut dispose = Vec::with_capacity(CHURN_ROOMS);
    let rss = resident_bytes();
    for round in 0..CHURN_ROOMS + CHURN_WARMUP {
        let started = Instant::now();
        let mut room = RoomInstance::instantiate(engine, plugin, limits, None)
            .await
            .expect("instantiate");
        room.init(init).await.expect("init");
        let created = Instant::now();
        drop(room);
        if round >= CHURN_WARMUP {
            create.push(created - started);
            dispose.push(created.elapsed());
        }
    }
    let kept = resident_bytes().saturating_sub(rss);
    println!(
        "room churn (slot reused): instantiate + init {}; drop {}; RSS kept {:.1} KiB",
        summary(&mut create).text(),
        summary(&mut dispose).text(),
        kept as f64 / 1024.0
    );
}

/// The room count given on the command line (the first number; cargo bench
/// passes flags such as `--bench` too), 10,000 by default, and at least
/// [`MIN_ROOMS`]: the per-room figures divide by it and the message calls
/// use rooms 0 and 1.
fn room_count(mut args: impl Iterator<Item = String>) -> usize {
    let rooms = args.find_map(|arg| arg.parse().ok()).unwrap_or(10_000);
    if rooms < MIN_ROOMS {
        eprintln!("{rooms} rooms asked for: measuring {MIN_ROOMS}, the fewest this bench needs");
    }
    rooms.max(MIN_ROOMS)
}

const MIN_ROOMS: usize = 2;

/// Times 20,000 `message` calls on `room` with `members` members (queues
/// drained between calls); the first 2,000 calls are warm-up.
async fn message_calls<R>(
    room: &mut R,
    members: u64,
    frame: &guest::Frame,
    call: impl AsyncFn(&mut R, &guest::Frame),
    state: impl Fn(&mut R) -> &mut RoomState,
) -> Summary {
    let mut queues = Vec::new();
    for id in 1..=members {
        let (sender, queue) = ClientSender::detached(id, 1 << 16);
        state(room).insert_member(sender);
        queues.push(queue);
    }
    let mut times = Vec::with_capacity(20_000);
    for round in 0..22_000 {
        let started = Instant::now();
        call(room, frame).await;
        if round >= 2_000 {
            times.push(started.elapsed());
        }
        for queue in &mut queues {
            while queue.try_recv().is_some() {}
        }
    }
    summary(&mut times)
}

struct Summary {
    median: Duration,
    p99: Duration,
}

impl Summary {
    fn text(&self) -> String {
        format!("median {:?} (p99 {:?})", self.median, self.p99)
    }
}

fn summary(times: &mut [Duration]) -> Summary {
    times.sort();
    let at = |pct: usize| times[(times.len() * pct / 100).min(times.len() - 1)];
    Summary {
        median: at(50),
        p99: at(99),
    }
}

/// Resident bytes that are private to the process (anonymous) and that
/// are mapped from shared memory (the plugin's memory image), from
/// `/proc/self/status`.
fn resident_split() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("RssAnon:"), field("RssShmem:") + field("RssFile:"))
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
