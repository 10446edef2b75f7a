//! The shared wasmtime engine: pooling allocator sized from [`Limits`], epoch
//! interruption for per-call deadlines, and the thread that advances epochs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::Limits;

/// How often the epoch advances; call deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

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
    deadline_ticks: u64,
    _ticker: Arc<EpochTicker>,
}

impl WasmEngine {
    /// Builds the engine for `limits`.
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
            .max_memory_size(limits.room_memory_bytes);

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

        let tick_ms = EPOCH_TICK.as_millis().max(1);
        let deadline_ticks =
            u64::try_from(limits.call_deadline.as_millis().div_ceil(tick_ms)).unwrap_or(u64::MAX);
        Ok(WasmEngine {
            _ticker: Arc::new(EpochTicker::start(engine.clone())),
            engine,
            deadline_ticks: deadline_ticks.max(1),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Epoch ticks a single callback may run.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        self.deadline_ticks
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a dedicated thread, so
/// a runaway guest is interrupted even while every tokio worker is busy.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::Builder::new()
            .name("roomhost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map(drop)
            .unwrap_or_else(|error| tracing::error!(%error, "cannot start the epoch thread; call deadlines are off"));
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
