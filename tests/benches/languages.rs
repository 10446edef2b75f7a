//! The same service in Rust and in TypeScript: `plugins/counter` against
//! `plugins/counter-ts` (QuickJS, built by guest-sdk-js), measured in one
//! process, taking turns, so the ratios come from one run.
//!
//! `cargo bench -p roomhost-e2e --bench languages [-- ROOMS [RUNS] [NAME=WASM...]]`
//! (defaults 1,000 rooms, 3 runs). Each `NAME=WASM` adds a component to
//! measure after the two in the same runs (ratios stay against `counter`):
//! `bench/engines.mjs` builds the engine comparison's components. Each run and each plugin: load (compile)
//! the component, instantiate ROOMS rooms (each with its own store and
//! instance, `init` called) and keep them all live, then time `message`
//! calls on one room with one member (the call parses the command, updates
//! the count, broadcasts `{"count": n}` and publishes `set-info`). Reports
//! per plugin: artefact size, compile time, instantiate + `init` per room
//! (median), memory per idle room and the `message` call (median); then the
//! medians over the runs and the JS/Rust ratios of each run. Results are
//! recorded in BENCHMARKS.md.
//!
//! Memory per idle room is given twice, as growth over ROOMS rooms: RSS,
//! and PSS (`/proc/self/smaps_rollup`). They differ for components with a
//! large initial memory image (the QuickJS engine and its Wizer snapshot):
//! each room maps the image copy-on-write, and the pages a room only reads
//! stay shared page-cache pages, counted in full in every room's RSS but
//! once in PSS. PSS is what the rooms cost the machine.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use roomhost_e2e::memory::{proportional_bytes, resident_bytes};
use roomhost_host::client::ClientSender;
use roomhost_host::wasm::{RoomInstance, WasmEngine, guest};
use roomhost_host::{Limits, Plugin};

/// The plugins compared: the Rust counter, then the TypeScript one.
const PLUGINS: [&str; 2] = ["counter", "counter-ts"];

/// Reads one figure (in the unit its row names).
type Reading = fn(&Figures) -> f64;

/// A component under measurement: its name and file.
struct Subject {
    name: String,
    path: PathBuf,
}

/// `message` calls timed per plugin and run.
const CALLS: usize = 5_000;

/// One plugin's figures in one run.
#[derive(Clone, Copy)]
struct Figures {
    compile: Duration,
    instantiate: Duration,
    per_room_bytes: f64,
    per_room_pss: f64,
    message: Duration,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut numbers = args.iter().filter_map(|arg| arg.parse().ok());
    let rooms: usize = numbers.next().unwrap_or(1_000);
    let runs: usize = numbers.next().unwrap_or(3);
    let mut subjects: Vec<Subject> = PLUGINS
        .iter()
        .map(|name| Subject {
            name: (*name).to_owned(),
            path: roomhost_e2e::plugin(name),
        })
        .collect();
    subjects.extend(args.iter().filter_map(|arg| {
        let (name, path) = arg.split_once('=')?;
        Some(Subject {
            name: name.to_owned(),
            path: PathBuf::from(path),
        })
    }));
    for subject in &subjects {
        let bytes = std::fs::metadata(&subject.path)
            .map(|meta| meta.len())
            .unwrap_or(0);
        println!(
            "{}: artefact {:.2} MB ({})",
            subject.name,
            bytes as f64 / 1e6,
            subject.path.display()
        );
    }
    let mut all: Vec<Vec<Figures>> = Vec::new();
    for run in 1..=runs {
        let mut figures = Vec::new();
        for subject in &subjects {
            let measured = measure(&subject.path, rooms).await;
            println!(
                "run {run} {:>12}: compile {:>9.1?}  instantiate+init {:>9.1?}  idle room RSS {:>7.1} KiB, PSS {:>7.1} KiB  message {:>7.1?}",
                subject.name,
                measured.compile,
                measured.instantiate,
                measured.per_room_bytes / 1024.0,
                measured.per_room_pss / 1024.0,
                measured.message
            );
            figures.push(measured);
        }
        all.push(figures);
    }
    println!(
        "\nmedians over {runs} runs, {rooms} rooms each; after each, its ratio to {} in each run:",
        subjects[0].name
    );
    let rows: [(&str, Reading); 5] = [
        ("compile (ms)", |f| f.compile.as_secs_f64() * 1e3),
        ("instantiate + init (µs)", |f| {
            f.instantiate.as_secs_f64() * 1e6
        }),
        ("idle room, RSS (KiB)", |f| f.per_room_bytes / 1024.0),
        ("idle room, PSS (KiB)", |f| f.per_room_pss / 1024.0),
        ("message call (µs)", |f| f.message.as_secs_f64() * 1e6),
    ];
    for (what, get) in rows {
        println!("  {what}");
        for (index, subject) in subjects.iter().enumerate() {
            let value = median(all.iter().map(|run| get(&run[index])).collect());
            let ratios: Vec<String> = all
                .iter()
                .map(|run| format!("{:.1}", get(&run[index]) / get(&run[0])))
                .collect();
            println!(
                "    {:>12} {value:>10.1}   ×{}",
                subject.name,
                ratios.join(", ×")
            );
        }
    }
}

/// Loads the component at `path` into a fresh engine and measures it with
/// `rooms` live.
async fn measure(path: &std::path::Path, rooms: usize) -> Figures {
    let limits = Limits {
        max_rooms: rooms + 1,
        ..Limits::default()
    };
    let engine = WasmEngine::new(&limits).expect("engine");
    let started = Instant::now();
    let plugin = Plugin::load(&engine, path, None).expect("the plugin loads");
    let compile = started.elapsed();
    let init = guest::InitInfo {
        room_id: "bench".into(),
        lobby: false,
        config: "null".into(),
        restored: None,
    };
    let rss_before = resident_bytes();
    let pss_before = proportional_bytes();
    let mut live = Vec::with_capacity(rooms);
    let mut instantiate = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        let started = Instant::now();
        let mut room = RoomInstance::instantiate(&engine, &plugin, &limits, None)
            .await
            .expect("instantiate");
        room.init(&init).await.expect("init");
        instantiate.push(started.elapsed());
        live.push(room);
    }
    let per_room_bytes = resident_bytes().saturating_sub(rss_before) as f64 / rooms as f64;
    let per_room_pss = proportional_bytes().saturating_sub(pss_before) as f64 / rooms as f64;

    let room = &mut live[0];
    let (sender, mut queue) = ClientSender::detached(1, 1 << 20);
    room.state().insert_member(sender);
    let increment = guest::Frame::Text("increment".into());
    let mut calls = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        room.message(1, &increment).await.expect("message");
        calls.push(started.elapsed());
        while queue.try_recv().is_some() {}
    }
    instantiate.sort();
    calls.sort();
    Figures {
        compile,
        instantiate: instantiate[instantiate.len() / 2],
        per_room_bytes,
        per_room_pss,
        message: calls[calls.len() / 2],
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
