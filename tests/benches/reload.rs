//! Hot-reload time for many live rooms, on the real `counter` plugin
//! (serde snapshot) with one real WebSocket client per room.
//!
//! `cargo bench -p roomhost-e2e --bench reload [-- ROOMS]` (default 1,000)
//! opens ROOMS rooms, reloads the service five times and reports the median
//! and worst wall time from the plugin swap to the last room's answer,
//! checking every room was restored and every client kept its socket.
//! Results are recorded in BENCHMARKS.md.

use std::time::Duration;

use roomhost_e2e::{Client, TestServer, plugin, plugin_rebuilt, test_limits};
use roomhost_host::{Limits, ServiceSpec};

const RELOADS: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rooms: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1_000);
    let counter = plugin("counter");
    let limits = Limits {
        max_rooms: rooms + 10,
        max_connections: rooms + 10,
        // Every client comes from 127.0.0.1.
        room_creations_per_minute: rooms * 60,
        ..test_limits()
    };
    let server =
        TestServer::start(vec![ServiceSpec::new("counter", counter.clone())], limits).await;
    let mut clients = Vec::with_capacity(rooms);
    for room in 0..rooms {
        let mut client = Client::connect(server.addr(), &format!("/ws/room-{room}"))
            .await
            .expect("connects");
        assert_eq!(client.recv_json().await["count"], 0);
        client.send_text("increment").await;
        clients.push(client);
    }
    for client in &mut clients {
        assert_eq!(client.recv_json().await["count"], 1);
    }

    let mut elapsed = Vec::with_capacity(RELOADS);
    for reload in 0..RELOADS {
        // A new version each time: a room already on a version is skipped.
        let rebuilt = plugin_rebuilt("counter", &format!("v{}", reload + 2));
        let report = server
            .handle()
            .reload("counter", &rebuilt)
            .await
            .expect("reload");
        assert_eq!(
            report.restored,
            rooms + 1,
            "every room and the lobby: {report:?}"
        );
        elapsed.push(report.elapsed);
    }
    // Every client still has its socket and its room's state.
    for client in &mut clients {
        client.send_text("increment").await;
        assert_eq!(client.recv_json().await["count"], 2);
    }
    elapsed.sort();
    let median = elapsed[RELOADS / 2];
    let per_room = median / u32::try_from(rooms + 1).unwrap_or(u32::MAX);
    println!(
        "reload of {rooms} live rooms (1 client each) + lobby: median {:.1} ms, worst {:.1} ms, {:.1} µs per room ({RELOADS} reloads)",
        ms(median),
        ms(elapsed[RELOADS - 1]),
        per_room.as_secs_f64() * 1e6,
    );
    server.stop().await;
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
