//! The crash benchmark: N trials of SIGKILL at a random moment under write
//! load, each followed by a restart over the same data directory, counting
//! acknowledged writes lost (goal 0) and stores that no longer open (goal 0).
//!
//! `cargo bench -p roomhost-cli --bench crash [-- TRIALS]` (default 20);
//! each trial runs 8 writers and kills the server 100 to 1,500 ms in.
//! Results are recorded in BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use rand::Rng;
use roomhost_e2e::plugin;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let trials: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir_in(std::env::current_dir().expect("a working directory"))
        .expect("a temporary directory");
    let durable = plugin("durable");
    let (mut acknowledged, mut lost, mut corrupt) = (0, 0, 0);
    for trial in 0..trials {
        let kill_after = Duration::from_millis(rand::rng().random_range(100..1500));
        let crash = common::crash_trial(
            &durable,
            &dir.path().join("data"),
            dir.path(),
            8,
            kill_after,
            trial,
        )
        .await;
        println!(
            "trial {trial:>3}: killed after {kill_after:?}, {} acknowledged, {} lost{}",
            crash.acknowledged,
            crash.lost.len(),
            crash
                .corrupt
                .as_deref()
                .map(|why| format!(", CORRUPT: {why}"))
                .unwrap_or_default()
        );
        acknowledged += crash.acknowledged;
        lost += crash.lost.len();
        corrupt += usize::from(crash.corrupt.is_some());
    }
    println!(
        "{trials} trials: {acknowledged} writes acknowledged, {lost} lost, {corrupt} corrupt stores"
    );
}
