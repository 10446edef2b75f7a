//! Room density and call cost, measured on the real `counter` plugin.
//!
//! `cargo bench -p roomhost-e2e --bench rooms [-- ROOMS]` instantiates ROOMS
//! rooms (default 10,000) in one process and reports:
//! - instantiate + `init` time per room (median, p90, p99),
//! - resident memory per idle room (RSS growth / rooms),
//! - a `message` call that updates state and broadcasts to one client.
//!
//! Results are recorded in BENCHMARKS.md.

use std::time::{Duration, Instant};

use roomhost_e2e::memory::resident_bytes;
use roomhost_host::client::ClientSender;
use roomhost_host::wasm::{RoomInstance, WasmEngine, guest};
use roomhost_host::{Limits, Plugin};

fn main() {
    // Timers on: a call that waits on the host is bounded by a timer.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let rooms: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(10_000);
    let limits = Limits {
        max_rooms: rooms + 1,
        ..Limits::default()
    };
    let engine = WasmEngine::new(&limits).expect("engine");
    let path = roomhost_e2e::plugin("counter");
    let plugin = Plugin::load(&engine, &path, None).expect("counter loads");
    let init = guest::InitInfo {
        room_id: "bench".into(),
        lobby: false,
        config: "null".into(),
        restored: None,
    };

    let rss_before = resident_bytes();
    let mut live = Vec::with_capacity(rooms);
    let mut instantiate = Vec::with_capacity(rooms);
    let mut init_calls = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        let started = Instant::now();
        let mut room = RoomInstance::instantiate(&engine, &plugin, &limits, None)
            .await
            .expect("instantiate");
        let instantiated = Instant::now();
        room.init(&init).await.expect("init");
        instantiate.push(instantiated - started);
        init_calls.push(instantiated.elapsed());
        live.push(room);
    }
    let rss_after = resident_bytes();
    let per_room = (rss_after.saturating_sub(rss_before)) / rooms as u64;

    // One member so every `message` broadcasts a frame.
    let room = &mut live[0];
    let (sender, mut queue) = ClientSender::detached(1, 1 << 20);
    room.state().insert_member(sender);
    let increment = guest::Frame::Text("increment".into());
    let mut wasm_calls = Vec::new();
    for _ in 0..20_000 {
        let started = Instant::now();
        room.message(1, &increment).await.expect("message");
        wasm_calls.push(started.elapsed());
        while queue.try_recv().is_some() {}
    }

    instantiate.sort();
    init_calls.sort();
    wasm_calls.sort();
    println!(
        "rooms held in one process: {rooms} (vm.max_map_count = {})",
        max_map_count()
    );
    println!(
        "instantiate per room: median {:?}, p90 {:?}, p99 {:?}",
        percentile(&instantiate, 50),
        percentile(&instantiate, 90),
        percentile(&instantiate, 99)
    );
    println!(
        "init call per room: median {:?}, p99 {:?}",
        percentile(&init_calls, 50),
        percentile(&init_calls, 99)
    );
    println!(
        "resident memory per idle room: {:.1} KiB",
        per_room as f64 / 1024.0
    );
    println!(
        "message call (update + broadcast to 1 client): median {:?}, p99 {:?}",
        percentile(&wasm_calls, 50),
        percentile(&wasm_calls, 99)
    );
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

fn max_map_count() -> String {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
