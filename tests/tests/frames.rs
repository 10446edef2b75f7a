//! Frame limits in each direction, against a real server: what a client may
//! send (`max_frame_bytes`) is separate from what a plugin may send
//! (`max_plugin_frame_bytes`), a plugin frame over its limit is an error the
//! plugin sees, and a client's outbound queue is bounded in bytes
//! (`client_queue_bytes`) as well as in frames.

use roomhost_e2e::{TestServer, eventually, plugin, test_limits};
use roomhost_host::{Limits, ServiceSpec};
use tokio_tungstenite::tungstenite::Message;

async fn misbehave(limits: Limits) -> TestServer {
    TestServer::start(
        vec![ServiceSpec::new("misbehave", plugin("misbehave"))],
        limits,
    )
    .await
}

/// With the default limits, a plugin sends frames far beyond the 64 KiB a
/// client may send, up to exactly its own 16 MiB limit; one byte more fails
/// in the plugin, with the host's reason, and reaches nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_frames_are_bounded_by_their_own_limit_and_fail_in_the_plugin() {
    let limits = Limits {
        // Building a 16 MiB frame in wasm and copying it out takes a few
        // tens of ms, which the host's polled-time clock stretches past the
        // default 100 ms on a 2-core machine busy compiling. The frame
        // limits are the default ones.
        call_deadline: std::time::Duration::from_secs(2),
        ..test_limits()
    };
    assert_eq!(limits.max_frame_bytes, 64 * 1024);
    assert_eq!(limits.max_plugin_frame_bytes, 16 * 1024 * 1024);
    let server = misbehave(limits).await;
    let mut client = server.connect("/ws/big").await;

    for bytes in [1024 * 1024, 16 * 1024 * 1024] {
        client.send_text(&format!("big-send:{bytes}")).await;
        match client.recv().await {
            Message::Binary(frame) => {
                assert_eq!(frame.len(), bytes);
                assert!(frame.iter().all(|&byte| byte == b'x'));
            }
            other => panic!("expected a {bytes}-byte binary frame, got {other:?}"),
        }
        assert_eq!(client.recv_text().await, format!("big-send-ok:{bytes}"));
    }

    let over = 16 * 1024 * 1024 + 1;
    let reason = format!("frame is {over} bytes; the limit is 16777216 (max_plugin_frame_bytes)");
    client.send_text(&format!("big-send:{over}")).await;
    assert_eq!(client.recv_text().await, format!("big-send-error:{reason}"));
    client.send_text(&format!("big-broadcast:{over}")).await;
    assert_eq!(
        client.recv_text().await,
        format!("big-broadcast-error:{reason}")
    );
    // The failed frames were not sent: the next frame is the echo.
    client.send_text("echo:after").await;
    assert_eq!(client.recv_text().await, "after");
    server.stop().await;
}

/// Raising what plugins may send does not raise what clients may send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_frame_over_max_frame_bytes_is_still_closed_with_1009() {
    let server = misbehave(test_limits()).await;
    let mut client = server.connect("/ws/big").await;
    client.send_binary(&vec![0u8; 65 * 1024]).await;
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(1009), "{closed:?}");
    server.stop().await;
}

/// A client that does not read is closed once the bytes queued for it pass
/// `client_queue_bytes`, long before `client_queue` frames are queued, and
/// the room goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_on_queued_bytes() {
    let megabyte = 1024 * 1024;
    let limits = Limits {
        client_queue: 256,
        client_queue_bytes: 2 * megabyte,
        max_plugin_frame_bytes: megabyte,
        ..test_limits()
    };
    let server = misbehave(limits).await;
    let mut fast = server.connect("/ws/flood").await;
    // Connected, but never read from until the end: its socket buffers fill,
    // then its queue.
    let mut slow = server.connect("/ws/flood").await;
    eventually("both clients to join", || async {
        let (_, room) = server.get_json("/rooms/misbehave/flood").await;
        (room["clients"] == 2).then_some(())
    })
    .await;

    // At most 64 frames of 1 MiB: a quarter of `client_queue`, and more than
    // the loopback socket buffers (a few MiB) plus the 2 MiB byte bound.
    let mut dropped = false;
    for _ in 0..64 {
        fast.send_text(&format!("big-broadcast:{megabyte}")).await;
        loop {
            match fast.recv().await {
                Message::Binary(frame) => assert_eq!(frame.len(), megabyte),
                Message::Text(text) if text.as_str() == format!("big-broadcast-ok:{megabyte}") => {
                    break;
                }
                Message::Text(text) if text.starts_with("left:") => dropped = true,
                other => panic!("unexpected frame {other:?}"),
            }
        }
        if dropped {
            break;
        }
    }
    if !dropped {
        assert!(fast.recv_text().await.starts_with("left:"));
    }
    let (_, room) = server.get_json("/rooms/misbehave/flood").await;
    assert_eq!(room["clients"], 1, "{room}");
    // The slow client's connection ended (with 1008, when the close frame
    // got through its full socket in time).
    let closed = slow.closed().await;
    assert!(
        matches!(closed.code, None | Some(1008)),
        "unexpected close {closed:?}"
    );
    if closed.code == Some(1008) {
        assert!(closed.reason.contains("2097152 bytes"), "{closed:?}");
    }
    fast.send_text("echo:still here").await;
    assert_eq!(fast.recv_text().await, "still here");
    server.stop().await;
}
