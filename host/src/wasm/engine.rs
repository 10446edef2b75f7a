//! The shared wasmtime engine: pooling allocator sized from [`Limits`], async
//! calls with epoch interruption for time slices and per-call deadlines (see
//! the `slice` module), and the thread that advances epochs.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::slice::Lanes;
use super::ticker::{EpochTicker, Ticks};
use crate::limits::Limits;

/// Core instances, memories and tables one room's component may hold. A Rust
/// `wasm32-wasip2` component needs a handful of each; the slack lets plugins
/// from other toolchains load too.
const CORE_INSTANCES_PER_ROOM: u32 = 16;
const MEMORIES_PER_ROOM: u32 = 2;
const TABLES_PER_ROOM: u32 = 4;

/// A wasmtime [`Engine`] configured for rooms, plus its epoch ticker. The
/// ticker stops when the last clone is dropped.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    call_deadline: Duration,
    plugin_log_lines: u32,
    lanes: Lanes,
    ticker: Arc<EpochTicker>,
}

impl WasmEngine {
    /// Builds the engine for `limits`. Fails if the epoch thread cannot
    /// start: without it no call would ever yield or meet its deadline.
    ///
    /// Long calls share one lane fewer than the current tokio runtime has
    /// workers (see the `slice` module), so build the engine inside the
    /// runtime that will run the rooms.
    pub fn new(limits: &Limits) -> wasmtime::Result<WasmEngine> {
        // Slack over `max_rooms`: a room leaves the table before its store
        // is dropped and frees its slot, so a new room may briefly overlap.
        let max_rooms = u32::try_from(limits.max_rooms.saturating_add(limits.max_rooms / 8 + 16))
            .unwrap_or(u32::MAX);
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(max_rooms)
            .total_core_instances(max_rooms.saturating_mul(CORE_INSTANCES_PER_ROOM))
            .total_memories(max_rooms.saturating_mul(MEMORIES_PER_ROOM))
            .total_tables(max_rooms.saturating_mul(TABLES_PER_ROOM))
            .max_core_instances_per_component(CORE_INSTANCES_PER_ROOM)
            .max_memories_per_component(MEMORIES_PER_ROOM)
            .max_tables_per_component(TABLES_PER_ROOM)
            .max_memory_size(limits.room_memory_bytes)
            // A call parked between two slices keeps its fiber stack.
            .total_stacks(max_rooms)
            // Reuse a freed slot before touching a never-used one. Left at
            // wasmtime's default (100), every fiber stack was taken cold
            // until 100 sat unused: each call into a room faulted in fresh
            // stack pages and a page table, and each new room took a fresh
            // memory slot (its own page tables, an `mprotect`) while warm
            // slots of the same plugin sat idle. The pool's free-slot
            // order still prefers a slot that last held the same plugin.
            .max_unused_warm_slots(0);
        keep_freed_slots_resident(&mut pooling);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Reserve only what a room may use: thousands of rooms must fit the
            // address space. Bounds checks are explicit as a result.
            .memory_reservation(limits.room_memory_bytes as u64)
            .memory_guard_size(64 * 1024)
            .memory_reservation_for_growth(0)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config)?;
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|error| wasmtime::format_err!("cannot start the epoch thread: {error}"))?;
        Ok(WasmEngine {
            ticker: Arc::new(ticker),
            engine,
            call_deadline: limits.call_deadline,
            plugin_log_lines: limits.plugin_log_lines,
            lanes: Lanes::for_this_runtime(),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What guest calls mark their polls with, for the epoch thread.
    pub(crate) fn ticks(&self) -> &Ticks {
        self.ticker.ticks()
    }

    /// CPU time a single callback may use.
    pub(crate) fn call_deadline(&self) -> Duration {
        self.call_deadline
    }

    /// Log lines per second a room may write.
    pub(crate) fn plugin_log_lines(&self) -> u32 {
        self.plugin_log_lines
    }

    /// The lanes long calls take turns on.
    pub(crate) fn lanes(&self) -> &Lanes {
        &self.lanes
    }
}

/// Bytes of a freed room's linear memory kept resident for the next room
/// in its slot, at most: an idle room dirties ~20 KiB of it (stack top,
/// written data, the allocator's first pages; `bench/baseline/benches/calls.rs`).
const MEMORY_KEEP_RESIDENT: usize = 64 * 1024;
/// Bytes of a freed room's tables kept resident (an idle room touches the
/// first page of two tables).
const TABLE_KEEP_RESIDENT: usize = 16 * 1024;

/// A freed room's slot is reset by copying its dirty pages back from the
/// plugin's memory image (up to the limits above) instead of `madvise`
/// releasing them: the next room in the slot then starts without page
/// faults, and disposing of a room costs a few copies instead of a system
/// call that rewrites the page tables (room churn: instantiate + `init`
/// 27 µs → 10 µs, drop 11 µs → 3 µs; BENCHMARKS.md, issue 19, "Rooms").
///
/// Only with Linux's `PAGEMAP_SCAN` (6.7+), which finds the pages a room
/// actually dirtied. Without it wasmtime would zero the *first* bytes of
/// each memory, which in a Rust guest are the bottom of its stack region,
/// never touched: that would make pages resident that no room used. The
/// cost either way is bounded: at most these limits per free slot, and only
/// pages a room had resident anyway.
fn keep_freed_slots_resident(pooling: &mut PoolingAllocationConfig) {
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pooling
            .pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
    }
}
