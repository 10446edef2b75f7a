//! Nothing acknowledged is lost: `roomhost serve` killed with SIGKILL under
//! write load, restarted over the same data directory, holds every write a
//! client saw acknowledged, and its store opens. Two short trials here; the
//! long run with random kill times is `cargo bench -p roomhost-cli --bench
//! crash` (see BENCHMARKS.md).

mod common;

use std::time::Duration;

use roomhost_e2e::plugin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let durable = plugin("durable");
    for (trial, kill_after) in [300, 700].into_iter().enumerate() {
        let crash = common::crash_trial(
            &durable,
            &dir.path().join("data"),
            dir.path(),
            4,
            Duration::from_millis(kill_after),
            trial,
        )
        .await;
        assert!(crash.corrupt.is_none(), "{crash:?}");
        assert!(
            crash.acknowledged > 0,
            "no write was acknowledged: {crash:?}"
        );
        assert!(
            crash.lost.is_empty(),
            "lost after SIGKILL: {:?}",
            crash.lost
        );
    }
}
