//! `roomhost serve --cluster URL` against a throwaway PostgreSQL: rooms are
//! stored in the database, a room held by a live node does not start on
//! another, a node that stops hands its rooms over at once, a node killed
//! and restarted under the same id gets its rooms back, and a node's
//! backup is an embedded store.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomhost_cluster::testing::PgServer;
use roomhost_e2e::plugin;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends `command` and returns the text answer, or `None` when the server
/// closed the socket instead.
async fn ask(socket: &mut Socket, command: &str) -> Option<String> {
    socket.send(Message::text(command)).await.ok()?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(text.to_string()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("no answer to {command:?}"),
        }
    }
}

async fn connect(addr: std::net::SocketAddr) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/doc"))
        .await
        .expect("connects");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_live_in_postgres_and_one_node_at_a_time_holds_a_room() {
    // The fixture's PostgreSQL client blocks: off the runtime.
    let (_pg, url) = tokio::task::spawn_blocking(|| {
        let pg = PgServer::start().unwrap();
        let url = pg.create_database("cli").unwrap();
        (pg, url)
    })
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let durable = format!("durable={}", plugin("durable").display());
    let node = |id: &str| {
        common::serve(
            &[
                "--plugin",
                &durable,
                "--cluster",
                &url,
                "--node-id",
                id,
                "--lease-ms",
                "2000",
            ],
            cache.path(),
        )
    };

    let mut one = node("one");
    let mut socket = connect(one.addr).await;
    assert_eq!(ask(&mut socket, "put k v1").await.as_deref(), Some("ok k"));

    // Node two may not start the room node one holds.
    let mut two = node("two");
    let mut other = connect(two.addr).await;
    other.send(Message::text("get k")).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), other.next()).await;
    match refused {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("the room started on a second node: {other:?}"),
    }

    // Node one stops: it releases the room, and node two takes it at once.
    common::terminate(&one.child);
    common::wait_exit(&mut one.child);
    let mut other = connect(two.addr).await;
    assert_eq!(
        ask(&mut other, "get k").await.as_deref(),
        Some("value k v1")
    );
    assert_eq!(ask(&mut other, "put k v2").await.as_deref(), Some("ok k"));

    // Node two is killed and restarted under its id: it claims the room
    // again (a newer epoch) and finds every acknowledged write.
    two.child.kill().unwrap();
    two.child.wait().unwrap();
    let mut two = node("two");
    let mut again = connect(two.addr).await;
    assert_eq!(
        ask(&mut again, "get k").await.as_deref(),
        Some("value k v2")
    );

    // A running node's backup is an embedded store `roomhost storage` reads.
    let copy = tempfile::tempdir().unwrap();
    let file = copy.path().join(roomhost_host::storage::FILE_NAME);
    let server = format!("http://{}", two.addr);
    let backup = std::process::Command::new(common::ROOMHOST)
        .args(["storage", "backup"])
        .arg(&file)
        .args(["--server", &server])
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");
    let list = std::process::Command::new(common::ROOMHOST)
        .args(["storage", "list", "--data-dir"])
        .arg(copy.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("durable") && listed.contains("doc"),
        "{listed}"
    );

    common::terminate(&two.child);
    common::wait_exit(&mut two.child);
}
