//! HTTP requests to rooms (`/rooms/{service}/{room}/...`) against a real
//! server: the plugin's `request` export answers, edits reach connected
//! clients, sizes are capped, and a failing plugin gets a clear 500.

use std::time::Duration;

use roomhost_e2e::{HttpResponse, TestServer, http_request, plugin, test_limits};
use roomhost_host::{Limits, ServiceSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The fixture, with HTTP requests allowed to create rooms.
fn misbehave() -> ServiceSpec {
    ServiceSpec::new("misbehave", plugin("misbehave")).with_http_creates_rooms(true)
}

async fn serve(limits: Limits) -> TestServer {
    TestServer::start(vec![misbehave()], limits).await
}

#[tokio::test]
async fn requests_reach_the_room_and_edits_reach_its_clients() {
    let server = serve(test_limits()).await;
    let mut client = server.connect("/ws/board").await;
    client.send_text("note:from-socket").await;
    assert_eq!(client.recv_text().await, "noted:1");

    let response = http_request(server.addr(), "GET", "/rooms/misbehave/board/notes", b"")
        .await
        .expect("GET");
    assert_eq!(response.status, 200);
    assert!(
        response.head.contains("content-type: application/json"),
        "{}",
        response.head
    );
    assert_eq!(response.json().unwrap(), serde_json::json!(["from-socket"]));

    let response = http_request(
        server.addr(),
        "POST",
        "/rooms/misbehave/board/notes",
        b"from-http",
    )
    .await
    .expect("POST");
    assert_eq!(response.status, 201);
    assert_eq!(client.recv_text().await, "noted-by-http:from-http");
    client.send_text("notes").await;
    assert_eq!(client.recv_text().await, "notes:from-socket,from-http");

    let response = http_request(server.addr(), "DELETE", "/rooms/misbehave/board/notes", b"")
        .await
        .expect("DELETE");
    assert_eq!(response.status, 404, "the fixture has no DELETE");
    server.stop().await;
}

#[tokio::test]
async fn a_request_creates_the_room_which_then_ends() {
    let server = serve(test_limits()).await;
    let response = http_request(server.addr(), "POST", "/rooms/misbehave/fresh/notes", b"n")
        .await
        .expect("POST");
    assert_eq!(response.status, 201);
    assert_eq!(response.json().unwrap(), serde_json::json!(["n"]));
    // No clients and no timers: the room ended after answering.
    roomhost_e2e::eventually("the room ends", || async {
        let (status, _) = server.get_json("/rooms/misbehave/fresh").await;
        (status == 404).then_some(())
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_and_answers_get_clear_errors() {
    let limits = Limits {
        max_http_body_bytes: 1000,
        ..test_limits()
    };
    let server = serve(limits).await;
    let addr = server.addr();

    let response = http_request(addr, "POST", "/rooms/misbehave/r/notes", &[b'x'; 1001])
        .await
        .unwrap();
    assert_eq!(response.status, 413);
    assert_error(&response, "1000 bytes");

    let response = http_request(addr, "GET", "/rooms/misbehave/r/big?bytes=1001", b"")
        .await
        .unwrap();
    assert_eq!(response.status, 500);
    assert_error(&response, "limit is 1000");
    let response = http_request(addr, "GET", "/rooms/misbehave/r/big?bytes=1000", b"")
        .await
        .unwrap();
    assert_eq!((response.status, response.body.len()), (200, 1000));

    let response = http_request(addr, "GET", "/rooms/misbehave/r/status?code=1000", b"")
        .await
        .unwrap();
    assert_eq!(response.status, 500);
    assert_error(&response, "invalid status 1000");

    let response = http_request(addr, "GET", "/rooms/nope/r/notes", b"")
        .await
        .unwrap();
    assert_eq!(response.status, 404);
    let long_room = "r".repeat(300);
    let response = http_request(
        addr,
        "GET",
        &format!("/rooms/misbehave/{long_room}/notes"),
        b"",
    )
    .await
    .unwrap();
    assert_eq!(response.status, 400);
    let response = http_request(addr, "TRACE", "/rooms/misbehave/r/notes", b"")
        .await
        .unwrap();
    assert_eq!(response.status, 405);

    // A trap answers 500 with the reason and disposes only that room.
    let mut other = server.connect("/ws/other").await;
    let response = http_request(addr, "GET", "/rooms/misbehave/r/trap", b"")
        .await
        .unwrap();
    assert_eq!(response.status, 500);
    assert_error(&response, "trap requested over HTTP");
    other.send_text("echo:fine").await;
    assert_eq!(other.recv_text().await, "fine");
    server.stop().await;
}

/// Too many headers get 431. Requests beyond `max_http_requests` wait for a
/// slot in turn (within `http_timeout`) instead of failing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_concurrency_limits_answer_clearly() {
    let limits = Limits {
        max_http_headers: 3,
        max_http_requests: 1,
        http_timeout: Duration::from_secs(3),
        call_deadline: Duration::from_secs(6),
        ..test_limits()
    };
    let server = serve(limits).await;
    let addr = server.addr();
    // `http_request` sends three headers: within the limit.
    let response = http_request(addr, "GET", "/rooms/misbehave/r/notes", b"")
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let answer = raw_request(
        addr,
        "GET /rooms/misbehave/r/notes HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("max_http_headers"), "{answer}");

    // A request to a room busy in a long callback holds the only slot until
    // its http_timeout; one sent meanwhile to a live room waits its turn and
    // is answered.
    let mut busy = server.connect("/ws/busy").await;
    let _live = server.connect("/ws/r").await;
    busy.send_text("loop").await;
    // The frame and the request race to the room's inbox over two
    // connections: let the frame arrive first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let holder = tokio::spawn(http_request(
        addr,
        "GET",
        "/rooms/misbehave/busy/notes",
        b"",
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiter = http_request(addr, "GET", "/rooms/misbehave/r/notes", b"")
        .await
        .unwrap();
    let holder = holder.await.unwrap().unwrap();
    assert_eq!(holder.status, 503);
    assert_error(&holder, "http_timeout");
    assert_eq!(waiter.status, 200);
    server.stop().await;
}

/// Sends `request` as is and returns the whole answer as text.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Asserts that `response` carries a JSON error mentioning `needle`.
fn assert_error(response: &HttpResponse, needle: &str) {
    let body = response.json().expect("a JSON error body");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "{needle:?} not in {body}");
}
