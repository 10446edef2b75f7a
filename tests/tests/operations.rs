//! Operations endpoints against a real server: `/healthz`, `/readyz`, and
//! `/metrics` scraped with a Prometheus text parser, whose figures move as
//! clients connect, send, and a room traps.

use prometheus_parse::{Sample, Scrape, Value};
use roomhost_e2e::{TestServer, http_request, plugin, test_limits};
use roomhost_host::ServiceSpec;

/// Scrapes `/metrics` and parses it as Prometheus would.
async fn scrape(server: &TestServer) -> Scrape {
    let response = http_request(server.addr(), "GET", "/metrics", b"")
        .await
        .expect("scrape");
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(
        response
            .head
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        response.head
    );
    let text = String::from_utf8(response.body).expect("UTF-8 metrics");
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("valid Prometheus text")
}

/// The value of the sample named `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matches = |sample: &&Sample| {
        sample.metric == metric
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
    };
    scrape
        .samples
        .iter()
        .find(matches)
        .map(|sample| match &sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |bucket| bucket.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer() {
    let server = TestServer::single("counter").await;
    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let response = http_request(server.addr(), "GET", path, b"")
            .await
            .expect(path);
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, body.as_bytes())
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_clients_frames_and_failures() {
    let server = TestServer::start(
        vec![
            ServiceSpec::new("counter", plugin("counter")),
            ServiceSpec::new("misbehave", plugin("misbehave")),
        ],
        test_limits(),
    )
    .await;
    let before = scrape(&server).await;
    assert_eq!(
        value(&before, "roomhost_rooms", &[("service", "counter")]),
        Some(0.0)
    );
    assert_eq!(value(&before, "roomhost_frames_in_total", &[]), Some(0.0));

    let mut alice = server.connect("/ws/counter/tally").await;
    let mut bob = server.connect("/ws/counter/tally").await;
    alice.recv_json().await;
    bob.recv_json().await;
    for _ in 0..3 {
        alice.send_text("increment").await;
        alice.recv_json().await;
    }
    // A room that traps is disposed, and counted by reason.
    let mut victim = server.connect("/ws/misbehave/doomed").await;
    victim.send_text("trap").await;
    assert_eq!(victim.closed().await.code, Some(1011));
    // A refused connection is counted by reason.
    let mut refused = server.connect("/ws/misbehave/picky?reject=no").await;
    assert_eq!(refused.closed().await.code, Some(1008));

    let after = scrape(&server).await;
    let at = |metric: &str, labels: &[(&str, &str)]| value(&after, metric, labels);
    assert_eq!(at("roomhost_rooms", &[("service", "counter")]), Some(1.0));
    assert_eq!(at("roomhost_clients", &[("service", "counter")]), Some(2.0));
    assert!(at("roomhost_frames_in_total", &[]).unwrap_or(0.0) >= 4.0);
    assert!(at("roomhost_frames_out_total", &[]).unwrap_or(0.0) >= 8.0);
    assert!(at("roomhost_connections_accepted_total", &[]).unwrap_or(0.0) >= 4.0);
    assert_eq!(
        at(
            "roomhost_connections_refused_total",
            &[("reason", "rejected")]
        ),
        Some(1.0)
    );
    assert_eq!(
        at(
            "roomhost_room_disposals_total",
            &[("service", "misbehave"), ("reason", "trap")]
        ),
        Some(1.0)
    );
    let messages = at(
        "roomhost_callback_duration_seconds",
        &[("service", "counter"), ("callback", "message")],
    );
    assert_eq!(messages, Some(3.0), "three message callbacks timed");
    assert!(at("roomhost_instantiate_duration_seconds", &[]).unwrap_or(0.0) >= 2.0);
    assert!(
        at("roomhost_http_responses_total", &[("status", "200")]).unwrap_or(0.0) >= 1.0,
        "the first scrape was counted"
    );
    server.stop().await;
}
