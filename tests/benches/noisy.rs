//! Noisy neighbours: the echo latency of a quiet room while 0, 1, 2 and 4
//! other rooms each run a legal 80 ms callback ten times a second.
//!
//! `cargo bench -p roomhost-e2e --bench noisy [-- SECONDS]` (default 8 s per
//! step). The server runs in this process on a 2-worker runtime, as
//! `roomhost serve` does on a 2-core machine (`WORKERS=N` for another
//! count, as `roomhost serve --workers N`); the clients run on a thread of
//! their own. The quiet client sends `echo:N` every 20 ms and waits for the
//! answer; each busy client sends `spin:80` every 100 ms to its own room.
//! Prints the quiet room's round trips (p50, p99, max) per step. Results are
//! recorded in BENCHMARKS.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use roomhost_e2e::{TestServer, plugin, test_limits};
use roomhost_host::ServiceSpec;
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(8);
    let workers = match std::env::var("WORKERS") {
        Err(_) => 2,
        Ok(workers) => match workers.parse::<usize>() {
            Ok(workers) if workers > 0 => workers,
            _ => {
                eprintln!("WORKERS must be a number of threads (1 or more), not {workers:?}");
                std::process::exit(2);
            }
        },
    };
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = server_runtime.block_on(TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        test_limits(),
    ));
    let addr = server.addr();
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    println!(
        "quiet-room echo round trip beside busy rooms (80 ms calls at 10/s each), {seconds} s per step, {workers} server workers"
    );
    for (step, busy) in [0, 1, 2, 4].into_iter().enumerate() {
        let mut times = client_runtime.block_on(measure(addr, step, busy, seconds));
        times.sort();
        let at = |pct: usize| times[(times.len() * pct / 100).min(times.len() - 1)];
        println!(
            "busy rooms {busy}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} echoes)",
            ms(at(50)),
            ms(at(99)),
            ms(times[times.len() - 1]),
            times.len()
        );
    }
    drop(server);
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}

async fn measure(addr: SocketAddr, step: usize, busy: usize, seconds: u64) -> Vec<Duration> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut noisy = Vec::new();
    for room in 0..busy {
        let url = format!("ws://{addr}/ws/busy-{step}-{room}");
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("busy client connects");
        noisy.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while Instant::now() < until {
                tokio::select! {
                    _ = tick.tick() => {
                        if sink.send(Message::text("spin:80")).await.is_err() {
                            break;
                        }
                    }
                    frame = stream.next() => if frame.is_none() { break },
                }
            }
        }));
    }
    let url = format!("ws://{addr}/ws/quiet-{step}");
    let (mut quiet, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("quiet client connects");
    let mut times = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut n = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        n += 1;
        let expected = n.to_string();
        let sent = Instant::now();
        quiet
            .send(Message::text(format!("echo:{n}")))
            .await
            .expect("send");
        loop {
            match quiet.next().await {
                Some(Ok(Message::Text(text))) if text.as_str() == expected => break,
                Some(Ok(_)) => continue,
                other => panic!("quiet room ended: {other:?}"),
            }
        }
        times.push(sent.elapsed());
    }
    for task in noisy {
        let _ = task.await;
    }
    times
}
