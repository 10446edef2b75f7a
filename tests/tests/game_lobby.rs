//! The game-lobby plugin against a client written from
//! `shared/protocols/game-lobby.md` only: one socket at the service root,
//! a hand-encoded postcard join request, binary frames with big-endian ids.

use std::time::Duration;

use roomhost_e2e::{Client, TestServer, eventually, plugin, plugin_target_dir, test_limits};
use roomhost_host::{CompileCache, Server, ServerConfig, ServiceSpec};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The test client's side of the protocol, encoded by hand.
mod proto {
    /// Appends `value` as a LEB128 varint (postcard's integers).
    fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8 & 0x7F) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn string(out: &mut Vec<u8>, text: &str) {
        varint(out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }

    /// The four fields every client sends.
    pub fn request_v1(game: &str, room: &str, rules: u16, create: bool) -> Vec<u8> {
        let mut out = Vec::new();
        string(&mut out, game);
        string(&mut out, room);
        varint(&mut out, u64::from(rules));
        out.push(u8::from(create));
        out
    }

    /// The current form, with `reconnect_token`.
    pub fn request(
        game: &str,
        room: &str,
        rules: u16,
        create: bool,
        token: Option<u64>,
    ) -> Vec<u8> {
        let mut out = request_v1(game, room, rules, create);
        match token {
            None => out.push(0),
            Some(token) => {
                out.push(1);
                varint(&mut out, token);
            }
        }
        out
    }

    /// `[05]` + text.
    pub fn error(text: &str) -> Vec<u8> {
        let mut out = vec![5];
        out.extend_from_slice(text.as_bytes());
        out
    }

    /// `[kind][id u16 BE]`.
    pub fn id_frame(kind: u8, id: u16) -> Vec<u8> {
        let [high, low] = id.to_be_bytes();
        vec![kind, high, low]
    }
}

use proto::{error, id_frame, request};

const TTT: &str = "tic-tac-toe";
const SERVER_LEFT: &str = "Server has left the game.";

fn config(grace_ms: u64) -> Value {
    json!({
        "games": [
            {"name": "tic-tac-toe", "max_players": 10},
            {"name": "Ternio", "max_players": 3},
        ],
        "host_grace_ms": grace_ms,
    })
}

async fn server(grace_ms: u64) -> TestServer {
    TestServer::start(
        vec![ServiceSpec::new("game-lobby", plugin("game-lobby")).with_config(config(grace_ms))],
        test_limits(),
    )
    .await
}

/// The next frame, which must be binary.
async fn recv_bin(client: &mut Client) -> Vec<u8> {
    match client.recv().await {
        Message::Binary(bytes) => bytes.to_vec(),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

/// Reads the 13-byte handshake reply: (player id, rule variation, token).
async fn handshake(client: &mut Client) -> (u16, u16, u64) {
    let bytes = recv_bin(client).await;
    assert_eq!(bytes.len(), 13, "handshake reply {bytes:?}");
    assert_eq!(bytes[0], 6, "handshake reply {bytes:?}");
    let id = u16::from_be_bytes([bytes[1], bytes[2]]);
    let rules = u16::from_be_bytes([bytes[3], bytes[4]]);
    let mut token = [0; 8];
    token.copy_from_slice(&bytes[5..]);
    (id, rules, u64::from_be_bytes(token))
}

/// Expects `[05]text` and then a normal close.
async fn expect_failure(client: &mut Client, text: &str) {
    assert_eq!(recv_bin(client).await, error(text), "expected [05]{text:?}");
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(1000), "{closed:?}");
}

/// Connects at the service root and sends `request`.
async fn send_request(server: &TestServer, request: &[u8]) -> Client {
    let mut client = server.connect("/ws").await;
    client.send_binary(request).await;
    client
}

/// Creates `room` of `game` with rule variation 7: the host and its token.
async fn create(server: &TestServer, game: &str, room: &str) -> (Client, u64) {
    let mut host = send_request(server, &request(game, room, 7, true, None)).await;
    let (id, rules, token) = handshake(&mut host).await;
    assert_eq!((id, rules), (0, 7));
    (host, token)
}

/// Joins `room`, checks the id the host hears about; the client, id, token.
async fn join(
    server: &TestServer,
    host: &mut Client,
    game: &str,
    room: &str,
) -> (Client, u16, u64) {
    let mut client = send_request(server, &request(game, room, 0, false, None)).await;
    let (id, rules, token) = handshake(&mut client).await;
    assert_eq!(rules, 7, "the room's rule variation, not the joiner's");
    assert_eq!(recv_bin(host).await, id_frame(0, id));
    (client, id, token)
}

/// The `/rooms` entry of `key`, if listed.
async fn listing(server: &TestServer, key: &str) -> Option<Value> {
    let (_, rooms) = server.get_json("/rooms").await;
    rooms
        .as_array()?
        .iter()
        .find(|room| room["room"] == key)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_join_and_the_handshake_failures() {
    let server = server(30_000).await;
    let (mut host, _) = create(&server, "Ternio", "r1").await;
    let (_a, a, _) = join(&server, &mut host, "Ternio", "r1").await;
    let (_b, b, _) = join(&server, &mut host, "Ternio", "r1").await;
    assert_eq!((a, b), (1, 2));

    // Full: the host counts. The room rejects, the lobby tells the client.
    let mut full = send_request(&server, &request("Ternio", "r1", 0, false, None)).await;
    expect_failure(&mut full, "Room r1 exceeded max amount of players 3.").await;

    let mut unknown = send_request(&server, &request("chess", "r1", 0, true, None)).await;
    expect_failure(&mut unknown, "Unknown game chess.").await;

    let mut duplicate = send_request(&server, &request("Ternio", "r1", 0, true, None)).await;
    expect_failure(&mut duplicate, "Room r1 already exists for game Ternio.").await;

    // The same room name in another game is another room.
    let (_other_host, _) = create(&server, TTT, "r1").await;

    let mut missing = send_request(&server, &request("Ternio", "nope", 0, false, None)).await;
    expect_failure(&mut missing, "Room nope does not exist for game Ternio.").await;
    let mut gone = send_request(&server, &request("Ternio", "nope", 0, false, Some(1))).await;
    expect_failure(&mut gone, "Room nope no longer exists for game Ternio.").await;
    let mut bad_token = send_request(&server, &request("Ternio", "r1", 0, false, Some(1))).await;
    expect_failure(&mut bad_token, "Invalid reconnect token.").await;

    // Over the host's 256-byte room id limit once the game is appended.
    let long = "x".repeat(250);
    let mut too_long = send_request(&server, &request(TTT, &long, 0, true, None)).await;
    let frame = recv_bin(&mut too_long).await;
    assert_eq!(frame[0], 5);
    assert!(
        String::from_utf8_lossy(&frame[1..]).starts_with("Room id too long"),
        "{frame:?}"
    );

    // The listing: game, room, players (host included), cap, host state.
    let entry = listing(&server, "r1#Ternio").await.expect("listed");
    assert_eq!(
        entry["info"],
        json!({"game": "Ternio", "room": "r1", "players": 3, "max_players": 3, "host_connected": true})
    );
    assert_eq!(entry["clients"], 3);
    host.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creators_of_one_room_get_one_host() {
    let server = server(30_000).await;
    let request = request(TTT, "race", 1, true, None);
    let mut first = server.connect("/ws").await;
    let mut second = server.connect("/ws").await;
    tokio::join!(first.send_binary(&request), second.send_binary(&request));
    let (one, two) = tokio::join!(recv_bin(&mut first), recv_bin(&mut second));
    let refused = error("Room race already exists for game tic-tac-toe.");
    let mut outcomes = [one[0], two[0]];
    outcomes.sort_unstable();
    assert_eq!(outcomes, [5, 6], "{one:?} {two:?}");
    assert!(one == refused || two == refused, "{one:?} {two:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_carry_the_sender_id_and_the_sync_gate_filters_updates() {
    let server = server(30_000).await;
    let (mut host, _) = create(&server, TTT, "g").await;
    let (mut a, a_id, _) = join(&server, &mut host, TTT, "g").await;
    let (mut b, b_id, _) = join(&server, &mut host, TTT, "g").await;

    a.send_binary(&[2, 0xAA, 0xBB]).await;
    let [ah, al] = a_id.to_be_bytes();
    assert_eq!(recv_bin(&mut host).await, [2, ah, al, 0xAA, 0xBB]);
    b.send_binary(&[2, 1]).await;
    let [bh, bl] = b_id.to_be_bytes();
    assert_eq!(recv_bin(&mut host).await, [2, bh, bl, 1]);

    // Deltas before the first full update are dropped.
    host.send_binary(&[2, 1]).await;
    host.send_binary(&[3, 10]).await;
    // Synced now: deltas pass, later full updates are dropped, resets always pass.
    host.send_binary(&[2, 2]).await;
    host.send_binary(&[3, 11]).await;
    host.send_binary(&[4, 12]).await;
    host.send_binary(&[2, 3]).await;
    for client in [&mut a, &mut b] {
        assert_eq!(recv_bin(client).await, [3, 10]);
        assert_eq!(recv_bin(client).await, [2, 2]);
        assert_eq!(recv_bin(client).await, [4, 12]);
        assert_eq!(recv_bin(client).await, [2, 3]);
        client.expect_silence(Duration::from_millis(100)).await;
    }

    // A newcomer is unsynced: a reset is its way in too.
    let (mut c, _, _) = join(&server, &mut host, TTT, "g").await;
    host.send_binary(&[2, 4]).await;
    host.send_binary(&[4, 13]).await;
    host.send_binary(&[2, 5]).await;
    assert_eq!(recv_bin(&mut c).await, [4, 13]);
    assert_eq!(recv_bin(&mut c).await, [2, 5]);
    for frame in [[2, 4], [4, 13], [2, 5]] {
        assert_eq!(recv_bin(&mut a).await, frame);
    }

    // Text frames are not commands; an unknown command closes the client.
    a.send_text("hello").await;
    a.send_binary(&[7]).await;
    expect_failure(&mut a, "Illegal Command from client").await;
    assert_eq!(recv_bin(&mut host).await, id_frame(1, a_id));
    host.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_kicks_and_clients_leave() {
    let server = server(30_000).await;
    let (mut host, _) = create(&server, TTT, "k").await;
    let (mut a, a_id, a_token) = join(&server, &mut host, TTT, "k").await;
    let (mut b, b_id, _) = join(&server, &mut host, TTT, "k").await;

    let [high, low] = a_id.to_be_bytes();
    host.send_binary(&[1, high, low]).await;
    expect_failure(&mut a, "We got rejected by server.").await;
    assert_eq!(recv_bin(&mut host).await, id_frame(1, a_id));
    // The kick is not forwarded, and the kicked token is revoked.
    b.expect_silence(Duration::from_millis(100)).await;
    let mut again = send_request(&server, &request(TTT, "k", 0, false, Some(a_token))).await;
    expect_failure(&mut again, "Invalid reconnect token.").await;

    // 03: the client leaves.
    b.send_binary(&[3]).await;
    assert_eq!(b.closed().await.code, Some(1000));
    assert_eq!(recv_bin(&mut host).await, id_frame(1, b_id));

    // An unknown host command closes the host.
    host.send_binary(&[9]).await;
    expect_failure(&mut host, "Illegal Server -> Client command.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_ends_the_game() {
    let server = server(30_000).await;
    let (mut host, _) = create(&server, TTT, "end").await;
    let (mut a, _, _) = join(&server, &mut host, TTT, "end").await;
    let (mut b, _, _) = join(&server, &mut host, TTT, "end").await;
    host.send_binary(&[0]).await;
    expect_failure(&mut a, SERVER_LEFT).await;
    expect_failure(&mut b, SERVER_LEFT).await;
    assert_eq!(host.closed().await.code, Some(1000));
    eventually("the room to end", || async {
        listing(&server, "end#tic-tac-toe")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    // The name is free again.
    let (_host, _) = create(&server, TTT, "end").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnects_with_its_token_and_keeps_its_id() {
    let server = server(30_000).await;
    let (mut host, _) = create(&server, TTT, "re").await;
    let (a, a_id, token) = join(&server, &mut host, TTT, "re").await;
    a.close().await;
    assert_eq!(recv_bin(&mut host).await, id_frame(1, a_id));

    let mut back = send_request(&server, &request(TTT, "re", 0, false, Some(token))).await;
    assert_eq!(handshake(&mut back).await, (a_id, 7, token));
    assert_eq!(recv_bin(&mut host).await, id_frame(0, a_id));
    back.send_binary(&[2, 5]).await;
    let [high, low] = a_id.to_be_bytes();
    assert_eq!(recv_bin(&mut host).await, [2, high, low, 5]);
    // Unsynced again: the full update gets through.
    host.send_binary(&[3, 1]).await;
    assert_eq!(recv_bin(&mut back).await, [3, 1]);

    // Any other token is refused.
    let mut thief = send_request(&server, &request(TTT, "re", 0, false, Some(token ^ 1))).await;
    expect_failure(&mut thief, "Invalid reconnect token.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_comes_back_within_the_grace_period_and_gets_the_replay() {
    let server = server(5_000).await;
    let (mut host, host_token) = create(&server, TTT, "h").await;
    let (mut a, a_id, _) = join(&server, &mut host, TTT, "h").await;
    let (b, b_id, _) = join(&server, &mut host, TTT, "h").await;

    let mut early = send_request(&server, &request(TTT, "h", 0, false, Some(host_token))).await;
    expect_failure(&mut early, "Host is already connected.").await;

    host.close().await;
    eventually("the host to be gone", || async {
        let entry = listing(&server, "h#tic-tac-toe").await?;
        (entry["info"]["host_connected"] == false).then_some(())
    })
    .await;
    b.close().await;
    let (mut c, c_id, _) = {
        let mut c = send_request(&server, &request(TTT, "h", 0, false, None)).await;
        let (id, _, token) = handshake(&mut c).await;
        (c, id, token)
    };
    // RPCs while the host is away are dropped.
    c.send_binary(&[2, 0]).await;
    eventually("b's departure to be seen", || async {
        let entry = listing(&server, "h#tic-tac-toe").await?;
        (entry["info"]["players"] == 2).then_some(())
    })
    .await;

    let mut host = send_request(&server, &request(TTT, "h", 0, false, Some(host_token))).await;
    assert_eq!(handshake(&mut host).await, (0, 7, host_token));
    assert_eq!(recv_bin(&mut host).await, id_frame(0, a_id));
    assert_eq!(recv_bin(&mut host).await, id_frame(0, c_id));
    assert_eq!(recv_bin(&mut host).await, id_frame(1, b_id));
    host.expect_silence(Duration::from_millis(100)).await;

    // The game goes on.
    host.send_binary(&[3, 1]).await;
    assert_eq!(recv_bin(&mut a).await, [3, 1]);
    assert_eq!(recv_bin(&mut c).await, [3, 1]);
    c.send_binary(&[2, 9]).await;
    let [high, low] = c_id.to_be_bytes();
    assert_eq!(recv_bin(&mut host).await, [2, high, low, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_gone_past_the_grace_period_ends_the_room() {
    let server = server(300).await;
    let (mut host, host_token) = create(&server, TTT, "late").await;
    let (mut a, _, _) = join(&server, &mut host, TTT, "late").await;
    host.close().await;
    expect_failure(&mut a, SERVER_LEFT).await;
    eventually("the room to end", || async {
        listing(&server, "late#tic-tac-toe")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let mut late = send_request(&server, &request(TTT, "late", 0, false, Some(host_token))).await;
    expect_failure(
        &mut late,
        "Room late no longer exists for game tic-tac-toe.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_request_forms_parse_and_text_frames_are_ignored() {
    let server = server(30_000).await;
    let mut host = server.connect("/ws").await;
    host.send_text("not a request").await;
    // The older four-field form gets the older 5-byte reply (no token).
    host.send_binary(&proto::request_v1(TTT, "forms", 3, true))
        .await;
    assert_eq!(recv_bin(&mut host).await, [6, 0, 0, 0, 3]);
    let mut old = server.connect("/ws").await;
    old.send_binary(&proto::request_v1(TTT, "forms", 0, false))
        .await;
    assert_eq!(recv_bin(&mut old).await, [6, 0, 1, 0, 3]);
    let mut new = server.connect("/ws").await;
    new.send_binary(&request(TTT, "forms", 0, false, None))
        .await;
    assert_eq!(handshake(&mut new).await.0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_fails_alone() {
    let server = server(30_000).await;
    let (mut host, _) = create(&server, TTT, "busy").await;
    let (mut a, _, _) = join(&server, &mut host, TTT, "busy").await;

    let mut trailing = request(TTT, "busy", 0, false, None);
    trailing.push(0);
    for bad in [vec![0xFF, 0xFF], trailing, vec![]] {
        let mut broken = send_request(&server, &bad).await;
        expect_failure(&mut broken, "Failed to parse join request.").await;
    }

    host.send_binary(&[3, 1]).await;
    assert_eq!(recv_bin(&mut a).await, [3, 1]);
    a.send_binary(&[2, 2]).await;
    assert_eq!(recv_bin(&mut host).await, [2, 0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_refuses_clients_that_skip_the_lobby() {
    let server = server(30_000).await;
    let mut direct = server.connect("/ws/r1%23tic-tac-toe").await;
    assert_eq!(
        recv_bin(&mut direct).await,
        error("Connect to the service root and send a join request.")
    );
    assert_eq!(direct.closed().await.code, Some(1008));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_stops_the_server_from_starting() {
    let services = vec![
        ServiceSpec::new("game-lobby", plugin("game-lobby"))
            .with_config(json!({"games": [], "host_grace_ms": 5})),
    ];
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("an address"), services);
    config.limits = test_limits();
    config.cache = Some(CompileCache::new(plugin_target_dir().join("compile-cache")));
    let Err(error) = Server::bind(config).await else {
        panic!("the server started with an invalid config");
    };
    let message = error.to_string();
    // The host reports the lobby's panic message, except when the lobby
    // fails before the host's start probe reaches its inbox (a host race):
    // then the reason is lost and the host says the lobby ended.
    assert!(
        message.starts_with("the lobby of service \"game-lobby\" failed to start: ")
            && (message.contains("invalid game-lobby config: no games configured")
                || message.ends_with("the lobby ended while starting")),
        "{message}"
    );
}
