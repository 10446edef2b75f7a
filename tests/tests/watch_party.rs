//! The watch-party plugin against a client that behaves like the
//! OpenWatchParty Jellyfin web client: one socket at `/ws`, JSON envelopes
//! with `ts` (and `room`/`client` once known), a ping on open, parties
//! created and joined by message.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use roomhost_e2e::{Client, TestServer, plugin, test_limits};
use roomhost_host::{AuthConfig, Limits, ServiceSpec};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_tungstenite::tungstenite::Message;

const MEDIA: &str = "0123456789abcdef0123456789abcdef";
/// How long a test waits to conclude that a frame is not coming.
const QUIET: Duration = Duration::from_millis(300);
/// Allowed scheduling error of a `target_server_ts`, on one machine.
const SLACK_MS: i64 = 250;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn spec(config: Value) -> ServiceSpec {
    ServiceSpec::new("watch-party", plugin("watch-party")).with_config(config)
}

async fn server() -> TestServer {
    server_with(Value::Null).await
}

async fn server_with(config: Value) -> TestServer {
    TestServer::start(vec![spec(config)], test_limits()).await
}

/// Asserts that `actual` is `expected` within [`SLACK_MS`].
#[track_caller]
fn assert_near(actual: &Value, expected: u64, what: &str) {
    let actual = actual
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: {actual} is not a u64"));
    let error = i64::try_from(actual).unwrap_or(i64::MAX) - i64::try_from(expected).unwrap_or(0);
    assert!(
        (-SLACK_MS..=SLACK_MS).contains(&error),
        "{what}: {actual} is {error} ms off {expected}"
    );
}

/// A client speaking like OpenWatchParty's `ws.js`.
struct Owp {
    ws: Client,
    /// The id from `client_hello`.
    id: String,
    /// The party it is in (`""` in the lobby), as `state.roomId`.
    room: String,
    /// Frames received while looking for another one.
    backlog: VecDeque<Value>,
    /// The last `room_list` payload seen.
    rooms: Value,
    /// The display name it sends with create/join (`state.userName`).
    name: Option<String>,
}

impl Owp {
    /// Opens `/ws`, reads the greeting, and (like the client's `onopen`)
    /// sends `auth` with the display name and an immediate ping.
    async fn connect(server: &TestServer, name: &str) -> Owp {
        let mut owp = Owp::open(server).await;
        owp.send_raw(json!({ "type": "auth", "payload": { "user_name": name }, "ts": now_ms() }))
            .await;
        let success = owp.expect("auth_success").await;
        assert_eq!(success["payload"]["user_name"], name);
        owp.name = Some(name.to_owned());
        owp
    }

    /// Opens `/ws` and reads `client_hello` and `room_list`.
    async fn open(server: &TestServer) -> Owp {
        let mut ws = server.connect("/ws").await;
        let hello = ws.recv_json().await;
        assert_eq!(hello["type"], "client_hello", "{hello}");
        let id = hello["payload"]["client_id"]
            .as_str()
            .expect("a client id")
            .to_owned();
        assert_eq!(hello["client"], id.as_str());
        assert!(hello["server_ts"].is_u64());
        let list = ws.recv_json().await;
        assert_eq!(list["type"], "room_list", "{list}");
        let mut owp = Owp {
            ws,
            id,
            room: String::new(),
            backlog: VecDeque::new(),
            rooms: list["payload"].clone(),
            name: None,
        };
        let client_ts = now_ms();
        owp.send_raw(
            json!({ "type": "ping", "payload": { "client_ts": client_ts }, "ts": client_ts }),
        )
        .await;
        // `next_within` skips pongs: read this one directly.
        let pong = loop {
            let frame = owp.ws.recv_json().await;
            match frame["type"].as_str() {
                Some("pong") => break frame,
                Some("room_list") => owp.rooms = frame["payload"].clone(),
                _ => panic!("expected a pong, got {frame}"),
            }
        };
        assert_eq!(pong["payload"], json!({ "client_ts": client_ts }));
        assert_near(&pong["server_ts"], now_ms(), "pong server_ts");
        owp
    }

    async fn send_raw(&mut self, frame: Value) {
        self.ws.send_text(&frame.to_string()).await;
    }

    /// `send(type, payload, roomOverride)` from `ws.js`.
    async fn send_to(&mut self, kind: &str, payload: Value, room: Option<&str>) {
        let room = room.unwrap_or(&self.room).to_owned();
        let frame = json!({ "type": kind, "room": room, "payload": payload, "ts": now_ms(), "client": self.id });
        self.send_raw(frame).await;
    }

    async fn send(&mut self, kind: &str, payload: Value) {
        self.send_to(kind, payload, None).await;
    }

    /// The next frame within `within`, or `None`. `room_list` frames are
    /// recorded in `rooms` and skipped, as are `pong`s.
    async fn next_within(&mut self, within: Duration) -> Option<Value> {
        match self.backlog.pop_front() {
            Some(frame) => Some(frame),
            None => self.read_socket(within).await,
        }
    }

    /// Like [`Owp::next_within`], from the socket only (not the backlog).
    async fn read_socket(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.stream().next()).await;
            let frame = match next {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(text)))) => {
                    serde_json::from_str::<Value>(&text).expect("frames are JSON")
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("client {}: expected a frame, got {other:?}", self.id),
            };
            match frame["type"].as_str() {
                Some("room_list") => self.rooms = frame["payload"].clone(),
                Some("pong") => {}
                _ => return Some(frame),
            }
        }
    }

    /// The next frame (see [`Owp::next_within`]), which must be of type `kind`.
    async fn expect(&mut self, kind: &str) -> Value {
        let frame = self
            .next_within(roomhost_e2e::WAIT)
            .await
            .unwrap_or_else(|| panic!("client {}: no {kind} arrived", self.id));
        assert_eq!(frame["type"], kind, "client {}: {frame}", self.id);
        frame
    }

    /// Asserts that nothing but `room_list`/`pong` arrives within [`QUIET`].
    async fn expect_quiet(&mut self) {
        if let Some(frame) = self.next_within(QUIET).await {
            panic!("client {}: expected nothing, got {frame}", self.id);
        }
    }

    /// The error message of the next frame, which must be an `error`.
    async fn expect_error(&mut self) -> (String, Value) {
        let error = self.expect("error").await;
        let message = error["payload"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (message, error["room"].clone())
    }

    /// Waits until the last pushed `room_list` satisfies `check`.
    async fn await_rooms(&mut self, what: &str, check: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + roomhost_e2e::WAIT;
        while !check(&self.rooms) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "client {}: room_list never showed {what}: {}",
                self.id,
                self.rooms
            );
            // Only room_list frames are interesting here; keep the rest.
            if let Some(frame) = self.read_socket(left.min(Duration::from_millis(100))).await {
                self.backlog.push_back(frame);
            }
        }
    }

    /// `createRoom()`: returns the new party's `room_state`.
    async fn create(&mut self, start_pos: f64) -> Value {
        let mut payload = json!({ "start_pos": start_pos, "media_id": MEDIA });
        if let Some(name) = &self.name {
            payload["user_name"] = json!(name);
        }
        self.send("create_room", payload).await;
        self.expect_room_state().await
    }

    /// `joinRoom(id)`: returns the party's `room_state`.
    async fn join(&mut self, party: &str) -> Value {
        let payload = match &self.name {
            Some(name) => json!({ "user_name": name }),
            None => json!({}),
        };
        self.send_to("join_room", payload, Some(party)).await;
        self.room = party.to_owned();
        self.expect_room_state().await
    }

    async fn expect_room_state(&mut self) -> Value {
        let state = self.expect("room_state").await;
        self.room = state["room"]
            .as_str()
            .expect("room_state names the party")
            .to_owned();
        assert_eq!(state["client"], self.id.as_str());
        state
    }

    /// `leaveRoom()`.
    async fn leave(&mut self) {
        self.send("leave_room", json!({})).await;
        self.room.clear();
    }
}

/// A party with a host and `members` (all past their `room_state`, the
/// host past their `participants_update`s).
async fn party(server: &TestServer, host: &str, members: &[&str]) -> (Owp, Vec<Owp>, String) {
    let mut host = Owp::connect(server, host).await;
    let state = host.create(12.5).await;
    let id = host.room.clone();
    assert_eq!(state["payload"]["host_id"], host.id.as_str());
    let mut joined = Vec::new();
    for (i, name) in members.iter().enumerate() {
        let mut member = Owp::connect(server, name).await;
        let state = member.join(&id).await;
        assert_eq!(state["payload"]["participant_count"], i + 2);
        let update = host.expect("participants_update").await;
        assert_eq!(update["payload"]["participant_count"], i + 2);
        for earlier in &mut joined {
            let earlier: &mut Owp = earlier;
            earlier.expect("participants_update").await;
        }
        joined.push(member);
    }
    (host, joined, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_is_created_and_joined_like_openwatchparty_does() {
    let server = server().await;
    let mut host = Owp::connect(&server, "Alice").await;
    let state = host.create(12.5).await;
    let id = host.room.clone();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(&id[14..15], "4");
    assert_eq!(
        state["payload"],
        json!({
            "name": "Room de Alice", "host_id": host.id,
            "state": { "position": 12.5, "play_state": "paused" },
            "participant_count": 1, "media_id": MEDIA,
        })
    );
    assert_near(&state["server_ts"], now_ms(), "room_state server_ts");

    let mut bob = Owp::connect(&server, "Bob").await;
    bob.await_rooms("the party", |rooms| rooms[0]["id"] == id.as_str())
        .await;
    assert_eq!(
        bob.rooms,
        json!([{ "id": id, "name": "Room de Alice", "count": 1, "media_id": MEDIA }])
    );
    let state = bob.join(&id).await;
    assert_eq!(state["room"], id.as_str());
    assert_eq!(state["payload"]["participant_count"], 2);
    let update = host.expect("participants_update").await;
    assert_eq!(update["room"], id.as_str());

    // Chat reaches everyone, the sender included.
    bob.send("chat_message", json!({ "text": "hello" })).await;
    let bob_id = bob.id.clone();
    for owp in [&mut host, &mut bob] {
        let chat = owp.expect("chat_message").await;
        assert_eq!(chat["room"], id.as_str());
        assert_eq!(chat["client"], bob_id.as_str());
        assert_eq!(
            chat["payload"],
            json!({ "username": "Bob", "text": "hello" })
        );
    }

    // Each party is its own room of the service.
    let (_, rooms) = server.get_json("/rooms").await;
    let listed: Vec<&str> = rooms
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|room| room["room"].as_str())
        .collect();
    assert_eq!(listed, [id.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_parties_side_by_side_do_not_hear_each_other() {
    let server = server().await;
    let (mut host_a, mut members_a, id_a) = party(&server, "Ann", &["a1", "a2"]).await;
    let (mut host_b, mut members_b, id_b) = party(&server, "Ben", &["b1"]).await;
    assert_ne!(id_a, id_b);

    host_a
        .send("chat_message", json!({ "text": "only A" }))
        .await;
    host_a
        .send(
            "player_event",
            json!({ "action": "pause", "position": 20.0 }),
        )
        .await;
    host_b
        .send(
            "player_event",
            json!({ "action": "seek", "position": 99.0, "play_state": "paused" }),
        )
        .await;

    assert_eq!(host_a.expect("chat_message").await["room"], id_a.as_str());
    for member in &mut members_a {
        assert_eq!(member.expect("chat_message").await["room"], id_a.as_str());
        let pause = member.expect("player_event").await;
        assert_eq!(
            (pause["room"].as_str(), pause["payload"]["action"].as_str()),
            (Some(id_a.as_str()), Some("pause"))
        );
        member.expect_quiet().await;
    }
    let seek = members_b[0].expect("player_event").await;
    assert_eq!(seek["room"], id_b.as_str());
    assert_eq!(seek["payload"]["position"], 99.0);
    members_b[0].expect_quiet().await;
    host_a.expect_quiet().await;
    host_b.expect_quiet().await;

    // A frame naming the other party is ignored.
    members_a[0]
        .send_to("chat_message", json!({ "text": "wrong room" }), Some(&id_b))
        .await;
    host_a.expect_quiet().await;
    host_b.expect_quiet().await;

    // Moving from one party to the other on the same socket.
    let mover_id = members_a[0].id.clone();
    let state = members_a[0].join(&id_b).await;
    assert_eq!(state["payload"]["participant_count"], 3);
    let left = host_a.expect("client_left").await;
    assert_eq!(
        (left["room"].as_str(), left["client"].as_str()),
        (Some(id_a.as_str()), Some(mover_id.as_str()))
    );
    assert_eq!(
        members_a[1].expect("client_left").await["payload"]["participant_count"],
        2
    );
    for owp in [&mut host_b, &mut members_b[0]] {
        let update = owp.expect("participants_update").await;
        assert_eq!(
            (
                update["room"].as_str(),
                update["payload"]["participant_count"].as_u64()
            ),
            (Some(id_b.as_str()), Some(3))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_with_everyone_ready_is_scheduled_for_everyone_1500_ms_ahead() {
    let server = server().await;
    let (mut host, mut members, id) = party(&server, "Host", &["m1", "m2"]).await;
    for member in &mut members {
        member
            .send("ready", json!({ "room": id, "media_id": MEDIA }))
            .await;
    }
    // `ready` has no reply; a chat round trip orders it before the play.
    host.send("chat_message", json!({ "text": "go" })).await;
    host.expect("chat_message").await;
    for member in &mut members {
        member.expect("chat_message").await;
    }
    let sent = now_ms();
    host.send(
        "player_event",
        json!({ "action": "play", "position": 30.0 }),
    )
    .await;
    for owp in std::iter::once(&mut host).chain(members.iter_mut()) {
        let play = owp.expect("player_event").await;
        assert_eq!(play["room"], id.as_str());
        assert_eq!(play["payload"]["action"], "play");
        assert_eq!(play["payload"]["position"], 30.0);
        assert_eq!(play["server_ts"], play["payload"]["target_server_ts"]);
        assert_near(&play["server_ts"], sent + 1500, "play target");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_is_held_for_an_unready_member_until_ready_or_2000_ms() {
    let server = server().await;
    let (mut host, mut members, _id) = party(&server, "Host", &["slow"]).await;
    let slow = &mut members[0];

    host.send("player_event", json!({ "action": "play", "position": 5.0 }))
        .await;
    slow.expect_quiet().await;
    host.expect_quiet().await;
    let ready_at = now_ms();
    slow.send("ready", json!({})).await;
    for owp in [&mut host, &mut *slow] {
        let play = owp.expect("player_event").await;
        assert_eq!(play["payload"]["position"], 5.0);
        assert_near(&play["server_ts"], ready_at + 1500, "play after ready");
    }

    // A newcomer is not ready: the next play waits the full 2000 ms.
    let mut late = Owp::connect(&server, "late").await;
    late.join(&host.room.clone()).await;
    host.expect("participants_update").await;
    slow.expect("participants_update").await;
    let requested = now_ms();
    host.send(
        "player_event",
        json!({ "action": "play", "position": 50.0 }),
    )
    .await;
    assert!(
        late.next_within(Duration::from_millis(1700))
            .await
            .is_none(),
        "held"
    );
    for owp in [&mut host, &mut *slow, &mut late] {
        let play = owp.expect("player_event").await;
        assert_eq!(play["payload"]["position"], 50.0);
        assert_near(
            &play["server_ts"],
            requested + 2000 + 1500,
            "play after the wait",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_seek_and_buffering_reach_everyone_but_the_host_300_ms_ahead() {
    let server = server().await;
    let (mut host, mut members, id) = party(&server, "Host", &["m1", "m2"]).await;
    for payload in [
        json!({ "action": "pause", "position": 10.0 }),
        json!({ "action": "seek", "position": 20.0, "play_state": "playing" }),
        json!({ "action": "buffering", "position": 21.0 }),
    ] {
        let sent = now_ms();
        host.send("player_event", payload.clone()).await;
        for member in &mut members {
            let event = member.expect("player_event").await;
            assert_eq!(event["room"], id.as_str());
            assert_eq!(event["client"], host.id.as_str());
            let mut expected = payload.clone();
            expected["target_server_ts"] = event["server_ts"].clone();
            assert_eq!(
                event["payload"], expected,
                "the host's payload, play_state kept"
            );
            assert_near(&event["server_ts"], sent + 300, "control target");
        }
        host.expect_quiet().await;
    }
    // Only the host controls playback.
    members[0]
        .send(
            "player_event",
            json!({ "action": "pause", "position": 1.0 }),
        )
        .await;
    members[0]
        .send(
            "state_update",
            json!({ "position": 1.0, "play_state": "paused" }),
        )
        .await;
    members[1].expect_quiet().await;
    host.expect_quiet().await;
}

/// One step of [`state_updates_are_filtered`]: what, ms to wait first, a
/// command (action, position) sent first, the update's position and
/// play_state, and whether the member receives it.
type Step = (
    &'static str,
    u64,
    Option<(&'static str, f64)>,
    f64,
    &'static str,
    bool,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_updates_are_filtered() {
    let server = server().await;
    let (mut host, mut members, id) = party(&server, "Host", &["m1"]).await;
    let member = &mut members[0];
    let steps: &[Step] = &[
        ("first update, moved 1 s", 0, None, 13.5, "paused", true),
        ("too soon after it", 0, None, 14.5, "paused", false),
        ("700 ms later, moved 1 s", 700, None, 14.5, "paused", true),
        (
            "700 ms later, moved 0.2 s",
            700,
            None,
            14.7,
            "paused",
            false,
        ),
        ("play_state change at once", 0, None, 14.7, "playing", true),
        (
            "right after a command",
            0,
            Some(("seek", 100.0)),
            101.0,
            "playing",
            false,
        ),
        ("1 s into the cooldown", 1000, None, 102.0, "playing", false),
        ("cooldown over", 1300, None, 103.0, "playing", true),
        (
            "play_state change in a cooldown",
            0,
            Some(("seek", 103.5)),
            103.5,
            "paused",
            true,
        ),
    ];
    for (i, &(what, wait, command, position, play_state, relayed)) in steps.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if let Some((action, at)) = command {
            host.send("player_event", json!({ "action": action, "position": at }))
                .await;
            member.expect("player_event").await;
        }
        let payload = json!({ "position": position, "play_state": play_state });
        host.send("state_update", payload.clone()).await;
        // A chat marker: whatever the member receives before it was relayed.
        let marker = format!("step {i}");
        host.send("chat_message", json!({ "text": marker })).await;
        host.expect("chat_message").await;
        let first = member.expect_any().await;
        if relayed {
            assert_eq!(first["type"], "state_update", "{what}: {first}");
            assert_eq!(first["room"], id.as_str());
            assert_eq!(first["payload"], payload, "{what}");
            assert_near(&first["server_ts"], now_ms(), what);
            assert_eq!(
                member.expect("chat_message").await["payload"]["text"],
                marker.as_str()
            );
        } else {
            assert_eq!(first["type"], "chat_message", "{what}: {first}");
        }
    }
    host.expect_quiet().await;
}

impl Owp {
    async fn expect_any(&mut self) -> Value {
        self.next_within(roomhost_e2e::WAIT)
            .await
            .unwrap_or_else(|| panic!("client {}: nothing arrived", self.id))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_leaving_closes_the_party_and_members_carry_on() {
    let server = server().await;
    let (mut host, mut members, id) = party(&server, "Host", &["m1", "m2"]).await;
    host.leave().await;
    for member in &mut members {
        let closed = member.expect("room_closed").await;
        assert_eq!(closed["room"], id.as_str());
        assert_eq!(closed["payload"], json!({ "reason": "Host left the room" }));
        member.room.clear();
    }
    host.expect_quiet().await;

    // Everyone is back in the lobby on the same socket.
    let mut m2 = members.pop().expect("two members");
    let mut m1 = members.pop().expect("two members");
    m1.await_rooms("the party gone", |rooms| {
        rooms
            .as_array()
            .is_some_and(|list| list.iter().all(|p| p["id"] != id.as_str()))
    })
    .await;
    let state = m1.create(0.0).await;
    let new_id = m1.room.clone();
    assert_ne!(new_id, id);
    assert_eq!(state["payload"]["name"], "Room de m1");
    m2.join(&new_id).await;
    assert_eq!(
        m1.expect("participants_update").await["payload"]["participant_count"],
        2
    );
    host.join(&new_id).await;
    for owp in [&mut m1, &mut m2] {
        assert_eq!(
            owp.expect("participants_update").await["payload"]["participant_count"],
            3
        );
    }

    // A member leaving is announced; the host disconnecting closes the party.
    host.leave().await;
    for owp in [&mut m1, &mut m2] {
        let left = owp.expect("client_left").await;
        assert_eq!(left["client"], host.id.as_str());
        assert_eq!(left["payload"]["participant_count"], 2);
    }
    m1.ws.close().await;
    let closed = m2.expect("room_closed").await;
    assert_eq!(closed["payload"]["reason"], "Host left the room");
    m2.room.clear();
    m2.send("list_rooms", json!({})).await;
    m2.await_rooms("no parties", |rooms| rooms == &json!([]))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_while_hosting_closes_the_old_party() {
    let server = server().await;
    let (mut host, mut members, id) = party(&server, "Host", &["m1"]).await;
    host.send(
        "create_room",
        json!({ "start_pos": 0, "name": "Second feature" }),
    )
    .await;
    for owp in [&mut host, &mut members[0]] {
        let closed = owp.expect("room_closed").await;
        assert_eq!(closed["room"], id.as_str());
        assert_eq!(closed["payload"]["reason"], "Host started a new room");
    }
    let state = host.expect_room_state().await;
    assert_ne!(host.room, id);
    assert_eq!(state["payload"]["name"], "Second feature");
    assert_eq!(state["payload"]["participant_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_list_is_pushed_to_every_client_on_each_change() {
    let server = server().await;
    let mut watcher = Owp::connect(&server, "watcher").await;
    let mut host = Owp::connect(&server, "Host").await;
    host.create(0.0).await;
    let id = host.room.clone();
    let count = |n: u64| move |rooms: &Value| rooms[0]["count"] == n;
    watcher.await_rooms("the new party", count(1)).await;
    host.await_rooms("its own party", count(1)).await;

    let mut member = Owp::connect(&server, "member").await;
    member.join(&id).await;
    watcher.await_rooms("2 members", count(2)).await;
    host.await_rooms("2 members", count(2)).await;
    member.await_rooms("2 members", count(2)).await;

    member.leave().await;
    watcher.await_rooms("1 member", count(1)).await;
    host.await_rooms("1 member", count(1)).await;
    member.await_rooms("1 member", count(1)).await;

    host.leave().await;
    for owp in [&mut watcher, &mut host, &mut member] {
        owp.await_rooms("no parties", |rooms| rooms == &json!([]))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_party_and_unknown_parties() {
    let server = server_with(json!({ "max_clients_per_room": 2 })).await;
    let (_host, _members, id) = party(&server, "Host", &["m1"]).await;
    let mut late = Owp::connect(&server, "late").await;
    late.send_to("join_room", json!({}), Some(&id)).await;
    assert_eq!(
        late.expect_error().await,
        ("Room is full".to_owned(), json!(id))
    );
    late.send_to(
        "join_room",
        json!({}),
        Some("00000000-0000-4000-8000-000000000000"),
    )
    .await;
    late.expect_quiet().await;
    // Still usable.
    late.create(1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_errors_and_the_socket_stays_open() {
    let server = server().await;
    let mut owp = Owp::open(&server).await;
    owp.ws.send_text("{not json").await;
    assert_eq!(owp.expect_error().await.0, "Invalid message format");
    owp.send_raw(json!({ "type": "ping" })).await;
    assert_eq!(owp.expect_error().await.0, "Invalid message format");
    owp.send_raw(json!({ "type": "quality_update", "ts": 1 }))
        .await;
    assert_eq!(owp.expect_error().await.0, "Unknown message type");
    owp.send_raw(
        json!({ "type": "client_log", "payload": { "category": "SYNC", "message": "x" }, "ts": 1 }),
    )
    .await;
    owp.ws.send_binary(b"\x00\x01").await;
    owp.expect_quiet().await;
    owp.create(0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_30_messages_a_second_are_refused() {
    let server = server().await;
    let mut owp = Owp::connect(&server, "flood").await;
    let total = 70;
    for _ in 0..total {
        owp.send("ping", json!({ "client_ts": 1 })).await;
    }
    // Pongs are skipped by `next_within`; count the errors.
    let mut errors = 0;
    while let Some(frame) = owp.next_within(Duration::from_millis(500)).await {
        assert_eq!(
            frame["payload"]["message"], "Rate limit exceeded",
            "{frame}"
        );
        errors += 1;
    }
    // 70 frames span at most two 1 s windows of 30.
    assert!((10..=45).contains(&errors), "{errors} refused");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    owp.send("chat_message", json!({ "text": "still here" }))
        .await;
    owp.expect_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_meet_the_plugin_or_the_host_limit() {
    // The host's own limit (64 KiB by default) closes the connection with 1009.
    let server = server().await;
    let mut owp = Owp::open(&server).await;
    let big = "x".repeat(70 * 1024);
    owp.send("client_log", json!({ "message": big })).await;
    assert_eq!(owp.ws.closed().await.code, Some(1009));

    // With a larger host limit, the plugin's 64 KiB answers instead.
    let limits = Limits {
        max_frame_bytes: 256 * 1024,
        ..test_limits()
    };
    let server = TestServer::start(vec![spec(Value::Null)], limits).await;
    let mut owp = Owp::open(&server).await;
    owp.send("client_log", json!({ "message": big })).await;
    assert_eq!(owp.expect_error().await.0, "Message too large");
    owp.create(0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_dropped() {
    let server = server_with(json!({ "silence_timeout_ms": 600 })).await;
    let mut quiet = Owp::open(&server).await;
    let mut chatty = Owp::open(&server).await;
    let started = tokio::time::Instant::now();
    let closed = tokio::spawn(async move { quiet.ws.closed().await });
    while started.elapsed() < Duration::from_millis(1500) {
        chatty.send("ping", json!({ "client_ts": 1 })).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed = closed.await.expect("the waiting task");
    assert_eq!(closed.code, Some(4408), "{closed:?}");
    chatty.create(0.0).await;
}

// ---------------------------------------------------------------- auth

const SECRET: &str = "e2e-secret";

/// An HS256 token with `claims`, signed with `secret`.
fn token(secret: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256", "typ": "JWT" }).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Claims as OpenWatchParty's Jellyfin plugin issues them, expiring
/// `expires_in` seconds from now (negative: in the past).
fn claims(name: &str, expires_in: i64) -> Value {
    let now = i64::try_from(now_ms() / 1000).unwrap_or(0);
    json!({
        "sub": format!("user-{name}"), "name": name,
        "aud": "OpenWatchParty", "iss": "Jellyfin",
        "iat": now - 10, "exp": now + expires_in,
    })
}

async fn auth(owp: &mut Owp, payload: Value) -> Value {
    owp.send_raw(json!({ "type": "auth", "payload": payload, "ts": now_ms() }))
        .await;
    owp.expect_any().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_secret_only_verified_clients_create_and_join() {
    let server = TestServer::start_with_auth(
        vec![spec(Value::Null)],
        test_limits(),
        AuthConfig::new(SECRET)
            .with_audience("OpenWatchParty")
            .with_issuer("Jellyfin"),
    )
    .await;
    let mut owp = Owp::open(&server).await;
    owp.send("create_room", json!({ "start_pos": 0 })).await;
    assert_eq!(owp.expect_error().await.0, "Authentication required");

    let mut wrong_audience = claims("Eve", 3600);
    wrong_audience["aud"] = json!("SomethingElse");
    let mut wrong_issuer = claims("Eve", 3600);
    wrong_issuer["iss"] = json!("Emby");
    for (what, payload) in [
        ("no token", json!({ "user_name": "Eve" })),
        (
            "expired beyond the leeway",
            json!({ "token": token(SECRET, &claims("Eve", -120)) }),
        ),
        (
            "wrong audience",
            json!({ "token": token(SECRET, &wrong_audience) }),
        ),
        (
            "wrong issuer",
            json!({ "token": token(SECRET, &wrong_issuer) }),
        ),
        (
            "wrong secret",
            json!({ "token": token("not-the-secret", &claims("Eve", 3600)) }),
        ),
        ("garbage", json!({ "token": "a.b.c" })),
    ] {
        let reply = auth(&mut owp, payload).await;
        assert_eq!(reply["type"], "error", "{what}: {reply}");
        assert_eq!(
            reply["payload"]["message"], "Authentication failed",
            "{what}"
        );
    }
    owp.send_to("join_room", json!({}), Some("anything")).await;
    assert_eq!(owp.expect_error().await.0, "Authentication required");

    // Expired, but within the 60 s leeway: accepted. The name claim wins.
    let good = token(SECRET, &claims("Alice", -30));
    let reply = auth(&mut owp, json!({ "token": good, "user_name": "Mallory" })).await;
    assert_eq!(reply["type"], "auth_success", "{reply}");
    assert_eq!(reply["payload"], json!({ "user_name": "Alice" }));
    let state = owp.create(3.0).await;
    assert_eq!(state["payload"]["name"], "Room de Alice");
    let id = owp.room.clone();

    let mut bob = Owp::open(&server).await;
    bob.send_to("join_room", json!({}), Some(&id)).await;
    assert_eq!(bob.expect_error().await.0, "Authentication required");
    let reply = auth(
        &mut bob,
        json!({ "token": token(SECRET, &claims("Bob", 3600)) }),
    )
    .await;
    assert_eq!(reply["type"], "auth_success");
    bob.join(&id).await;
    bob.send("chat_message", json!({ "text": "hi" })).await;
    assert_eq!(owp.expect("participants_update").await["room"], id.as_str());
    assert_eq!(
        owp.expect("chat_message").await["payload"]["username"],
        "Bob"
    );
}
