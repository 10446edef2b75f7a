//! The test harness applies the host's rules.

use std::time::Duration;

use roomhost_sdk::testing::{DEFAULT_START_MS, TestRoom};
use roomhost_sdk::{
    ClientId, ClientInfo, DisconnectReason, Handoff, InitInfo, LogLevel, Message, Rejection, Room,
    RoomService, TimerId, room_service,
};
use serde_json::json;

/// Obeys text commands, records every callback.
#[derive(Default)]
struct Scripted {
    events: Vec<String>,
    config: String,
    restored: Option<Vec<u8>>,
}

#[room_service]
impl RoomService for Scripted {
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        self.events.push(format!("init {}", room.room_id()));
        self.config = info.config.clone();
        self.restored = info.restored.clone();
        Ok(())
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        self.events.push(format!("connect {}", client.id));
        room.send(client.id, "welcome");
        room.broadcast("someone joined", &[client.id]);
        if let Some(reason) = client.query_param("reject") {
            return Err(reason.into());
        }
        if client.query_param("kick").is_some() {
            room.close(client.id, 4000, "kicked on arrival");
        }
        Ok(())
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let text = message.as_text().unwrap_or_default().to_owned();
        self.events.push(format!("message {client} {text}"));
        let mut parts = text.split(' ');
        match parts.next() {
            Some("send") => {
                let to = parts
                    .next()
                    .and_then(|to| to.parse().ok())
                    .unwrap_or(client);
                room.send(to, parts.collect::<Vec<_>>().join(" "));
            }
            Some("all") => room.broadcast(parts.collect::<Vec<_>>().join(" "), &[]),
            Some("others") => room.broadcast("from a peer", &[client]),
            Some("close") => {
                let whom: ClientId = parts.next().and_then(|c| c.parse().ok()).unwrap_or(client);
                room.close(whom, 4001, &"x".repeat(200));
                room.send(whom, "after close");
            }
            Some("closecode") => room.close(client, 1001, "bad"),
            Some("timer") => {
                let id: TimerId = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
                let ms: u64 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
                let result = room.set_timer(id, Duration::from_millis(ms));
                room.send(client, format!("{result:?}"));
            }
            Some("cancel") => {
                let id: TimerId = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
                room.cancel_timer(id);
            }
            Some("info") => {
                let result = room.set_info(&json!({ "n": parts.next() }));
                room.send(client, format!("{}", result.is_ok()));
            }
            Some("bigInfo") => {
                let result = room.set_info(&"x".repeat(100_000));
                room.send(client, format!("{}", result.is_ok()));
            }
            Some("log") => room.warn("careful"),
            Some("random") => {
                let n = room.random_u64();
                room.send(client, n.to_string());
            }
            Some("panic") => panic!("asked to panic"),
            _ => {}
        }
    }

    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        self.events.push(format!("disconnect {client} {reason:?}"));
        room.send(client, "too late");
        room.broadcast(format!("{client} left"), &[]);
    }

    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        self.events
            .push(format!("timer {timer} at {}", room.now_ms()));
        // Timer 7 re-arms itself once with no delay; timer 8 arms timer 9.
        if timer == 7 && !self.events.iter().any(|e| e.starts_with("timer 70")) {
            let _ = room.set_timer(70, Duration::ZERO);
        }
        if timer == 8 {
            let _ = room.set_timer(9, Duration::from_millis(5));
        }
    }
}

#[test]
fn init_receives_config_and_room_id() {
    let room = TestRoom::<Scripted>::new();
    assert_eq!(room.service().events, ["init test"]);
    assert_eq!(room.service().config, "null");
    assert_eq!(room.now_ms(), DEFAULT_START_MS);

    let room = TestRoom::<Scripted>::builder()
        .room_id("lobby")
        .config(&json!({"a": 1}))
        .restored(*b"state")
        .build();
    assert_eq!(room.service().events, ["init lobby"]);
    assert_eq!(room.service().config, r#"{"a":1}"#);
    assert_eq!(room.service().restored.as_deref(), Some(&b"state"[..]));
    assert_eq!(
        TestRoom::<Scripted>::with_config(&json!(null))
            .service()
            .config,
        "null"
    );
}

#[test]
fn connect_assigns_ids_and_counts_client_as_connected() {
    let mut room = TestRoom::<Scripted>::new();
    let alice = room.connect();
    let bob = room.connect();
    assert_eq!((alice, bob), (1, 2));
    assert_eq!(room.take_sent(alice), ["welcome", "someone joined"]);
    assert_eq!(room.take_sent(bob), ["welcome"]);
    assert_eq!(room.clients(), [alice, bob]);
}

#[test]
fn rejected_client_is_not_disconnected() {
    let mut room = TestRoom::<Scripted>::new();
    let alice = room.connect();
    room.take_sent(alice);
    assert_eq!(
        room.try_connect("reject=no+room%21"),
        Err("no room!".into())
    );
    assert_eq!(room.clients(), [alice]);
    // The host delivers frames sent during `connect` before the 1008 close.
    assert_eq!(room.take_sent(2), ["welcome"]);
    // Alice still saw the broadcast made during the rejected connect.
    assert_eq!(room.take_all(), [(alice, Message::text("someone joined"))]);
    assert!(
        !room
            .service()
            .events
            .iter()
            .any(|e| e.starts_with("disconnect"))
    );
}

#[test]
#[should_panic(expected = "the service rejected the client")]
fn connect_panics_when_rejected() {
    TestRoom::<Scripted>::new().connect_with_query("reject=nope");
}

#[test]
fn try_connect_with_customises_client_info() {
    #[derive(Default)]
    struct Who(Vec<ClientInfo>);
    impl RoomService for Who {
        fn connect(&mut self, _: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
            self.0.push(client.clone());
            Ok(())
        }
    }
    let mut room = TestRoom::<Who>::builder().room_id("r1").build();
    let id = room
        .try_connect_with(|c| {
            c.id = 99;
            c.identity = Some("alice".into());
            c.handoff = Some(Handoff::from_room("r0", vec![1]));
        })
        .expect("accepted");
    let info = &room.service().0[0];
    assert_eq!(info.id, id);
    assert_eq!(id, 1);
    assert_eq!(info.path, "/ws/test/r1");
    assert_eq!(info.identity.as_deref(), Some("alice"));
    assert_eq!(info.handoff, Some(Handoff::from_room("r0", vec![1])));
}

#[test]
fn send_broadcast_and_unknown_clients() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    let b = room.connect();
    let c = room.connect();
    room.take_all();
    room.message(a, "send 2 hello bob");
    room.message(a, "send 42 nobody");
    room.message(a, "others");
    room.message(b, "all everyone");
    assert_eq!(room.take_sent(a), ["everyone"]);
    assert_eq!(room.take_sent(b), ["hello bob", "from a peer", "everyone"]);
    // The host delivers sends anywhere in the service, so they are recorded.
    assert_eq!(room.take_sent(42), ["nobody"]);
    assert_eq!(
        room.take_all(),
        [
            (c, Message::text("from a peer")),
            (c, Message::text("everyone"))
        ]
    );
    // Clients that left the service are not reachable any more.
    room.disconnect(c, DisconnectReason::Closed);
    room.take_all();
    room.message(a, "send 3 too late");
    assert!(room.take_all().is_empty());
}

#[test]
fn close_kicks_after_the_callback() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    let b = room.connect();
    room.take_all();
    room.message(a, "close 2");
    assert!(!room.is_connected(b));
    assert_eq!(room.closed().len(), 1);
    assert_eq!(room.closed()[0].0, b);
    assert_eq!(room.closed()[0].1, 4001);
    assert_eq!(room.closed()[0].2.len(), 123);
    assert_eq!(
        room.service().events.last().map(String::as_str),
        Some("disconnect 2 Kicked")
    );
    // "after close" and "too late" were dropped; the remaining client saw the departure.
    assert!(room.take_sent(b).is_empty());
    assert_eq!(room.take_sent(a), ["2 left"]);
}

#[test]
fn close_during_connect_kicks_after_accepting() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect_with_query("kick");
    assert!(!room.is_connected(a));
    assert_eq!(room.closed(), [(a, 4000, "kicked on arrival".to_owned())]);
    assert_eq!(
        room.service().events.last().map(String::as_str),
        Some("disconnect 1 Kicked")
    );
    assert_eq!(room.take_sent(a), ["welcome"]);
}

#[test]
fn invalid_close_code_becomes_1000() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.message(a, "closecode");
    assert_eq!(room.closed(), [(a, 1000, "bad".to_owned())]);
}

#[test]
fn oversized_frames_are_not_sent_and_logged() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.take_all();
    let big = "x".repeat(roomhost_sdk::limits::MAX_PLUGIN_FRAME_BYTES + 1);
    room.message(a, format!("all {big}"));
    room.message(a, format!("send 1 {big}"));
    assert!(room.take_all().is_empty());
    assert_eq!(room.logs().len(), 2);
    let expected = format!(
        "cannot send frame: frame is {} bytes; the limit is {} (max_plugin_frame_bytes)",
        big.len(),
        roomhost_sdk::limits::MAX_PLUGIN_FRAME_BYTES
    );
    assert_eq!(room.logs()[0], (LogLevel::Warn, expected));
}

#[test]
fn frames_larger_than_a_client_may_send_are_sent() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.take_all();
    let big = "x".repeat(roomhost_sdk::limits::MAX_FRAME_BYTES * 4);
    room.message(a, format!("all {big}"));
    assert_eq!(room.take_all(), [(a, Message::text(big))]);
    assert!(room.logs().is_empty());
}

#[test]
fn long_timers_are_clamped() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.message(a, format!("timer 1 {}", u64::MAX));
    assert_eq!(
        room.pending_timers(),
        [(1, roomhost_sdk::limits::MAX_TIMER_DELAY)]
    );
}

#[test]
fn disconnect_removes_client_first() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    let b = room.connect();
    room.take_all();
    room.disconnect(a, DisconnectReason::Lost);
    assert_eq!(room.take_all(), [(b, Message::text("1 left"))]);
    assert_eq!(room.clients(), [b]);
}

#[test]
#[should_panic(expected = "client 5 is not connected")]
fn messaging_unknown_client_panics() {
    TestRoom::<Scripted>::new().message(5, "hi");
}

#[test]
#[should_panic(expected = "asked to panic")]
fn service_panics_propagate() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.message(a, "panic");
}

#[test]
fn timers_fire_in_deadline_order() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.take_all();
    room.message(a, "timer 1 300");
    assert_eq!(room.take_sent(a), ["Ok(())"]);
    room.message(a, "timer 2 100");
    room.message(a, "timer 3 100");
    room.message(a, "timer 4 1000");
    room.message(a, "timer 1 200"); // replaces
    room.message(a, "cancel 4");
    room.message(a, "cancel 12345");
    assert_eq!(
        room.pending_timers(),
        [
            (2, Duration::from_millis(100)),
            (3, Duration::from_millis(100)),
            (1, Duration::from_millis(200)),
        ]
    );
    room.advance(Duration::from_millis(150));
    room.advance(Duration::from_millis(150));
    let start = DEFAULT_START_MS;
    let fired: Vec<_> = room
        .service()
        .events
        .iter()
        .filter(|e| e.starts_with("timer"))
        .cloned()
        .collect();
    assert_eq!(
        fired,
        [
            format!("timer 2 at {}", start + 100),
            format!("timer 3 at {}", start + 100),
            format!("timer 1 at {}", start + 200),
        ]
    );
    assert_eq!(room.now_ms(), start + 300);
    assert!(room.pending_timers().is_empty());
}

#[test]
fn timers_set_while_firing_fire_when_due() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.message(a, "timer 7 10");
    room.message(a, "timer 8 10");
    room.advance(Duration::from_millis(12));
    let fired: Vec<_> = room
        .service()
        .events
        .iter()
        .filter(|e| e.starts_with("timer"))
        .cloned()
        .collect();
    let t = DEFAULT_START_MS + 10;
    assert_eq!(
        fired,
        [
            format!("timer 7 at {t}"),
            format!("timer 8 at {t}"),
            format!("timer 70 at {t}"),
        ]
    );
    assert_eq!(room.pending_timers(), [(9, Duration::from_millis(3))]);
    room.advance(Duration::from_millis(3));
    assert!(room.pending_timers().is_empty());
}

#[test]
fn timer_limit_matches_host() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    for id in 0..1024 {
        room.message(a, format!("timer {id} 1000"));
    }
    room.take_all();
    room.message(a, "timer 5000 1000");
    let reply = room.take_sent(a);
    assert!(
        reply[0].as_text().is_some_and(|t| t.starts_with("Err")),
        "{reply:?}"
    );
    room.message(a, "timer 5 10"); // replacing is fine
    assert_eq!(room.take_sent(a), ["Ok(())"]);
}

#[test]
fn info_logs_and_random() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.take_all();
    assert_eq!(room.info(), None);
    room.message(a, "info 3");
    room.message(a, "bigInfo");
    assert_eq!(room.take_sent(a), ["true", "false"]);
    assert_eq!(room.info(), Some(json!({"n": "3"})));
    room.message(a, "log");
    assert_eq!(room.logs(), [(LogLevel::Warn, "careful".to_owned())]);
    room.message(a, "random");
    room.message(a, "random");
    let numbers = room.take_sent(a);
    assert_ne!(numbers[0], numbers[1]);
    let mut again = TestRoom::<Scripted>::new();
    let b = again.connect();
    again.take_all();
    again.message(b, "random");
    assert_eq!(again.take_sent(b)[0], numbers[0]);
}

#[test]
fn with_room_runs_service_code() {
    let mut room = TestRoom::<Scripted>::new();
    let a = room.connect();
    room.take_all();
    let id = room.with_room(|service, ctx| {
        service.events.clear();
        ctx.close(a, 1000, "bye");
        ctx.room_id().to_owned()
    });
    assert_eq!(id, "test");
    assert_eq!(room.service().events, ["disconnect 1 Kicked"]);
}

#[test]
fn take_sent_json_parses_frames() {
    #[derive(Default)]
    struct Hello;
    impl RoomService for Hello {
        fn connect(&mut self, room: &mut Room<'_>, c: &ClientInfo) -> Result<(), Rejection> {
            room.send(c.id, Message::json(&json!({"hello": c.id})));
            Ok(())
        }
    }
    let mut room = TestRoom::<Hello>::new();
    let a = room.connect();
    assert_eq!(room.take_sent_json(a), [json!({"hello": 1})]);
}
