//! The relay through the SDK's harness: the lobby and sessions, every rule
//! of the protocol.

use std::time::Duration;

use roomhost_sdk::testing::{TestRoom, Transfer};
use roomhost_sdk::{ClientId, DisconnectReason, Handoff, RoomChange, RoomEntry};
use serde_json::{Value, json};

use crate::lobby::CREATE_FAILED;
use crate::session::{LEASE_TIMER, REASON_HOST_CLOSED, REASON_HOST_LEFT};
use crate::{Relay, UNKNOWN_ROOM_CODE, is_room_code};

const CODE: &str = "ABC123";

fn lobby() -> TestRoom<Relay> {
    TestRoom::<Relay>::builder().lobby(true).build()
}

fn session() -> TestRoom<Relay> {
    TestRoom::<Relay>::builder().room_id(CODE).build()
}

fn session_with(config: Value) -> TestRoom<Relay> {
    TestRoom::<Relay>::builder()
        .room_id(CODE)
        .config(&config)
        .build()
}

fn unknown_code() -> Value {
    json!({"type": "error", "message": UNKNOWN_ROOM_CODE})
}

/// Connects the host to a session and takes its `created`.
fn host(room: &mut TestRoom<Relay>) -> ClientId {
    let host = room
        .connect_with_handoff(Handoff::from_lobby("host"))
        .expect("host accepted");
    assert_eq!(
        room.take_sent_json(host),
        [json!({"type": "created", "code": CODE})]
    );
    host
}

/// Connects a viewer to a session and takes its `joined`.
fn viewer(room: &mut TestRoom<Relay>) -> ClientId {
    let viewer = room
        .connect_with_handoff(Handoff::from_lobby("viewer"))
        .expect("viewer accepted");
    assert_eq!(
        room.take_sent_json(viewer),
        [json!({"type": "joined", "code": CODE})]
    );
    viewer
}

/// A session with its host and `N` viewers, greetings taken.
fn hosted<const N: usize>() -> (TestRoom<Relay>, ClientId, [ClientId; N]) {
    let mut room = session();
    let host = host(&mut room);
    let viewers = std::array::from_fn(|_| viewer(&mut room));
    (room, host, viewers)
}

const REQUEST: &str = r#"{"type":"history_request"}"#;

fn history(commands: Value) -> Value {
    json!({"type": "history", "commands": commands})
}

// ---- the lobby ----

#[test]
fn lobby_serves_the_root() {
    let room = lobby();
    assert!(room.served_root());
    assert!(room.service().lobby().is_some());
    let taken = TestRoom::<Relay>::builder()
        .lobby(true)
        .root_taken(true)
        .build();
    assert!(!taken.served_root());
    assert!(
        taken
            .logs()
            .iter()
            .any(|(_, line)| line.contains("cannot serve the root"))
    );
}

#[test]
fn create_transfers_the_host_to_a_new_room() {
    let mut room = lobby();
    let a = room.connect();
    room.message(a, r#"{"type":"create"}"#);
    assert!(room.take_sent(a).is_empty());
    let transfers = room.take_transfers();
    assert_eq!(transfers.len(), 1);
    let Transfer {
        client,
        to,
        data,
        create,
    } = &transfers[0];
    assert_eq!((*client, data.as_slice(), *create), (a, &b"host"[..], true));
    let code = to.clone().unwrap_or_default();
    assert!(is_room_code(&code), "{code}");
    assert!(!room.is_connected(a));
    let pending: Vec<_> = room
        .service()
        .lobby()
        .map_or(vec![], |l| l.pending_codes().map(str::to_owned).collect());
    assert_eq!(pending, std::slice::from_ref(&code));

    // Until the room is reported closed, its code stays reserved.
    room.room_changed(RoomChange::Updated(RoomEntry::new(&code, 1, json!(null))));
    assert_eq!(
        room.service().lobby().map(|l| l.pending_codes().count()),
        Some(1)
    );
    room.room_changed(RoomChange::Closed(code));
    assert_eq!(
        room.service().lobby().map(|l| l.pending_codes().count()),
        Some(0)
    );
}

#[test]
fn quick_creates_get_distinct_codes() {
    let mut room = lobby();
    let a = room.connect();
    let b = room.connect();
    room.message(a, r#"{"type":"create"}"#);
    room.message(b, r#"{"type":"create"}"#);
    let transfers = room.take_transfers();
    assert_eq!(transfers.len(), 2);
    assert_ne!(transfers[0].to, transfers[1].to);
}

#[test]
fn create_avoids_live_codes() {
    // Same seed, so the first draw is the same code; once it is live, the
    // lobby picks another.
    let mut first = lobby();
    let a = first.connect();
    first.message(a, r#"{"type":"create"}"#);
    let taken = first.take_transfers()[0].to.clone().unwrap_or_default();

    let mut second = lobby();
    second.set_rooms(vec![RoomEntry::new(&taken, 1, json!({"viewers": 0}))]);
    let b = second.connect();
    second.message(b, r#"{"type":"create"}"#);
    let code = second.take_transfers()[0].to.clone().unwrap_or_default();
    assert!(is_room_code(&code));
    assert_ne!(code, taken);
}

#[test]
fn join_transfers_a_viewer_case_insensitively() {
    let mut room = lobby();
    room.set_rooms(vec![RoomEntry::new(CODE, 1, json!({"viewers": 0}))]);
    let a = room.connect();
    room.message(a, r#"{"type":"join","code":"abc123"}"#);
    assert!(room.take_sent(a).is_empty());
    assert_eq!(
        room.take_transfers(),
        [Transfer {
            client: a,
            to: Some(CODE.into()),
            data: b"viewer".to_vec(),
            create: false,
        }]
    );
}

#[test]
fn join_with_an_unknown_code_keeps_the_connection() {
    let mut room = lobby();
    room.set_rooms(vec![RoomEntry::new(CODE, 1, json!(null))]);
    let a = room.connect();
    for frame in [
        r#"{"type":"join","code":"ABC124"}"#,
        r#"{"type":"join","code":"nothex"}"#,
        r#"{"type":"join","code":"ABC1234"}"#,
        r#"{"type":"join","code":123456}"#,
        r#"{"type":"join"}"#,
    ] {
        room.message(a, frame);
        assert_eq!(room.take_sent_json(a), [unknown_code()], "{frame}");
    }
    assert!(room.take_transfers().is_empty());
    assert!(room.is_connected(a));
    // The user can retry.
    room.message(a, r#"{"type":"join","code":"ABC123"}"#);
    assert_eq!(room.take_transfers().len(), 1);
}

#[test]
fn a_viewer_bounced_by_its_room_hears_unknown_code() {
    let mut room = lobby();
    room.set_rooms(vec![RoomEntry::new(CODE, 1, json!(null))]);
    let a = room.connect();
    room.message(a, r#"{"type":"join","code":"ABC123"}"#);
    let transfer = room.take_transfers().remove(0);
    room.bounce_back(&transfer, UNKNOWN_ROOM_CODE)
        .expect("accepted back");
    assert_eq!(room.take_sent_json(a), [unknown_code()]);
    assert!(room.is_connected(a));
}

#[test]
fn a_host_bounced_by_its_new_room_hears_create_failed() {
    let mut room = lobby();
    let a = room.connect();
    room.message(a, r#"{"type":"create"}"#);
    let transfer = room.take_transfers().remove(0);
    room.bounce_back(&transfer, "this session already has a host")
        .expect("accepted back");
    assert_eq!(
        room.take_sent_json(a),
        [json!({"type": "error", "message": CREATE_FAILED})]
    );
    assert_eq!(
        room.service().lobby().map(|l| l.pending_codes().count()),
        Some(0)
    );
}

#[test]
fn lobby_ignores_other_frames() {
    let mut room = lobby();
    let a = room.connect();
    room.message(a, r#"{"type":"history_request"}"#);
    room.message(a, r#"{"type":"command","data":"x"}"#);
    room.message(a, "not json");
    room.message(a, r#"["create"]"#);
    room.message(a, vec![1u8, 2, 3]);
    assert!(room.take_all().is_empty());
    assert!(room.take_transfers().is_empty());
    assert!(room.is_connected(a));
}

#[test]
fn a_host_back_from_its_closed_room_can_create_again() {
    let mut room = lobby();
    let a = room
        .connect_with_handoff(Handoff::from_room(CODE, "closed"))
        .expect("accepted");
    assert!(room.take_sent(a).is_empty());
    room.message(a, r#"{"type":"create"}"#);
    assert_eq!(room.take_transfers().len(), 1);
}

// ---- a session ----

#[test]
fn host_and_viewers_are_greeted() {
    let mut room = session();
    assert_eq!(room.info(), Some(json!({"viewers": 0})));
    let h = host(&mut room);
    let v = viewer(&mut room);
    assert_eq!(room.info(), Some(json!({"viewers": 1})));
    // Someone connecting to /ws/relay/ABC123 by URL is a viewer too.
    let w = room.connect();
    assert_eq!(
        room.take_sent_json(w),
        [json!({"type": "joined", "code": CODE})]
    );
    assert_eq!(room.info(), Some(json!({"viewers": 2})));
    let session = room
        .service()
        .room()
        .map(|s| (s.host(), s.viewers().collect::<Vec<_>>()));
    assert_eq!(session, Some((Some(h), vec![v, w])));
}

#[test]
fn a_second_host_is_rejected() {
    let mut room = session();
    host(&mut room);
    assert!(
        room.connect_with_handoff(Handoff::from_lobby("host"))
            .is_err()
    );
}

#[test]
fn a_room_that_is_not_a_code_rejects_everyone() {
    let mut room = TestRoom::<Relay>::builder().room_id("lowercase").build();
    assert_eq!(room.try_connect("").unwrap_err(), UNKNOWN_ROOM_CODE);
    assert!(
        room.connect_with_handoff(Handoff::from_lobby("host"))
            .is_err()
    );
}

#[test]
fn commands_and_activations_reach_every_viewer_unchanged() {
    let (mut room, h, [v1, v2]) = hosted();
    let command = r#"{ "type": "command",  "data": "show cartoon", "extra": 1 }"#;
    let activate = r#"{"type":"activate","data":"1abc"}"#;
    room.message(h, command);
    room.message(h, activate);
    for v in [v1, v2] {
        assert_eq!(room.take_sent(v), [command, activate]);
    }
    assert!(room.take_sent(h).is_empty());
    assert_eq!(room.service().room().map(|s| s.record().len()), Some(2));
}

#[test]
fn history_requests_go_to_the_host_and_back() {
    let (mut room, h, [v]) = hosted();
    let request = r#"{"type": "history_request"}"#;
    room.message(v, request);
    assert_eq!(room.take_sent(h), [request]);
    assert_eq!(room.pending_timers(), [(0, Duration::from_secs(2))]);
    let reply = r#"{"type":"history","commands":["load 1abc","color red"]}"#;
    room.message(h, reply);
    assert_eq!(room.take_sent(v), [reply]);
    assert!(room.pending_timers().is_empty());
    // A late answer with nobody waiting goes nowhere.
    room.message(h, reply);
    assert!(room.take_all().is_empty());
}

#[test]
fn a_slow_host_is_answered_for_from_the_record() {
    let mut room = session();
    let h = host(&mut room);
    room.message(h, r#"{"type":"command","data":"load 1abc"}"#);
    room.message(h, r#"{"type":"activate","data":"1abc"}"#);
    room.message(h, r#"{"type":"command","data":"color red"}"#);
    let v = viewer(&mut room);
    room.message(v, REQUEST);
    room.take_sent(h);
    room.advance(Duration::from_millis(1999));
    assert!(room.take_sent(v).is_empty());
    room.advance(Duration::from_millis(1));
    assert_eq!(
        room.take_sent_json(v),
        [history(json!([
            "load 1abc",
            {"type": "activate", "data": "1abc"},
            "color red"
        ]))]
    );
    // The host's answer comes too late: nobody is waiting any more.
    room.message(h, r#"{"type":"history","commands":[]}"#);
    assert!(room.take_sent(v).is_empty());
}

#[test]
fn the_timeout_is_configurable() {
    let mut room = session_with(json!({"history_timeout_ms": 50}));
    let h = host(&mut room);
    let v = viewer(&mut room);
    room.message(v, REQUEST);
    room.take_sent(h);
    room.advance(Duration::from_millis(50));
    assert_eq!(room.take_sent_json(v), [history(json!([]))]);
}

#[test]
fn without_a_host_the_record_answers_at_once() {
    let mut room = session();
    let v = room.connect();
    room.take_sent(v);
    room.message(v, REQUEST);
    assert_eq!(room.take_sent_json(v), [history(json!([]))]);
    assert!(room.pending_timers().is_empty());
}

#[test]
fn history_replies_go_to_waiting_viewers_in_order() {
    let (mut room, h, [v1, v2]) = hosted();
    room.message(v1, REQUEST);
    room.message(v2, REQUEST);
    assert_eq!(room.take_sent(h).len(), 2);
    room.message(h, r#"{"type":"history","commands":["first"]}"#);
    room.message(h, r#"{"type":"history","commands":["second"]}"#);
    assert_eq!(room.take_sent_json(v1), [history(json!(["first"]))]);
    assert_eq!(room.take_sent_json(v2), [history(json!(["second"]))]);
    assert!(room.pending_timers().is_empty());
}

#[test]
fn a_departed_viewer_leaves_the_queue() {
    let (mut room, h, [v1, v2]) = hosted();
    room.message(v1, REQUEST);
    room.message(v2, REQUEST);
    room.disconnect(v1, DisconnectReason::Closed);
    assert_eq!(room.pending_timers().len(), 1);
    room.message(h, r#"{"type":"history","commands":["x"]}"#);
    assert_eq!(room.take_sent_json(v2), [history(json!(["x"]))]);
    assert!(room.pending_timers().is_empty());
}

#[test]
fn one_timeout_does_not_disturb_the_next_request() {
    let mut room = session();
    let h = host(&mut room);
    room.message(h, r#"{"type":"command","data":"c1"}"#);
    let v1 = viewer(&mut room);
    let v2 = viewer(&mut room);
    room.message(v1, REQUEST);
    room.advance(Duration::from_secs(1));
    room.message(v2, REQUEST);
    room.advance(Duration::from_millis(500));
    // The host answers once: the oldest waiting viewer gets it.
    room.message(h, r#"{"type":"history","commands":["from host"]}"#);
    assert_eq!(room.take_sent_json(v1), [history(json!(["from host"]))]);
    room.advance(Duration::from_millis(1500));
    assert_eq!(room.take_sent_json(v2), [history(json!(["c1"]))]);
}

#[test]
fn viewer_frames_other_than_history_requests_are_ignored() {
    let (mut room, h, [v1, v2]) = hosted();
    room.message(v1, r#"{"type":"command","data":"rm all"}"#);
    room.message(v1, r#"{"type":"close"}"#);
    room.message(v1, r#"{"type":"history","commands":[]}"#);
    room.message(v1, "garbage");
    room.message(v1, vec![0u8]);
    assert!(room.take_all().is_empty());
    assert_eq!(room.service().room().map(|s| s.record().len()), Some(0));
    assert!(room.is_connected(h) && room.is_connected(v2));
}

#[test]
fn host_close_ends_the_session() {
    let (mut room, h, [v1, v2]) = hosted();
    room.message(h, r#"{"type":"command","data":"c1"}"#);
    room.message(v1, REQUEST);
    room.take_all();
    room.message(h, r#"{"type":"close"}"#);
    let closed = json!({"type": "closed", "reason": REASON_HOST_CLOSED});
    assert_eq!(room.take_sent_json(v1), std::slice::from_ref(&closed));
    assert_eq!(room.take_sent_json(v2), [closed]);
    assert_eq!(
        room.closed(),
        [
            (v1, 1000, REASON_HOST_CLOSED.to_owned()),
            (v2, 1000, REASON_HOST_CLOSED.to_owned()),
        ]
    );
    assert_eq!(
        room.take_transfers(),
        [Transfer {
            client: h,
            to: None,
            data: b"closed".to_vec(),
            create: true,
        }]
    );
    // Nothing keeps the room alive.
    assert!(room.clients().is_empty());
    assert!(room.pending_timers().is_empty());
    assert_eq!(room.info(), Some(json!({"viewers": 0})));
    assert_eq!(room.service().room().map(|s| s.has_ended()), Some(true));
    assert!(room.try_connect("").is_err());
}

#[test]
fn host_departure_ends_the_session() {
    let (mut room, h, [v]) = hosted();
    room.message(v, REQUEST);
    room.take_all();
    room.disconnect(h, DisconnectReason::Lost);
    assert_eq!(
        room.take_sent_json(v),
        [json!({"type": "closed", "reason": REASON_HOST_LEFT})]
    );
    assert_eq!(room.closed(), [(v, 1000, REASON_HOST_LEFT.to_owned())]);
    assert!(room.take_transfers().is_empty());
    assert!(room.clients().is_empty());
    assert!(room.pending_timers().is_empty());
}

#[test]
fn a_viewer_leaving_changes_nothing_for_the_others() {
    let (mut room, h, [v1, v2]) = hosted();
    room.disconnect(v1, DisconnectReason::Closed);
    assert!(room.take_all().is_empty());
    assert_eq!(room.info(), Some(json!({"viewers": 1})));
    room.message(h, r#"{"type":"command","data":"c"}"#);
    assert_eq!(room.take_sent(v2), [r#"{"type":"command","data":"c"}"#]);
}

#[test]
fn the_record_is_bounded_by_entries() {
    let mut room = session_with(json!({"max_record_entries": 3}));
    let h = host(&mut room);
    for i in 0..5 {
        room.message(h, format!(r#"{{"type":"command","data":"c{i}"}}"#));
    }
    let v = viewer(&mut room);
    room.message(v, REQUEST);
    room.advance(Duration::from_secs(2));
    assert_eq!(room.take_sent_json(v), [history(json!(["c2", "c3", "c4"]))]);
}

#[test]
fn the_record_is_bounded_by_bytes() {
    // Each "cN" data is 4 bytes of JSON text.
    let mut room = session_with(json!({"max_record_bytes": 9}));
    let h = host(&mut room);
    for i in 0..5 {
        room.message(h, format!(r#"{{"type":"command","data":"c{i}"}}"#));
    }
    let v = viewer(&mut room);
    room.message(v, REQUEST);
    room.advance(Duration::from_secs(2));
    assert_eq!(room.take_sent_json(v), [history(json!(["c3", "c4"]))]);
    assert_eq!(room.service().room().map(|s| s.record().bytes()), Some(8));
}

#[test]
fn default_bounds_are_the_protocols() {
    let mut room = session();
    let h = host(&mut room);
    for i in 0..10_005 {
        room.message(h, format!(r#"{{"type":"command","data":"{i}"}}"#));
    }
    let record = room.service().room().map(|s| s.record().len());
    assert_eq!(record, Some(10_000));
}

#[test]
fn an_invalid_config_refuses_to_start() {
    for lobby in [false, true] {
        let started = TestRoom::<Relay>::builder()
            .lobby(lobby)
            .room_id(CODE)
            .raw_config(r#"{"history_timeout_ms": "soon"}"#)
            .try_build();
        let reason = started.err().unwrap_or_default();
        assert!(reason.starts_with("invalid relay config"), "{reason}");
    }
}

/// The whole codemol flow across the lobby and a session.
#[test]
fn create_join_stream_and_close() {
    let mut lobby = lobby();
    let host_client = lobby.connect();
    lobby.message(host_client, r#"{"type":"create"}"#);
    let to_room = lobby.take_transfers().remove(0);
    let code = to_room.to.clone().unwrap_or_default();

    let mut room = TestRoom::<Relay>::builder().room_id(&code).build();
    let h = room
        .connect_with_handoff(Handoff::from_lobby(to_room.data.clone()))
        .expect("host accepted");
    assert_eq!(
        room.take_sent_json(h),
        [json!({"type": "created", "code": code})]
    );
    room.message(h, r#"{"type":"command","data":"load 1abc"}"#);

    lobby.set_rooms(vec![RoomEntry::new(&code, 1, json!({"viewers": 0}))]);
    let viewer_client = lobby.connect();
    lobby.message(
        viewer_client,
        json!({"type": "join", "code": code.to_lowercase()}).to_string(),
    );
    let to_session = lobby.take_transfers().remove(0);
    assert_eq!(to_session.data, b"viewer");
    let v = room
        .connect_with_handoff(Handoff::from_lobby(to_session.data.clone()))
        .expect("viewer accepted");
    assert_eq!(
        room.take_sent_json(v),
        [json!({"type": "joined", "code": code})]
    );
    room.message(v, REQUEST);
    room.message(h, r#"{"type":"history","commands":["load 1abc"]}"#);
    assert_eq!(room.take_sent_json(v), [history(json!(["load 1abc"]))]);

    room.message(h, r#"{"type":"close"}"#);
    let back = room.take_transfers().remove(0);
    assert_eq!(back.to, None);
    let again = lobby
        .connect_with_handoff(Handoff::from_room(&code, back.data))
        .expect("back in the lobby");
    assert!(lobby.take_sent(again).is_empty());
    lobby.room_changed(RoomChange::Closed(code));
    assert_eq!(
        lobby.service().lobby().map(|l| l.pending_codes().count()),
        Some(0)
    );
    // On the wire, `type` comes first.
    assert_eq!(
        room.take_sent(v),
        [r#"{"type":"closed","reason":"Host closed the session"}"#]
    );
}

// ---- the record in storage ----

/// How many record entries the session's storage holds.
fn stored_entries(room: &TestRoom<Relay>) -> usize {
    room.storage()
        .entries()
        .filter(|(key, _)| key.starts_with(crate::persist::PREFIX.as_bytes()))
        .count()
}

/// A session whose storage holds at most `bytes`.
fn session_storing(bytes: usize) -> TestRoom<Relay> {
    TestRoom::<Relay>::builder()
        .room_id(CODE)
        .max_room_storage_bytes(bytes)
        .build()
}

/// The history a viewer gets from the record of a session without a host.
fn history_without_host(room: &mut TestRoom<Relay>) -> Vec<Value> {
    let v = viewer(room);
    room.message(v, REQUEST);
    room.take_sent_json(v)
}

#[test]
fn the_record_survives_a_restart() {
    let (mut room, h, [v]) = hosted();
    room.message(h, r#"{"type":"command","data":"load 1abc"}"#);
    room.message(h, r#"{"type":"activate","data":{"id":"1abc"}}"#);
    room.message(h, r#"{"type":"command","data":"color red"}"#);
    room.take_sent(v);
    room.restart().expect("the session starts again");
    assert!(!room.is_connected(h));
    assert_eq!(room.service().room().map(|s| s.record().len()), Some(3));
    // No host: the record answers at once, as before the restart.
    assert_eq!(
        history_without_host(&mut room),
        [history(json!([
            "load 1abc",
            {"type": "activate", "data": {"id": "1abc"}},
            "color red"
        ]))]
    );
    // The next frames count on after the stored ones.
    let h = host(&mut room);
    room.message(h, r#"{"type":"command","data":"spin"}"#);
    room.restart().expect("the session starts again");
    assert_eq!(
        history_without_host(&mut room),
        [history(json!([
            "load 1abc",
            {"type": "activate", "data": {"id": "1abc"}},
            "color red",
            "spin"
        ]))]
    );
}

#[test]
fn an_ended_session_deletes_its_stored_record() {
    for ending in [r#"{"type":"close"}"#, ""] {
        let (mut room, h, [_v]) = hosted();
        room.message(h, r#"{"type":"command","data":"load 1abc"}"#);
        assert_eq!(stored_entries(&room), 1);
        if ending.is_empty() {
            room.disconnect(h, DisconnectReason::Closed);
        } else {
            room.message(h, ending);
        }
        assert_eq!(room.storage().bytes(), 0, "after {ending:?}");
    }
}

#[test]
fn the_stored_record_stays_within_the_record_bounds() {
    let mut room = session_with(json!({"max_record_entries": 5, "max_record_bytes": 100}));
    let h = host(&mut room);
    for i in 0..200 {
        room.message(
            h,
            json!({"type": "command", "data": format!("cmd {i}")}).to_string(),
        );
        let record = room.service().room().map(|s| s.record().len());
        assert_eq!(Some(stored_entries(&room)), record);
        assert!(room.storage().bytes() <= 5 * (18 + 1 + 100));
    }
    room.restart().expect("the session starts again");
    assert_eq!(
        history_without_host(&mut room),
        [history(json!([
            "cmd 195", "cmd 196", "cmd 197", "cmd 198", "cmd 199"
        ]))]
    );
}

#[test]
fn a_full_storage_drops_the_oldest_entries() {
    let mut room = session_storing(300);
    let h = host(&mut room);
    let v = viewer(&mut room);
    for i in 0..30 {
        let frame = json!({"type": "command", "data": format!("command number {i:02}")});
        room.message(h, frame.to_string());
        // Relayed whatever storage says.
        assert_eq!(room.take_sent_json(v), [frame]);
        let record = room.service().room().map(|s| s.record().len());
        assert_eq!(
            Some(stored_entries(&room)),
            record,
            "the record is what is stored"
        );
        assert!(room.storage().bytes() <= 300);
    }
    let kept = stored_entries(&room);
    assert!((5..30).contains(&kept), "{kept} entries kept");
    room.restart().expect("the session starts again");
    let expected: Vec<String> = (30 - kept..30)
        .map(|i| format!("command number {i:02}"))
        .collect();
    assert_eq!(history_without_host(&mut room), [history(json!(expected))]);
}

#[test]
fn an_entry_storage_cannot_hold_is_relayed_but_not_recorded() {
    let mut room = session_storing(100);
    let h = host(&mut room);
    let v = viewer(&mut room);
    room.message(h, r#"{"type":"command","data":"small"}"#);
    let big = json!({"type": "command", "data": "x".repeat(200)});
    room.message(h, big.to_string());
    assert_eq!(
        room.take_sent_json(v),
        [json!({"type": "command", "data": "small"}), big]
    );
    // The big entry is not recorded, and the record keeps what it had.
    assert_eq!(room.service().room().map(|s| s.record().len()), Some(1));
    assert_eq!(stored_entries(&room), 1);
    assert!(
        room.logs()
            .iter()
            .any(|(_, line)| line.contains("relayed but not recorded"))
    );
}

#[test]
fn a_restored_session_ends_when_its_stored_record_expires() {
    let (mut room, h, [_]) = hosted();
    room.message(h, r#"{"type":"command","data":"load 1abc"}"#);
    let hour = Duration::from_millis(crate::DEFAULT_STORED_RECORD_MS);
    assert_eq!(room.pending_timers(), [(LEASE_TIMER, hour)]);
    room.advance(hour / 4);
    room.restart().expect("the session starts again");
    // The durable timer is still due an hour after the host's last frame.
    assert_eq!(room.pending_timers(), [(LEASE_TIMER, hour * 3 / 4)]);
    let v = viewer(&mut room);
    room.message(v, REQUEST);
    assert_eq!(room.take_sent_json(v), [history(json!(["load 1abc"]))]);
    room.advance(hour * 3 / 4);
    assert_eq!(
        room.take_sent_json(v),
        [json!({"type": "closed", "reason": REASON_HOST_LEFT})]
    );
    assert!(!room.is_connected(v));
    assert_eq!(room.storage().bytes(), 0);
    assert!(room.pending_timers().is_empty());
}

#[test]
fn the_stored_record_is_kept_while_the_host_is_connected() {
    let mut room = session_with(json!({"stored_record_ms": 1000}));
    let h = host(&mut room);
    let v = viewer(&mut room);
    room.message(h, r#"{"type":"command","data":"a"}"#);
    // A quiet host: the lease runs out and is renewed.
    room.advance(Duration::from_millis(2500));
    assert_eq!(stored_entries(&room), 1);
    assert!(room.is_connected(v));
    // Frames renew it once half of it has passed (renewed at 2000: due in
    // 500 ms now), not before.
    room.message(h, r#"{"type":"command","data":"b"}"#);
    assert_eq!(
        room.pending_timers(),
        [(LEASE_TIMER, Duration::from_millis(1000))]
    );
    room.advance(Duration::from_millis(100));
    room.message(h, r#"{"type":"command","data":"c"}"#);
    assert_eq!(
        room.pending_timers(),
        [(LEASE_TIMER, Duration::from_millis(900))]
    );
    assert_eq!(stored_entries(&room), 3);
}

#[test]
fn a_zero_stored_record_time_is_refused() {
    let started = TestRoom::<Relay>::builder()
        .room_id(CODE)
        .config(&json!({"stored_record_ms": 0}))
        .try_build();
    assert!(started.is_err_and(|reason| reason.contains("stored_record_ms")));
}
