//! Awareness: broadcast, bookkeeping per connection, removal, expiry.

use std::time::Duration;

use roomhost_sdk::DisconnectReason;
use serde_json::json;

use super::*;
use crate::AWARENESS_TIMER;

const ALICE_STATE: &str = r##"{"user":{"name":"alice","color":"#f00"}}"##;
const BOB_STATE: &str = r#"{"user":{"name":"bob"}}"#;

fn presence(room: &mut TestRoom<Collab>) -> serde_json::Value {
    let response = room.request(roomhost_sdk::HttpRequest::new("GET", "/presence"));
    assert_eq!(response.status, 200);
    serde_json::from_slice(&response.body).expect("JSON")
}

#[test]
fn a_state_is_broadcast_to_everyone_including_the_sender() {
    let mut room = room();
    let a = room.connect();
    let b = room.connect();
    room.take_all();
    room.message(a, awareness_frame(11, 1, ALICE_STATE));
    let expected = vec![(11, 1, ALICE_STATE.to_owned())];
    assert_eq!(awareness_entries(&received(&mut room, a)), expected);
    assert_eq!(awareness_entries(&received(&mut room, b)), expected);
    assert_eq!(
        presence(&mut room),
        json!([{"client": 11, "state": {"user": {"name": "alice", "color": "#f00"}}}])
    );
}

#[test]
fn a_new_client_receives_the_current_states_after_step1() {
    let mut room = room();
    let a = room.connect();
    room.message(a, awareness_frame(11, 1, ALICE_STATE));
    let b = room.connect();
    let frames = received(&mut room, b);
    assert!(matches!(frames.first(), Some(Incoming::SyncStep1(_))));
    assert_eq!(
        awareness_entries(&frames[1..]),
        [(11, 1, ALICE_STATE.to_owned())]
    );
}

#[test]
fn leaving_removes_the_connections_states_with_their_clock() {
    let mut room = room();
    let a = room.connect();
    let b = room.connect();
    room.message(a, awareness_frame(11, 3, ALICE_STATE));
    room.message(b, awareness_frame(22, 1, BOB_STATE));
    room.take_all();
    room.disconnect(a, DisconnectReason::Closed);
    // The reference server's removeAwarenessStates keeps the clock and
    // sends `null`; receivers accept a null at the same clock.
    assert_eq!(
        awareness_entries(&received(&mut room, b)),
        [(11, 3, "null".to_owned())]
    );
    assert_eq!(
        presence(&mut room),
        json!([{"client": 22, "state": {"user": {"name": "bob"}}}])
    );
}

#[test]
fn stale_clocks_are_ignored_and_a_same_clock_null_removes() {
    let mut room = room();
    let a = room.connect();
    room.message(a, awareness_frame(11, 5, ALICE_STATE));
    room.take_all();
    room.message(a, awareness_frame(11, 4, BOB_STATE));
    assert!(room.take_all().is_empty(), "an older clock changes nothing");
    room.message(a, awareness_frame(11, 5, "null"));
    assert_eq!(
        awareness_entries(&received(&mut room, a)),
        [(11, 5, "null".to_owned())]
    );
    assert_eq!(presence(&mut room), json!([]));
    // A renewal with the same state is still broadcast (y-protocols
    // reports it as "updated").
    room.message(a, awareness_frame(11, 6, ALICE_STATE));
    room.message(a, awareness_frame(11, 7, ALICE_STATE));
    assert_eq!(awareness_entries(&received(&mut room, a)).len(), 2);
}

#[test]
fn query_awareness_answers_the_asker_only() {
    let mut room = room();
    let a = room.connect();
    let b = room.connect();
    room.message(a, awareness_frame(11, 1, ALICE_STATE));
    room.take_all();
    room.message(b, protocol::query_awareness());
    assert_eq!(
        awareness_entries(&received(&mut room, b)),
        [(11, 1, ALICE_STATE.to_owned())]
    );
    assert!(room.take_sent(a).is_empty());
}

#[test]
fn a_reconnected_client_keeps_its_state_when_the_old_connection_drops() {
    let mut room = room();
    let old = room.connect();
    room.message(old, awareness_frame(11, 1, ALICE_STATE));
    let new = room.connect();
    room.message(new, awareness_frame(11, 2, ALICE_STATE));
    room.take_all();
    room.disconnect(old, DisconnectReason::Lost);
    assert!(room.take_all().is_empty(), "the new connection controls 11");
    assert_eq!(room.service().presence().len(), 1);
    room.disconnect(new, DisconnectReason::Closed);
    assert!(room.service().presence().is_empty());
}

#[test]
fn states_not_renewed_expire() {
    let mut room = room_with(json!({"awareness_timeout_ms": 30_000}));
    let a = room.connect();
    let b = room.connect();
    room.message(a, awareness_frame(11, 1, ALICE_STATE));
    assert!(
        room.pending_timers()
            .contains(&(AWARENESS_TIMER, Duration::from_secs(30)))
    );
    room.advance(Duration::from_secs(20));
    room.message(b, awareness_frame(22, 1, BOB_STATE));
    room.take_all();
    room.advance(Duration::from_secs(10));
    assert_eq!(
        awareness_entries(&received(&mut room, b)),
        [(11, 1, "null".to_owned())]
    );
    assert_eq!(
        room.pending_timers(),
        [(AWARENESS_TIMER, Duration::from_secs(20))]
    );
    room.message(b, awareness_frame(22, 2, BOB_STATE));
    room.advance(Duration::from_secs(25));
    assert_eq!(room.service().presence().len(), 1, "bob renewed in time");
}

#[test]
fn the_awareness_timer_stops_when_no_state_is_left() {
    let mut room = room_with(json!({"keep_empty_ms": 0}));
    let a = room.connect();
    room.message(a, awareness_frame(11, 1, ALICE_STATE));
    room.disconnect(a, DisconnectReason::Closed);
    assert!(room.pending_timers().is_empty());
}

#[test]
fn awareness_timeout_zero_never_expires() {
    let mut room = room_with(json!({"awareness_timeout_ms": 0}));
    let a = room.connect();
    room.message(a, awareness_frame(11, 1, ALICE_STATE));
    assert!(room.pending_timers().is_empty());
    room.advance(Duration::from_secs(3600));
    assert_eq!(room.service().presence().len(), 1);
}

#[test]
fn an_oversized_state_is_dropped_and_the_client_stays() {
    let mut room = room_with(json!({"max_awareness_bytes": 64}));
    let a = room.connect();
    let b = room.connect();
    room.take_all();
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(100));
    room.message(a, awareness_frame(11, 1, &big));
    assert!(room.closed().is_empty(), "{:?}", room.closed());
    assert!(room.take_sent(b).is_empty());
    assert!(room.service().presence().is_empty());
    assert!(
        room.logs()
            .iter()
            .any(|(_, line)| line.contains("awareness state of 11 is 111 bytes")),
        "{:?}",
        room.logs()
    );
    // The other entries of the same frame are applied.
    room.message(
        a,
        protocol::awareness(awareness_update(&[(11, 2, &big), (12, 1, BOB_STATE)])),
    );
    assert_eq!(
        awareness_entries(&received(&mut room, b)),
        [(12, 1, BOB_STATE.to_owned())]
    );
    assert!(room.closed().is_empty());
}

#[test]
fn a_state_that_is_not_json_closes_with_4400() {
    let mut room = room();
    let a = room.connect();
    room.message(
        a,
        protocol::awareness(awareness_update(&[(11, 1, ALICE_STATE), (12, 1, "{nope")])),
    );
    assert_eq!(room.closed()[0].1, crate::CLOSE_MALFORMED);
    assert!(room.service().presence().is_empty(), "nothing applied");
}

#[test]
fn states_with_lone_surrogates_are_accepted() {
    // JSON.stringify emits a lone surrogate as an escape: a name cut inside
    // an emoji, for example. It is valid JSON, and y-protocols accepts it.
    let state = r#"{"user":{"name":"ada \ud83d"}}"#;
    let mut room = room();
    let a = room.connect();
    let b = room.connect();
    room.take_all();
    room.message(a, awareness_frame(11, 1, state));
    assert!(room.closed().is_empty(), "{:?}", room.closed());
    assert_eq!(
        awareness_entries(&received(&mut room, b)),
        [(11, 1, state.to_owned())],
        "relayed byte for byte"
    );
    assert_eq!(
        presence(&mut room),
        json!([{"client": 11, "state": {"user": {"name": "ada \u{fffd}"}}}])
    );
    // A null with whitespace around it is still a removal.
    room.message(a, awareness_frame(11, 1, " null\n"));
    assert!(room.service().presence().is_empty());
}

fn warned(room: &TestRoom<Collab>, needle: &str) -> bool {
    room.logs()
        .iter()
        .any(|(level, line)| *level == roomhost_sdk::LogLevel::Warn && line.contains(needle))
}

#[test]
fn a_connection_controls_at_most_four_ids() {
    let mut room = room();
    let a = room.connect();
    let b = room.connect();
    room.take_all();
    let five: Vec<(u64, u32, &str)> = (1..=5).map(|id| (id, 1, ALICE_STATE)).collect();
    room.message(a, protocol::awareness(awareness_update(&five)));
    let ids: Vec<u64> = awareness_entries(&received(&mut room, b))
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert!(warned(&room, "max_awareness_per_connection"));
    assert!(room.closed().is_empty());
    // Renewals of its own ids are fine; a removal frees a place.
    room.message(a, awareness_frame(4, 2, ALICE_STATE));
    room.message(a, awareness_frame(5, 2, ALICE_STATE));
    assert_eq!(awareness_entries(&received(&mut room, b)).len(), 1);
    room.message(a, awareness_frame(1, 1, "null"));
    room.message(a, awareness_frame(5, 2, ALICE_STATE));
    assert_eq!(room.service().presence().len(), 4);
    assert!(room.service().presence().live().any(|(id, _)| id == 5));
    // Another connection may take an id over (a client that reconnected).
    room.message(b, awareness_frame(2, 2, BOB_STATE));
    assert_eq!(
        room.service().presence().owners().find(|(id, _)| *id == 2),
        Some((2, b))
    );
}

#[test]
fn a_room_holds_at_most_max_awareness_states() {
    let mut room = room_with(json!({"max_awareness_states": 3}));
    let (a, b, c) = (room.connect(), room.connect(), room.connect());
    room.message(
        a,
        protocol::awareness(awareness_update(&[(1, 1, "{}"), (2, 1, "{}")])),
    );
    room.message(b, awareness_frame(3, 1, "{}"));
    room.take_all();
    room.message(c, awareness_frame(4, 1, "{}"));
    assert!(room.take_all().is_empty(), "dropped");
    assert!(warned(&room, "max_awareness_states"));
    assert_eq!(room.service().presence().len(), 3);
    // Renewals go on.
    room.message(a, awareness_frame(1, 2, "{}"));
    assert_eq!(awareness_entries(&received(&mut room, c)).len(), 1);
    // Once b left there is room again.
    room.disconnect(b, DisconnectReason::Closed);
    room.message(c, awareness_frame(4, 1, "{}"));
    assert!(room.service().presence().live().any(|(id, _)| id == 4));
    assert!(room.closed().is_empty());
}

#[test]
fn removals_of_unknown_ids_are_not_stored() {
    let mut room = room();
    let a = room.connect();
    room.take_all();
    room.message(a, awareness_frame(99, 5, "null"));
    assert!(room.take_all().is_empty());
    assert_eq!(room.service().presence().entries().count(), 0);
    // So they cannot hold a clock against the id's real states.
    room.message(a, awareness_frame(99, 1, ALICE_STATE));
    assert_eq!(room.service().presence().len(), 1);
}

#[test]
fn removed_entries_are_forgotten_after_the_timeout() {
    let mut room = room();
    let a = room.connect();
    room.message(a, awareness_frame(11, 3, ALICE_STATE));
    room.message(a, awareness_frame(11, 3, "null"));
    assert_eq!(
        room.service().presence().entries().count(),
        1,
        "kept for its clock"
    );
    room.advance(Duration::from_secs(29));
    room.message(a, awareness_frame(12, 1, BOB_STATE));
    assert_eq!(room.service().presence().entries().count(), 2);
    room.advance(Duration::from_secs(1));
    room.message(a, awareness_frame(12, 2, BOB_STATE));
    let ids: Vec<u64> = room
        .service()
        .presence()
        .entries()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, [12]);
}

#[test]
fn churn_cannot_grow_the_table() {
    // Every page load of a y-websocket client is a new awareness id: the
    // removed entries are capped like the live ones, timeout or not.
    let mut room = room_with(json!({"max_awareness_states": 2, "awareness_timeout_ms": 0}));
    for id in 1..=50 {
        let client = room.connect();
        room.message(client, awareness_frame(id, 1, "{}"));
        room.disconnect(client, DisconnectReason::Closed);
    }
    let a = room.connect();
    room.message(a, awareness_frame(100, 1, "{}"));
    assert!(room.service().presence().entries().count() <= 4);
}

#[test]
fn a_newcomer_gets_every_state_in_frames_within_the_limit() {
    // 8 states of 15 KB: 120 KB, beyond a frame limit of 64 KiB. The room
    // splits them into several awareness frames.
    let mut room = room_with(json!({"max_frame_bytes": 65536}));
    let big = |n: u64| format!(r#"{{"user":"{n}","pad":"{}"}}"#, "p".repeat(15_000));
    for owner in 0..2 {
        let client = room.connect();
        let states: Vec<String> = (0..4).map(|i| big(owner * 4 + i)).collect();
        for (i, state) in states.iter().enumerate() {
            room.message(client, awareness_frame(owner * 4 + i as u64 + 1, 1, state));
        }
    }
    room.take_all();
    let newcomer = room.connect();
    let frames = room.take_sent(newcomer);
    assert!(
        frames.len() >= 3,
        "step 1 and at least two awareness frames"
    );
    for frame in &frames {
        assert!(frame.len() <= 65536);
    }
    let ids = |frames: &[Incoming]| -> Vec<u64> {
        awareness_entries(frames)
            .into_iter()
            .map(|(id, _, _)| id)
            .collect()
    };
    let decoded: Vec<Incoming> = frames
        .into_iter()
        .map(|frame| match frame {
            Message::Binary(bytes) => protocol::decode(&bytes).expect("a frame"),
            Message::Text(_) => panic!("text"),
        })
        .collect();
    assert_eq!(ids(&decoded), (1..=8).collect::<Vec<_>>());
    room.message(newcomer, protocol::query_awareness());
    assert_eq!(
        ids(&received(&mut room, newcomer)),
        (1..=8).collect::<Vec<_>>()
    );
}

#[test]
#[should_panic(expected = "more than max_frame_bytes")]
fn an_awareness_cap_beyond_the_frame_limit_refuses_to_start() {
    room_with(json!({"max_awareness_bytes": 65536, "max_frame_bytes": 65536}));
}
