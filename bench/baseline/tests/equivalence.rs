//! The native baseline runs the same service as the wasm plugin: the same
//! client script against `fanout.wasm` / `counter.wasm` under the real
//! server and against their native builds gives the same frames, and the
//! same `/rooms` listing info.

use std::time::Duration;

use roomhost_e2e::{Client, TestServer, plugin, test_limits};
use roomhost_host::ServiceSpec;

/// What each client saw, in order, as printable frames.
type Transcript = Vec<(&'static str, String)>;

async fn next(client: &mut Client, name: &'static str, transcript: &mut Transcript) {
    let frame = client.recv().await;
    transcript.push((name, format!("{frame:?}")));
}

/// Two rooms of fan-out: text and binary frames reach every member of the
/// sender's room, sender included, and nobody else.
async fn fanout_script(server: &TestServer) -> Transcript {
    let mut transcript = Transcript::new();
    let mut a = server.connect("/ws/x").await;
    let mut b = server.connect("/ws/x").await;
    let mut c = server.connect("/ws/y").await;
    a.send_text("hello").await;
    next(&mut a, "a", &mut transcript).await;
    next(&mut b, "b", &mut transcript).await;
    b.send_binary(&[1, 2, 3]).await;
    next(&mut a, "a", &mut transcript).await;
    next(&mut b, "b", &mut transcript).await;
    c.send_text("solo").await;
    next(&mut c, "c", &mut transcript).await;
    for round in 0..20 {
        a.send_text(&format!("burst {round}")).await;
    }
    for _ in 0..20 {
        next(&mut a, "a", &mut transcript).await;
        next(&mut b, "b", &mut transcript).await;
    }
    c.expect_silence(Duration::from_millis(100)).await;
    transcript
}

/// The counter: greeting on connect, broadcasts, errors to the sender only,
/// and the count published as listing info.
async fn counter_script(server: &TestServer) -> Transcript {
    let mut transcript = Transcript::new();
    let mut a = server.connect("/ws/c1").await;
    next(&mut a, "a", &mut transcript).await;
    let mut b = server.connect("/ws/c1").await;
    next(&mut b, "b", &mut transcript).await;
    a.send_text("increment").await;
    next(&mut a, "a", &mut transcript).await;
    next(&mut b, "b", &mut transcript).await;
    b.send_text(r#"{"op": "decrement", "by": 5}"#).await;
    next(&mut a, "a", &mut transcript).await;
    next(&mut b, "b", &mut transcript).await;
    b.send_text("bogus").await;
    next(&mut b, "b", &mut transcript).await;
    a.expect_silence(Duration::from_millis(100)).await;
    let (status, rooms) = server.get_json("/rooms").await;
    transcript.push(("GET /rooms", format!("{status} {}", rooms_info(&rooms))));
    transcript
}

/// The `/rooms` listing without the plugin version (which names the build)
/// and creation times.
fn rooms_info(rooms: &serde_json::Value) -> String {
    rooms
        .as_array()
        .expect("/rooms is a list")
        .iter()
        .map(|room| format!("{} {} {}", room["room"], room["clients"], room["info"]))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn native_fanout_matches_wasm_fanout() {
    let wasm = TestServer::single("fanout").await;
    let wasm_transcript = fanout_script(&wasm).await;
    wasm.stop().await;
    let native = TestServer::start(
        vec![roomhost_baseline::spec("fanout").expect("known service")],
        test_limits(),
    )
    .await;
    let native_transcript = fanout_script(&native).await;
    native.stop().await;
    assert_eq!(native_transcript.len(), 2 + 2 + 1 + 40);
    assert_eq!(wasm_transcript, native_transcript);
}

#[tokio::test]
async fn native_counter_matches_wasm_counter() {
    let wasm = TestServer::start(
        vec![ServiceSpec::new("counter", plugin("counter"))],
        test_limits(),
    )
    .await;
    let wasm_transcript = counter_script(&wasm).await;
    wasm.stop().await;
    let native = TestServer::start(
        vec![roomhost_baseline::spec("counter").expect("known service")],
        test_limits(),
    )
    .await;
    let native_transcript = counter_script(&native).await;
    native.stop().await;
    assert!(
        native_transcript.last().unwrap().1.contains("count"),
        "{native_transcript:?}"
    );
    assert_eq!(wasm_transcript, native_transcript);
}
