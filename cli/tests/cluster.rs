//! `roomhost serve --cluster URL` against a throwaway PostgreSQL, as real
//! processes: rooms are stored in the database and run on one node at a
//! time, whichever node a client or request reaches (the others forward);
//! a node that stops hands its rooms over at once, a node killed and
//! restarted under the same id gets its rooms back, a paused node is fenced
//! and its clients closed, a killed node's collab document comes back on
//! another node behind the shipped HAProxy config, and a node's backup is
//! an embedded store.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomhost_cluster::testing::PgServer;
use roomhost_e2e::{Client, http_get_json, http_request, plugin};
use tokio::io::{AsyncBufReadExt, BufReader};
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
    let node = |id: &str| cluster_node(&[&durable], &url, id, "2000", cache.path());

    let mut one = node("one");
    let mut socket = connect(one.addr).await;
    assert_eq!(ask(&mut socket, "put k v1").await.as_deref(), Some("ok k"));

    // Node two does not start a second copy: it forwards the client to
    // node one, which owns the room.
    let mut two = node("two");
    let mut other = connect(two.addr).await;
    assert_eq!(
        ask(&mut other, "get k").await.as_deref(),
        Some("value k v1")
    );
    drop(other);

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

/// `roomhost serve` as node `id` of the cluster on database `url`, serving
/// `plugins` (`NAME=PATH`) with a lease of `lease_ms`.
fn cluster_node(
    plugins: &[&str],
    url: &str,
    id: &str,
    lease_ms: &str,
    cache: &std::path::Path,
) -> common::Served {
    let mut args = Vec::new();
    for plugin in plugins {
        args.extend(["--plugin", plugin]);
    }
    args.extend(["--cluster", url, "--node-id", id, "--lease-ms", lease_ms]);
    common::serve(&args, cache)
}

/// A throwaway PostgreSQL server and the URL of a fresh database on it.
async fn database(name: &'static str) -> (PgServer, String) {
    // The fixture's PostgreSQL client blocks: off the runtime.
    tokio::task::spawn_blocking(move || {
        let pg = PgServer::start().unwrap();
        let url = pg.create_database(name).unwrap();
        (pg, url)
    })
    .await
    .unwrap()
}

/// The value of counter `name` in a node's `/metrics`.
async fn metric(addr: std::net::SocketAddr, name: &str) -> u64 {
    let response = http_request(addr, "GET", "/metrics", b"").await.unwrap();
    let text = String::from_utf8_lossy(&response.body).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
}

/// Which of `nodes` runs room `room` of `service` now (the admin API of
/// each answers 200 for its own live rooms only).
async fn owners(nodes: &[&common::Served], service: &str, room: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let (status, _) = http_get_json(node.addr, &format!("/rooms/{service}/{room}"))
            .await
            .unwrap();
        if status == 200 {
            found.push(index);
        }
    }
    found
}

/// The next close frame's code, skipping other frames; `None` when the
/// socket ends without one.
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|frame| u16::from(frame.code)),
            Ok(Some(Ok(Message::Text(text)))) => {
                assert!(
                    !text.starts_with("ok"),
                    "a fenced node acknowledged a write: {text}"
                );
            }
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) => return None,
            Err(_) => panic!("the client was not closed"),
        }
    }
}

fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_each_room_once_wherever_clients_connect() {
    let (_pg, url) = database("three").await;
    let cache = tempfile::tempdir().unwrap();
    let chat = format!("chat={}", plugin("chat").display());
    let durable = format!("durable={}", plugin("durable").display());
    let node = |id: &str| cluster_node(&[&chat, &durable], &url, id, "3000", cache.path());
    let mut nodes = [node("one"), node("two"), node("three")];

    // One member of chat room r through each node: they are in one room.
    let mut members = Vec::new();
    for (served, name) in nodes.iter().zip(["alice", "bob", "carol"]) {
        let path = format!("/ws/chat/r?name={name}");
        let mut member = Client::connect(served.addr, &path).await.unwrap();
        let welcome = member.recv_json().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        members.push((member, welcome));
    }
    assert_eq!(
        members[2].1["members"],
        serde_json::json!(["alice", "bob", "carol"]),
        "the third member's welcome lists everyone"
    );
    let all: Vec<&common::Served> = nodes.iter().collect();
    assert_eq!(
        owners(&all, "chat", "r").await.len(),
        1,
        "one node runs the room"
    );

    // Frames from a client on one node reach the clients on the others, in
    // order.
    let sent: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    for text in &sent {
        let say = serde_json::json!({"type": "say", "text": text});
        members[0].0.send_text(&say.to_string()).await;
    }
    for (member, _) in &mut members[1..] {
        let mut heard = Vec::new();
        while heard.len() < sent.len() {
            let frame = member.recv_json().await;
            if frame["type"] == "said" {
                heard.push(frame["text"].as_str().unwrap_or_default().to_owned());
            }
        }
        assert_eq!(heard, sent);
    }
    let forwarded: u64 = {
        let mut total = 0;
        for served in &nodes {
            total += metric(served.addr, "roomhost_connections_forwarded_total").await;
        }
        total
    };
    assert_eq!(forwarded, 2, "two of the three members were forwarded");

    // A room's HTTP face answers through any node.
    let mut writer = connect_to(nodes[1].addr, "/ws/durable/doc").await;
    assert_eq!(ask(&mut writer, "put x v1").await.as_deref(), Some("ok x"));
    for served in &nodes {
        let got = http_request(served.addr, "GET", "/rooms/durable/doc/k/x", b"")
            .await
            .unwrap();
        assert_eq!((got.status, got.body.as_slice()), (200, &b"v1"[..]));
    }
    let put = http_request(nodes[2].addr, "PUT", "/rooms/durable/doc/k/x", b"v2")
        .await
        .unwrap();
    assert_eq!(put.status, 204, "{:?}", String::from_utf8_lossy(&put.body));
    assert_eq!(
        ask(&mut writer, "get x").await.as_deref(),
        Some("value x v2")
    );

    // The cluster view: every node, live, and the rooms each owns.
    let (status, view) = http_get_json(nodes[0].addr, "/cluster").await.unwrap();
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["node"], "one");
    let listed = view["nodes"].as_array().expect("nodes");
    let ids: Vec<&str> = listed
        .iter()
        .filter_map(|node| node["id"].as_str())
        .collect();
    assert_eq!(ids, ["one", "two", "three"]);
    assert!(
        listed
            .iter()
            .all(|node| node["lease_left_ms"].as_i64() > Some(0)),
        "{view}"
    );
    let rooms: u64 = listed
        .iter()
        .filter_map(|node| node["rooms"].as_u64())
        .sum();
    assert!(rooms >= 2, "chat r and durable doc are owned: {view}");

    for served in &mut nodes {
        common::terminate(&served.child);
        common::wait_exit(&mut served.child);
    }
}

async fn connect_to(addr: std::net::SocketAddr, path: &str) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .expect("connects");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_is_fenced_and_its_clients_closed() {
    let (_pg, url) = database("paused").await;
    let cache = tempfile::tempdir().unwrap();
    let durable = format!("durable={}", plugin("durable").display());
    let lease = Duration::from_millis(2000);
    let node = |id: &str| cluster_node(&[&durable], &url, id, "2000", cache.path());
    let mut one = node("one");
    let mut two = node("two");
    let mut first = connect(one.addr).await;
    assert_eq!(ask(&mut first, "put k v1").await.as_deref(), Some("ok k"));

    // Node one stops (as a long GC pause or a frozen VM would) past its
    // lease; node two takes the room over from the database.
    signal(&one.child, "-STOP");
    tokio::time::sleep(lease + Duration::from_millis(1000)).await;
    let mut second = connect(two.addr).await;
    assert_eq!(
        ask(&mut second, "get k").await.as_deref(),
        Some("value k v1")
    );
    assert_eq!(ask(&mut second, "put k v2").await.as_deref(), Some("ok k"));

    // Node one wakes: its client's write is refused (fencing), the client
    // is closed to reconnect, and nothing of the old owner's mixes in.
    signal(&one.child, "-CONT");
    let _ = first.send(Message::text("put k v3")).await;
    let code = close_code(&mut first).await;
    assert!(
        matches!(code, Some(1011 | 1012) | None),
        "the old owner's client closed with {code:?}"
    );
    assert_eq!(
        ask(&mut second, "get k").await.as_deref(),
        Some("value k v2")
    );

    // Node one serves again once it has a new lease, forwarding to the
    // room's new owner.
    roomhost_e2e::eventually("node one to be ready again", || async {
        let ready = http_request(one.addr, "GET", "/readyz", b"").await.ok()?;
        (ready.status == 200).then_some(())
    })
    .await;
    let mut third = connect(one.addr).await;
    assert_eq!(
        ask(&mut third, "get k").await.as_deref(),
        Some("value k v2")
    );

    for served in [&mut one, &mut two] {
        common::terminate(&served.child);
        common::wait_exit(&mut served.child);
    }
}

/// HAProxy with the shipped config (`deploy/haproxy.cfg`) in front of
/// `nodes`, on a free port; stopped when dropped.
struct Proxy {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
}

impl Proxy {
    async fn start(nodes: &[&common::Served]) -> Proxy {
        let haproxy = which("haproxy").expect(
            "the cluster proxy test needs HAProxy (Debian: apt-get install haproxy; .ci/run installs it)",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let config = roomhost_e2e::workspace_root().join("deploy/haproxy.cfg");
        let mut command = tokio::process::Command::new(haproxy);
        command
            .arg("-f")
            .arg(config)
            .env("ROOMHOST_PROXY_BIND", addr.to_string())
            .kill_on_drop(true);
        for (index, node) in nodes.iter().enumerate() {
            command.env(format!("ROOMHOST_NODE{}", index + 1), node.addr.to_string());
        }
        let child = command.spawn().expect("haproxy starts");
        let proxy = Proxy { child, addr };
        roomhost_e2e::eventually("HAProxy to route to a ready node", || async {
            let ready = http_request(addr, "GET", "/readyz", b"").await.ok()?;
            (ready.status == 200).then_some(())
        })
        .await;
        proxy
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_s_document_is_back_on_another_node_through_the_proxy() {
    roomhost_e2e::node::node_ready();
    let (_pg, url) = database("killed").await;
    let cache = tempfile::tempdir().unwrap();
    let collab = format!("collab={}", plugin("collab").display());
    let lease = Duration::from_millis(2000);
    let node = |id: &str| cluster_node(&[&collab], &url, id, "2000", cache.path());
    let mut nodes = vec![node("one"), node("two"), node("three")];
    let mut proxy = Proxy::start(&nodes.iter().collect::<Vec<_>>()).await;
    let server_url = format!("ws://{}/ws", proxy.addr);

    // Real Yjs clients edit a document through the proxy; what the observer
    // sees is acknowledged (collab broadcasts an edit once it is stored).
    let mut editing = tokio::process::Command::new("node")
        .args(["crash.mjs", "edit", &server_url, "doc"])
        .current_dir(roomhost_e2e::node::node_dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(editing.stdout.take().unwrap()).lines();
    let mut seen = HashSet::new();
    let watched = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(item) = line.strip_prefix("seen ") {
                seen.insert(item.to_owned());
                if seen.len() == 200 {
                    break;
                }
            }
        }
    })
    .await;
    assert!(
        watched.is_ok(),
        "the observer saw only {} edits",
        seen.len()
    );

    // SIGKILL the document's owner.
    let all: Vec<&common::Served> = nodes.iter().collect();
    let owner = match owners(&all, "collab", "doc").await.as_slice() {
        [owner] => *owner,
        other => panic!("the document runs on nodes {other:?}"),
    };
    let mut killed = nodes.remove(owner);
    killed.child.kill().unwrap();
    let killed_at = tokio::time::Instant::now();
    killed.child.wait().unwrap();

    // The clients reconnect through the proxy; edits flow again once
    // another node holds the document, within the lease and 2 s.
    let before = seen.len();
    let resumed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(item) = line.strip_prefix("seen ")
                && seen.insert(item.to_owned())
            {
                return;
            }
        }
    })
    .await;
    let recovery = killed_at.elapsed();
    assert!(
        resumed.is_ok(),
        "no edit reached the observer after the kill"
    );
    eprintln!(
        "edits resumed {} ms after the owner was killed",
        recovery.as_millis()
    );
    assert!(
        recovery <= lease + Duration::from_secs(2),
        "edits resumed only after {recovery:?} (lease {lease:?} + 2 s)"
    );
    assert!(seen.len() > before);
    editing.kill().await.unwrap();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await
    {
        if let Some(item) = line.strip_prefix("seen ") {
            seen.insert(item.to_owned());
        }
    }

    // A fresh client through the proxy holds every acknowledged edit, on a
    // node that is still up.
    let read = tokio::process::Command::new("node")
        .args(["crash.mjs", "read", &server_url, "doc"])
        .current_dir(roomhost_e2e::node::node_dir())
        .output()
        .await
        .expect("node runs");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let items: Vec<String> = serde_json::from_slice(&read.stdout).expect("the items as JSON");
    let kept: HashSet<&str> = items.iter().map(String::as_str).collect();
    let lost: Vec<&String> = seen
        .iter()
        .filter(|item| !kept.contains(item.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} seen edits lost: {lost:?}",
        lost.len(),
        seen.len()
    );
    let live: Vec<&common::Served> = nodes.iter().collect();
    assert_eq!(owners(&live, "collab", "doc").await.len(), 1);

    proxy.child.kill().await.unwrap();
    for served in &mut nodes {
        common::terminate(&served.child);
        common::wait_exit(&mut served.child);
    }
}

/// The next text frame.
async fn text(socket: &mut Socket) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return text.to_string(),
            Ok(Some(Ok(Message::Close(frame)))) => panic!("closed: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_transfer_reach_rooms_and_clients_on_another_node() {
    let (_pg, url) = database("transfer").await;
    let cache = tempfile::tempdir().unwrap();
    let misbehave = format!("misbehave={}", plugin("misbehave").display());
    let node = |id: &str| cluster_node(&[&misbehave], &url, id, "3000", cache.path());
    let mut one = node("one");
    let mut two = node("two");
    // Room a runs on node one, room b on node two.
    let mut mover = connect_to(one.addr, "/ws/misbehave/a").await;
    let mut stayer = connect_to(two.addr, "/ws/misbehave/b").await;
    mover.send(Message::text("whoami")).await.unwrap();
    assert_eq!(text(&mut mover).await, "room:a");
    stayer.send(Message::text("whoami")).await.unwrap();
    assert_eq!(text(&mut stayer).await, "room:b");
    let all = [&one, &two];
    assert_eq!(owners(&all, "misbehave", "a").await, [0]);
    assert_eq!(owners(&all, "misbehave", "b").await, [1]);

    // A room on node one sends to a client on node two by its id (ids say
    // which node holds the client). Nodes learn each other's addresses on
    // the cluster sync (every 500 ms): give node one one round after node
    // two joined.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stayer.send(Message::text("clients")).await.unwrap();
    let listed = text(&mut stayer).await;
    let stayer_id = listed
        .strip_prefix("clients:")
        .and_then(|list| list.split('=').next())
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    for n in 0..5 {
        let order = format!("send-to:{stayer_id}:psst {n}");
        mover.send(Message::text(order)).await.unwrap();
    }
    for n in 0..5 {
        assert_eq!(text(&mut stayer).await, format!("psst {n}"));
    }

    // Room a transfers the client to room b; the frames it sends meanwhile
    // follow it, in order, over the same socket.
    mover.send(Message::text("go:b:hello")).await.unwrap();
    for _ in 0..3 {
        mover.send(Message::text("whoami")).await.unwrap();
    }
    assert_eq!(text(&mut mover).await, "arrived:a:hello:");
    for _ in 0..3 {
        assert_eq!(text(&mut mover).await, "room:b");
    }
    // Room b has both clients; room a ended on node one.
    stayer
        .send(Message::text("broadcast:hi all"))
        .await
        .unwrap();
    assert_eq!(text(&mut mover).await, "hi all");
    assert_eq!(text(&mut stayer).await, "hi all");
    roomhost_e2e::eventually("room a to end on node one", || async {
        owners(&[&one], "misbehave", "a")
            .await
            .is_empty()
            .then_some(())
    })
    .await;

    // Room b's close of the client reaches it through node one.
    mover.send(Message::text("close:4321:bye")).await.unwrap();
    assert_eq!(close_code(&mut mover).await, Some(4321));

    for served in [&mut one, &mut two] {
        common::terminate(&served.child);
        common::wait_exit(&mut served.child);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_sees_the_rooms_of_every_node() {
    let (_pg, url) = database("lobby").await;
    let cache = tempfile::tempdir().unwrap();
    let misbehave = format!("misbehave={}", plugin("misbehave").display());
    let node = |id: &str| cluster_node(&[&misbehave], &url, id, "3000", cache.path());
    // Node one starts first and runs the service's lobby.
    let mut one = node("one");
    let mut two = node("two");
    let mut lobby = connect_to(two.addr, "/ws").await;
    lobby.send(Message::text("whoami")).await.unwrap();
    assert_eq!(text(&mut lobby).await, "lobby");

    // A room on node two: the lobby on node one hears of it and lists it.
    let member = connect_to(two.addr, "/ws/misbehave/far").await;
    roomhost_e2e::eventually("room far to run on node two", || async {
        (owners(&[&one, &two], "misbehave", "far").await == [1]).then_some(())
    })
    .await;
    loop {
        let notice = text(&mut lobby).await;
        if notice == "changed:far:1" {
            break;
        }
        assert!(notice.starts_with("changed:"), "{notice}");
    }
    lobby.send(Message::text("rooms")).await.unwrap();
    assert_eq!(text(&mut lobby).await, r#"[{"clients":1,"room":"far"}]"#);

    // The room ends on node two: the lobby hears it closed.
    drop(member);
    loop {
        let notice = text(&mut lobby).await;
        if notice == "closed:far" {
            break;
        }
    }

    for served in [&mut one, &mut two] {
        common::terminate(&served.child);
        common::wait_exit(&mut served.child);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_refused_at_a_limit_leaves_no_claim_behind() {
    let (_pg, url) = database("limits").await;
    let cache = tempfile::tempdir().unwrap();
    let misbehave = format!("misbehave={}", plugin("misbehave").display());
    let mut one = common::serve(
        &[
            "--plugin",
            &misbehave,
            "--cluster",
            &url,
            "--node-id",
            "one",
            "--max-rooms",
            "2",
        ],
        cache.path(),
    );
    let mut held = connect_to(one.addr, "/ws/misbehave/a").await;
    held.send(Message::text("whoami")).await.unwrap();
    assert_eq!(text(&mut held).await, "room:a");
    // Room b is over the node's room limit (the lobby and room a): refused,
    // and its claim (taken before the limit was checked) is given back.
    let mut refused = connect_to(one.addr, "/ws/misbehave/b").await;
    assert_eq!(close_code(&mut refused).await, Some(1013));
    // The row goes on the release thread: wait for it, then make sure it
    // stays gone.
    let owned = || async {
        let (_, view) = http_get_json(one.addr, "/cluster").await.ok()?;
        view["nodes"][0]["rooms"].as_u64()
    };
    roomhost_e2e::eventually("room b's claim to go", || async {
        (owned().await? == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        owned().await,
        Some(2),
        "only the lobby and room a are owned"
    );

    common::terminate(&one.child);
    common::wait_exit(&mut one.child);
}
