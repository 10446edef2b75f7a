//! The plugin through the SDK's native harness: the lobby and a party are
//! each driven as one room, with transfers between them played by the
//! test.

use std::time::Duration;

use roomhost_sdk::testing::{TestAuth, TestRoom, Transfer};
use roomhost_sdk::{ClientId, DisconnectReason, Handoff, Message, RoomChange, RoomEntry};
use serde_json::{Value, json};

use crate::WatchParty;
use crate::common::{SILENCE_CLOSE_CODE, TIMER_SWEEP};
use crate::directory::PartyInfo;
use crate::envelope::{
    AUTH_FAILED, AUTH_REQUIRED, INVALID_FORMAT, RATE_LIMITED, REASON_HOST_LEFT, REASON_NEW_ROOM,
    ROOM_FULL, TOO_LARGE, UNKNOWN_TYPE, client_id,
};
use crate::party::TIMER_PENDING_PLAY;
use crate::profile::{CreateRequest, Intent, Profile, Transit};

const PARTY: &str = "0b9f6d1e-33c2-4c1a-9a57-5a8f1e2d3c4b";
const OTHER: &str = "7d3c2b1a-0f9e-4d8c-8b7a-695847362514";
const MEDIA: &str = "0123456789abcdef0123456789abcdef";

type Harness = TestRoom<WatchParty>;

/// A client frame: `{type, room?, payload, ts}`.
fn frame(kind: &str, room: Option<&str>, payload: Value) -> String {
    let mut frame = json!({ "type": kind, "payload": payload, "ts": 1 });
    if let (Some(room), Some(object)) = (room, frame.as_object_mut()) {
        object.insert("room".into(), json!(room));
    }
    frame.to_string()
}

fn types(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or("?"))
        .collect()
}

/// The frames of type `kind` among `frames`.
fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

fn error_messages(frames: &[Value]) -> Vec<&str> {
    of_type(frames, "error")
        .into_iter()
        .map(|f| f["payload"]["message"].as_str().unwrap_or("?"))
        .collect()
}

fn transit(transfer: &Transfer) -> Transit {
    match Transit::decode(&transfer.data) {
        Some(transit) => transit,
        None => panic!("the hand-off of {transfer:?} is not a transit"),
    }
}

fn lobby() -> Harness {
    TestRoom::builder().lobby(true).build()
}

fn lobby_with_auth(auth: TestAuth) -> Harness {
    TestRoom::builder().lobby(true).auth(auth).build()
}

/// A lobby client past its greeting.
fn greeted(lobby: &mut Harness) -> ClientId {
    let client = lobby.connect();
    lobby.take_sent(client);
    client
}

/// The directory entry of an open party with `count` members.
fn party_entry(id: &str, count: usize, members: Vec<ClientId>, created_at: u64) -> RoomEntry {
    let info = PartyInfo {
        id: id.into(),
        name: format!("Room de {id}"),
        count,
        media_id: None,
        members,
        created_at,
        closed: false,
    };
    RoomEntry::new(
        id,
        u32::try_from(count).unwrap_or(u32::MAX),
        serde_json::to_value(info).unwrap_or_default(),
    )
}

fn named(name: &str) -> Profile {
    let mut profile = Profile::new(roomhost_sdk::testing::DEFAULT_START_MS);
    profile.user_name = Some(name.into());
    profile
}

fn create_handoff(name: &str, request: CreateRequest) -> Handoff {
    let transit = Transit {
        profile: named(name),
        intent: Intent::Create { request },
    };
    Handoff::from_lobby(transit.encode())
}

fn join_handoff(name: &str) -> Handoff {
    let transit = Transit {
        profile: named(name),
        intent: Intent::Join { room: PARTY.into() },
    };
    Handoff::from_lobby(transit.encode())
}

fn party_with(config: Value) -> Harness {
    TestRoom::builder().room_id(PARTY).config(&config).build()
}

/// A party hosted by "Alice" at 12.5 s of `MEDIA`; returns it and the host.
fn party() -> (Harness, ClientId) {
    party_hosted(Value::Null)
}

fn party_hosted(config: Value) -> (Harness, ClientId) {
    let mut party = party_with(config);
    let request = CreateRequest {
        start_pos: 12.5,
        media_id: Some(MEDIA.into()),
        name: None,
    };
    let host = match party.connect_with_handoff(create_handoff("Alice", request)) {
        Ok(host) => host,
        Err(reason) => panic!("the host was rejected: {reason}"),
    };
    (party, host)
}

fn join(party: &mut Harness, name: &str) -> ClientId {
    match party.connect_with_handoff(join_handoff(name)) {
        Ok(client) => client,
        Err(reason) => panic!("{name} was rejected: {reason}"),
    }
}

/// A party with a host and `n` members, every frame so far taken.
fn party_of(n: usize) -> (Harness, ClientId, Vec<ClientId>) {
    let (mut party, host) = party();
    let members: Vec<ClientId> = (0..n).map(|i| join(&mut party, &format!("M{i}"))).collect();
    party.take_all();
    (party, host, members)
}

fn play(position: f64) -> Value {
    json!({ "action": "play", "position": position })
}

// ---------------------------------------------------------------- lobby

#[test]
fn lobby_greets_with_client_hello_then_room_list() {
    let mut lobby = lobby();
    let client = lobby.connect();
    let frames = lobby.take_sent_json(client);
    assert_eq!(types(&frames), ["client_hello", "room_list"]);
    let now = lobby.now_ms();
    assert_eq!(
        frames[0],
        json!({"type": "client_hello", "client": client_id(1), "payload": {"client_id": client_id(1)}, "ts": now, "server_ts": now})
    );
    assert_eq!(frames[1]["payload"], json!([]));
    assert!(frames[1].get("room").is_none());
}

#[test]
fn ping_is_answered_with_an_echo() {
    let mut lobby = lobby();
    let client = greeted(&mut lobby);
    lobby.advance(Duration::from_millis(250));
    lobby.message(
        client,
        r#"{"type":"ping","room":"","client":"1","payload":{"client_ts":1234},"ts":1234}"#,
    );
    let now = lobby.now_ms();
    assert_eq!(
        lobby.take_sent_json(client),
        [
            json!({"type": "pong", "room": "", "client": "1", "payload": {"client_ts": 1234}, "ts": now, "server_ts": now})
        ]
    );
    // The client's first ping has neither room nor client.
    lobby.message(
        client,
        r#"{"type":"ping","payload":{"client_ts":5},"ts":5}"#,
    );
    assert_eq!(
        lobby.take_sent_json(client),
        [json!({"type": "pong", "payload": {"client_ts": 5}, "ts": now, "server_ts": now})]
    );
}

#[test]
fn bad_frames_get_errors_and_keep_the_connection() {
    let mut lobby = lobby();
    let client = greeted(&mut lobby);
    for (frame, error) in [
        ("not json", Some(INVALID_FORMAT)),
        (r#"{"type":"ping"}"#, Some(INVALID_FORMAT)),
        (r#"{"ts":1}"#, Some(INVALID_FORMAT)),
        (r#"{"type":"ping","ts":1,"room":7}"#, Some(INVALID_FORMAT)),
        (r#"{"type":"dance","ts":1}"#, Some(UNKNOWN_TYPE)),
        (
            r#"{"type":"client_log","payload":{"category":"SYNC","message":"x"},"ts":1}"#,
            None,
        ),
        (r#"{"type":"ready","room":"","payload":{},"ts":1}"#, None),
        (
            r#"{"type":"player_event","payload":{"action":"play","position":1},"ts":1}"#,
            None,
        ),
        (
            r#"{"type":"state_update","payload":{"position":1,"play_state":"paused"},"ts":1}"#,
            None,
        ),
        (
            r#"{"type":"chat_message","payload":{"text":"hi"},"ts":1}"#,
            None,
        ),
        (r#"{"type":"leave_room","payload":{},"ts":1}"#, None),
    ] {
        lobby.message(client, frame);
        let frames = lobby.take_sent_json(client);
        match error {
            Some(error) => {
                assert_eq!(error_messages(&frames), [error], "{frame}");
                assert_eq!(frames[0]["client"], client_id(1));
                assert!(frames[0].get("room").is_none());
            }
            None => assert!(frames.is_empty(), "{frame}: {frames:?}"),
        }
    }
    lobby.message(client, Message::binary(vec![1, 2, 3]));
    assert!(lobby.take_sent(client).is_empty());
    assert!(lobby.closed().is_empty());
    assert!(lobby.take_transfers().is_empty());
}

#[test]
fn auth_off_sets_the_display_name() {
    let mut lobby = lobby();
    let client = greeted(&mut lobby);
    lobby.message(
        client,
        frame("auth", None, json!({"user_name": "Zoé", "user_id": "u1"})),
    );
    let frames = lobby.take_sent_json(client);
    assert_eq!(types(&frames), ["auth_success"]);
    assert_eq!(frames[0]["client"], client_id(1));
    assert_eq!(frames[0]["payload"], json!({"user_name": "Zoé"}));
    let profile = lobby
        .service()
        .lobby()
        .and_then(|l| l.profile(client))
        .cloned();
    assert_eq!(
        profile.as_ref().and_then(|p| p.user_id.as_deref()),
        Some("u1")
    );
    assert!(!profile.is_some_and(|p| p.authenticated));

    // Invalid names are ignored; a token is ignored with auth off.
    lobby.message(
        client,
        frame("auth", None, json!({"user_name": "a\u{1}b", "token": "t"})),
    );
    let frames = lobby.take_sent_json(client);
    assert_eq!(frames[0]["payload"], json!({"user_name": "Zoé"}));
    assert!(lobby.verified_tokens().is_empty());

    // With auth off, create needs no auth.
    lobby.message(
        client,
        frame("create_room", Some(""), json!({"start_pos": 0})),
    );
    assert_eq!(lobby.take_transfers().len(), 1);
}

#[test]
fn auth_on_requires_a_verified_token() {
    let auth = TestAuth::tokens([
        (
            "good",
            Ok(json!({"sub": "u-42", "name": "Alice", "aud": "OpenWatchParty"})),
        ),
        ("expired", Err("token expired")),
    ]);
    let mut lobby = lobby_with_auth(auth);
    lobby.set_rooms(vec![party_entry(PARTY, 1, vec![99], 0)]);
    let client = greeted(&mut lobby);

    lobby.message(
        client,
        frame("create_room", Some(""), json!({"start_pos": 0})),
    );
    lobby.message(client, frame("join_room", Some(PARTY), json!({})));
    assert_eq!(
        error_messages(&lobby.take_sent_json(client)),
        [AUTH_REQUIRED, AUTH_REQUIRED]
    );

    for payload in [
        json!({"user_name": "NoToken"}),
        json!({"token": "expired"}),
        json!({"token": "forged"}),
    ] {
        lobby.message(client, frame("auth", None, payload.clone()));
        assert_eq!(
            error_messages(&lobby.take_sent_json(client)),
            [AUTH_FAILED],
            "{payload}"
        );
    }
    lobby.message(client, frame("create_room", Some(""), json!({})));
    assert_eq!(
        error_messages(&lobby.take_sent_json(client)),
        [AUTH_REQUIRED]
    );
    assert!(lobby.take_transfers().is_empty());

    lobby.message(
        client,
        frame(
            "auth",
            None,
            json!({"token": "good", "user_name": "Mallory"}),
        ),
    );
    let frames = lobby.take_sent_json(client);
    assert_eq!(types(&frames), ["auth_success"]);
    assert_eq!(frames[0]["payload"], json!({"user_name": "Alice"}));
    assert_eq!(lobby.verified_tokens(), ["expired", "forged", "good"]);

    // A failed refresh keeps the earlier authentication.
    lobby.message(client, frame("auth", None, json!({"token": "expired"})));
    assert_eq!(error_messages(&lobby.take_sent_json(client)), [AUTH_FAILED]);

    // The token's name wins over the payload's.
    lobby.message(
        client,
        frame("create_room", Some(""), json!({"user_name": "Mallory"})),
    );
    let transfers = lobby.take_transfers();
    assert_eq!(transfers.len(), 1);
    let profile = transit(&transfers[0]).profile;
    assert!(profile.authenticated);
    assert_eq!(profile.user_name.as_deref(), Some("Alice"));
    assert_eq!(profile.user_id.as_deref(), Some("u-42"));
}

#[test]
fn create_room_moves_the_client_to_a_new_party() {
    let mut lobby = lobby();
    let client = greeted(&mut lobby);
    lobby.message(
        client,
        frame(
            "create_room",
            Some(""),
            json!({"start_pos": 63.25, "media_id": MEDIA, "user_name": "Bob"}),
        ),
    );
    let transfers = lobby.take_transfers();
    assert_eq!(transfers.len(), 1);
    let transfer = &transfers[0];
    assert_eq!(transfer.client, client);
    assert!(transfer.create);
    let id = transfer.to.clone().unwrap_or_default();
    let bytes: Vec<char> = id.chars().collect();
    assert_eq!(bytes.len(), 36, "{id}");
    assert_eq!(
        (bytes[8], bytes[13], bytes[14], bytes[18], bytes[23]),
        ('-', '-', '4', '-', '-')
    );
    assert!(matches!(bytes[19], '8' | '9' | 'a' | 'b'), "{id}");
    let transit = transit(transfer);
    assert_eq!(transit.profile.user_name.as_deref(), Some("Bob"));
    assert_eq!(
        transit.intent,
        Intent::Create {
            request: CreateRequest {
                start_pos: 63.25,
                media_id: Some(MEDIA.into()),
                name: None
            }
        }
    );
    assert!(!lobby.is_connected(client));
    assert!(lobby.take_sent(client).is_empty());

    // Two creates get two different parties.
    let other = greeted(&mut lobby);
    lobby.message(
        other,
        frame("create_room", Some(""), json!({"start_pos": 0})),
    );
    let second = lobby.take_transfers();
    assert_ne!(second[0].to, transfer.to);
}

#[test]
fn join_room_moves_the_client_to_a_known_party_that_has_room() {
    let mut lobby = lobby();
    lobby.set_rooms(vec![
        party_entry(PARTY, 3, vec![90, 91, 92], 1),
        party_entry(OTHER, 20, (100..120).collect(), 2),
    ]);
    lobby.room_changed(RoomChange::Updated(party_entry(
        PARTY,
        3,
        vec![90, 91, 92],
        1,
    )));
    lobby.room_changed(RoomChange::Updated(party_entry(
        OTHER,
        20,
        (100..120).collect(),
        2,
    )));
    let client = greeted(&mut lobby);

    // Unknown party: ignored.
    lobby.message(client, frame("join_room", Some("nope"), json!({})));
    lobby.message(client, frame("join_room", None, json!({})));
    assert!(lobby.take_sent(client).is_empty());
    assert!(lobby.take_transfers().is_empty());

    // Full party: an error naming it.
    lobby.message(client, frame("join_room", Some(OTHER), json!({})));
    let frames = lobby.take_sent_json(client);
    assert_eq!(error_messages(&frames), [ROOM_FULL]);
    assert_eq!(frames[0]["room"], OTHER);

    lobby.message(
        client,
        frame("join_room", Some(PARTY), json!({"user_name": "Carol"})),
    );
    let transfers = lobby.take_transfers();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].to.as_deref(), Some(PARTY));
    assert!(!transfers[0].create);
    let transit = transit(&transfers[0]);
    assert_eq!(transit.intent, Intent::Join { room: PARTY.into() });
    assert_eq!(transit.profile.user_name.as_deref(), Some("Carol"));
}

#[test]
fn clients_turned_away_by_a_party_hear_why() {
    let mut lobby = lobby();
    lobby.set_rooms(vec![party_entry(PARTY, 19, (100..119).collect(), 1)]);
    lobby.room_changed(RoomChange::Updated(party_entry(
        PARTY,
        19,
        (100..119).collect(),
        1,
    )));
    let client = greeted(&mut lobby);
    lobby.message(client, frame("join_room", Some(PARTY), json!({})));
    let transfers = lobby.take_transfers();

    // The party filled up meanwhile.
    assert_eq!(lobby.bounce_back(&transfers[0], ROOM_FULL), Ok(()));
    let frames = lobby.take_sent_json(client);
    assert_eq!(error_messages(&frames), [ROOM_FULL]);
    assert_eq!(frames[0]["room"], PARTY);

    // The party ended meanwhile: ignored.
    lobby.message(client, frame("join_room", Some(PARTY), json!({})));
    let transfers = lobby.take_transfers();
    assert_eq!(lobby.bounce_back(&transfers[0], "No such party"), Ok(()));
    assert!(lobby.take_sent(client).is_empty());
    assert!(lobby.is_connected(client));
}

#[test]
fn clients_coming_back_from_a_party_carry_on() {
    let mut lobby = lobby();
    lobby.set_rooms(vec![party_entry(OTHER, 2, vec![50, 51], 1)]);
    lobby.room_changed(RoomChange::Updated(party_entry(OTHER, 2, vec![50, 51], 1)));
    lobby.take_all();

    // Back after leaving: the list, no greeting.
    let back = Transit {
        profile: named("Dan"),
        intent: Intent::Return,
    };
    let dan = lobby
        .connect_with_handoff(Handoff::from_room(PARTY, back.encode()))
        .unwrap_or_default();
    let frames = lobby.take_sent_json(dan);
    assert_eq!(types(&frames), ["room_list"]);
    assert_eq!(frames[0]["payload"][0]["id"], OTHER);
    assert_eq!(
        lobby
            .service()
            .lobby()
            .and_then(|l| l.profile(dan))
            .and_then(|p| p.user_name.clone()),
        Some("Dan".into())
    );

    // Sent to create: a new party.
    let create = Transit {
        profile: named("Eve"),
        intent: Intent::Create {
            request: CreateRequest {
                start_pos: 1.0,
                media_id: None,
                name: Some("Eve's".into()),
            },
        },
    };
    let eve = lobby
        .connect_with_handoff(Handoff::from_room(PARTY, create.encode()))
        .unwrap_or_default();
    // From its connect: the host moves it once accepted, no timer needed.
    assert!(lobby.pending_timers().iter().all(|(_, due)| !due.is_zero()));
    let transfers = lobby.take_transfers();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].client, eve);
    assert!(transfers[0].create);
    assert_eq!(transit(&transfers[0]).intent, create.intent);

    // Sent to join.
    let join = Transit {
        profile: named("Fay"),
        intent: Intent::Join { room: OTHER.into() },
    };
    let fay = lobby
        .connect_with_handoff(Handoff::from_room(PARTY, join.encode()))
        .unwrap_or_default();
    let transfers = lobby.take_transfers();
    assert_eq!(transfers[0].client, fay);
    assert_eq!(transfers[0].to.as_deref(), Some(OTHER));
}

#[test]
fn room_list_is_pushed_to_every_client_of_the_service() {
    let mut lobby = lobby();
    let a = greeted(&mut lobby);
    let b = greeted(&mut lobby);

    // Created: everyone here and the party's members get the list.
    let entry = party_entry(PARTY, 1, vec![77], 5);
    lobby.set_rooms(vec![entry.clone()]);
    lobby.room_changed(RoomChange::Updated(entry));
    let expected = json!([{"id": PARTY, "name": format!("Room de {PARTY}"), "count": 1}]);
    for client in [a, b, 77] {
        let frames = lobby.take_sent_json(client);
        assert_eq!(types(&frames), ["room_list"], "client {client}");
        assert_eq!(frames[0]["payload"], expected);
    }

    // Nothing listed changed: no push.
    lobby.room_changed(RoomChange::Updated(party_entry(PARTY, 1, vec![77], 5)));
    assert!(lobby.take_all().is_empty());

    // Count changed: pushed to the members too (old and new).
    let entry = party_entry(PARTY, 2, vec![77, 78], 5);
    lobby.room_changed(RoomChange::Updated(entry));
    for client in [a, b, 77, 78] {
        let frames = lobby.take_sent_json(client);
        assert_eq!(frames[0]["payload"][0]["count"], 2, "client {client}");
    }

    // A second party, then the first closes (listing marked closed, then gone).
    lobby.room_changed(RoomChange::Updated(party_entry(OTHER, 1, vec![80], 9)));
    let frames = lobby.take_sent_json(a);
    let ids: Vec<&Value> = frames[0]["payload"]
        .as_array()
        .map(|l| l.iter().map(|e| &e["id"]).collect())
        .unwrap_or_default();
    assert_eq!(ids, [&json!(PARTY), &json!(OTHER)]);
    lobby.take_all();
    let mut closed = party_entry(PARTY, 0, vec![], 5);
    closed.info["closed"] = json!(true);
    lobby.room_changed(RoomChange::Updated(closed));
    let frames = lobby.take_sent_json(b);
    assert_eq!(frames[0]["payload"].as_array().map(Vec::len), Some(1));
    assert_eq!(lobby.take_sent_json(80).len(), 1);
    lobby.take_all();
    lobby.room_changed(RoomChange::Closed(PARTY.into()));
    assert!(lobby.take_all().is_empty());
    lobby.room_changed(RoomChange::Closed(OTHER.into()));
    assert_eq!(lobby.take_sent_json(a)[0]["payload"], json!([]));

    // list_rooms answers the same list.
    lobby.message(a, frame("list_rooms", Some(""), json!({})));
    assert_eq!(types(&lobby.take_sent_json(a)), ["room_list"]);
}

#[test]
fn rate_limit_drops_frames_over_30_per_second() {
    let mut lobby = lobby();
    let client = greeted(&mut lobby);
    let ping = r#"{"type":"ping","payload":{},"ts":1}"#;
    for _ in 0..30 {
        lobby.message(client, ping);
    }
    assert_eq!(types(&lobby.take_sent_json(client)), ["pong"; 30]);
    lobby.message(client, ping);
    lobby.message(client, "garbage counts too");
    assert_eq!(
        error_messages(&lobby.take_sent_json(client)),
        [RATE_LIMITED, RATE_LIMITED]
    );
    lobby.advance(Duration::from_millis(1000));
    lobby.message(client, ping);
    assert_eq!(types(&lobby.take_sent_json(client)), ["pong"]);
    assert!(lobby.closed().is_empty());
}

#[test]
fn oversized_frames_are_refused() {
    let mut lobby = lobby();
    let client = greeted(&mut lobby);
    let padding = "x".repeat(64 * 1024);
    lobby.message(
        client,
        frame("client_log", None, json!({"message": padding})),
    );
    assert_eq!(error_messages(&lobby.take_sent_json(client)), [TOO_LARGE]);
    let fits = "x".repeat(64 * 1024 - 100);
    lobby.message(client, frame("client_log", None, json!({"message": fits})));
    assert!(lobby.take_sent(client).is_empty());
}

#[test]
fn silent_clients_are_dropped_after_60_seconds() {
    let mut lobby = lobby();
    let quiet = greeted(&mut lobby);
    let chatty = greeted(&mut lobby);
    for _ in 0..12 {
        lobby.advance(Duration::from_secs(5));
        lobby.message(chatty, r#"{"type":"ping","payload":{},"ts":1}"#);
    }
    assert_eq!(lobby.closed().len(), 1);
    let (client, code, _) = &lobby.closed()[0];
    assert_eq!((*client, *code), (quiet, SILENCE_CLOSE_CODE));
    assert!(lobby.is_connected(chatty));

    lobby.disconnect(chatty, DisconnectReason::Closed);
    assert!(
        lobby.pending_timers().is_empty(),
        "no sweep without clients"
    );
}

#[test]
fn silence_timeout_can_be_disabled() {
    let mut lobby = TestRoom::<WatchParty>::builder()
        .lobby(true)
        .config(&json!({"silence_timeout_ms": 0}))
        .build();
    greeted(&mut lobby);
    lobby.advance(Duration::from_secs(600));
    assert!(lobby.closed().is_empty());
    assert!(lobby.pending_timers().is_empty());
}

// ---------------------------------------------------------------- party

#[test]
fn the_host_gets_room_state_and_the_party_is_listed() {
    let (mut party, host) = party();
    let frames = party.take_sent_json(host);
    let now = party.now_ms();
    assert_eq!(
        frames,
        [json!({
            "type": "room_state", "room": PARTY, "client": client_id(1),
            "payload": {
                "name": "Room de Alice", "host_id": client_id(1),
                "state": {"position": 12.5, "play_state": "paused"},
                "participant_count": 1, "media_id": MEDIA,
            },
            "ts": now, "server_ts": now,
        })]
    );
    assert_eq!(
        party.info(),
        Some(json!({
            "id": PARTY, "name": "Room de Alice", "count": 1, "media_id": MEDIA,
            "members": [1], "created_at": now, "closed": false,
        }))
    );
    assert_eq!(
        party.pending_timers(),
        [(TIMER_SWEEP, Duration::from_secs(5))]
    );
}

#[test]
fn a_given_name_is_used_and_absent_media_omitted() {
    let mut party = party_with(Value::Null);
    let request = CreateRequest {
        start_pos: 0.0,
        media_id: None,
        name: Some("Movie night".into()),
    };
    let host = party
        .connect_with_handoff(create_handoff("Alice", request))
        .unwrap_or_default();
    let state = &party.take_sent_json(host)[0];
    assert_eq!(state["payload"]["name"], "Movie night");
    assert!(state["payload"].get("media_id").is_none());
}

#[test]
fn only_clients_from_the_lobby_get_in() {
    let (mut party, _host) = party();
    assert!(party.try_connect("").is_err(), "no hand-off");
    let again = create_handoff("Mallory", CreateRequest::from_payload(None));
    assert!(party.connect_with_handoff(again).is_err(), "a second host");
    assert!(
        party
            .connect_with_handoff(Handoff::from_lobby("junk"))
            .is_err()
    );

    // A party nobody created turns joiners away.
    let mut empty = party_with(Value::Null);
    assert!(empty.connect_with_handoff(join_handoff("Bob")).is_err());
}

#[test]
fn joiners_get_room_state_and_the_others_participants_update() {
    let (mut party, host) = party();
    party.take_all();
    let bob = join(&mut party, "Bob");
    let state = party.take_sent_json(bob);
    assert_eq!(types(&state), ["room_state"]);
    assert_eq!(state[0]["client"], client_id(bob));
    assert_eq!(state[0]["payload"]["host_id"], client_id(host));
    assert_eq!(state[0]["payload"]["participant_count"], 2);
    let update = party.take_sent_json(host);
    assert_eq!(update.len(), 1);
    assert_eq!(update[0]["type"], "participants_update");
    assert_eq!(update[0]["room"], PARTY);
    assert_eq!(update[0]["payload"], json!({"participant_count": 2}));
    assert_eq!(
        party.info().map(|i| i["members"].clone()),
        Some(json!([1, 2]))
    );
    assert!(
        !party
            .service()
            .room()
            .is_some_and(|p| p.sync().ready.contains(&bob))
    );
}

#[test]
fn a_party_holds_at_most_20_clients() {
    let (mut party, _host, _members) = party_of(19);
    assert_eq!(party.clients().len(), 20);
    assert_eq!(
        party.connect_with_handoff(join_handoff("late")),
        Err(ROOM_FULL.into())
    );

    let (mut small, _host) = party_hosted(json!({"max_clients_per_room": 2}));
    join(&mut small, "Bob");
    assert_eq!(
        small.connect_with_handoff(join_handoff("Carol")),
        Err(ROOM_FULL.into())
    );
}

#[test]
fn play_with_everyone_ready_goes_to_everyone_at_now_plus_1500() {
    let (mut party, host, members) = party_of(2);
    for &member in &members {
        party.message(
            member,
            frame(
                "ready",
                Some(PARTY),
                json!({"room": PARTY, "media_id": MEDIA}),
            ),
        );
    }
    party.advance(Duration::from_millis(10));
    party.message(host, frame("player_event", Some(PARTY), play(30.0)));
    let target = party.now_ms() + 1500;
    for client in [host, members[0], members[1]] {
        let frames = party.take_sent_json(client);
        assert_eq!(frames.len(), 1, "client {client}");
        assert_eq!(frames[0]["type"], "player_event");
        assert_eq!(frames[0]["room"], PARTY);
        assert_eq!(frames[0]["server_ts"], target);
        assert_eq!(
            frames[0]["payload"],
            json!({"action": "play", "position": 30.0, "target_server_ts": target})
        );
    }
    let sync = party.service().room().map(|p| p.sync().clone());
    assert!(sync.is_some_and(|s| s.pending.is_none() && s.position == 30.0));
}

#[test]
fn play_waits_for_the_last_ready_member() {
    let (mut party, host, members) = party_of(2);
    party.message(members[0], frame("ready", Some(PARTY), json!({})));
    party.message(host, frame("player_event", Some(PARTY), play(40.0)));
    assert!(party.take_all().is_empty(), "held");
    assert!(
        party
            .pending_timers()
            .iter()
            .any(|(id, left)| *id == TIMER_PENDING_PLAY && *left == Duration::from_millis(2000))
    );

    party.advance(Duration::from_millis(700));
    party.message(members[1], frame("ready", Some(PARTY), json!({})));
    let target = party.now_ms() + 1500;
    for client in [host, members[0], members[1]] {
        let frames = party.take_sent_json(client);
        assert_eq!(types(&frames), ["player_event"], "client {client}");
        assert_eq!(frames[0]["payload"]["target_server_ts"], target);
        assert_eq!(frames[0]["payload"]["position"], 40.0);
    }
    assert!(
        !party
            .pending_timers()
            .iter()
            .any(|(id, _)| *id == TIMER_PENDING_PLAY)
    );
    party.advance(Duration::from_secs(3));
    assert!(party.take_all().is_empty(), "played once");
}

#[test]
fn play_starts_after_2000_ms_without_everyone_ready() {
    let (mut party, host, members) = party_of(1);
    let requested = party.now_ms();
    party.message(host, frame("player_event", Some(PARTY), play(5.0)));
    party.advance(Duration::from_millis(1999));
    assert!(party.take_all().is_empty());
    party.advance(Duration::from_millis(1));
    let target = requested + 2000 + 1500;
    for client in [host, members[0]] {
        let frames = party.take_sent_json(client);
        assert_eq!(frames[0]["server_ts"], target, "client {client}");
    }
}

#[test]
fn a_new_play_replaces_the_pending_one_and_pause_cancels_it() {
    let (mut party, host, members) = party_of(1);
    party.message(host, frame("player_event", Some(PARTY), play(5.0)));
    party.advance(Duration::from_millis(1000));
    party.message(host, frame("player_event", Some(PARTY), play(6.0)));
    party.advance(Duration::from_millis(1999));
    assert!(party.take_all().is_empty());
    party.advance(Duration::from_millis(1));
    assert_eq!(
        party.take_sent_json(members[0])[0]["payload"]["position"],
        6.0
    );
    party.take_all();

    party.message(host, frame("player_event", Some(PARTY), play(7.0)));
    party.message(
        host,
        frame(
            "player_event",
            Some(PARTY),
            json!({"action": "pause", "position": 7.0}),
        ),
    );
    party.advance(Duration::from_secs(5));
    let frames = party.take_sent_json(members[0]);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["payload"]["action"], "pause");
}

#[test]
fn a_seek_moves_the_pending_play() {
    let (mut party, host, members) = party_of(1);
    party.message(host, frame("player_event", Some(PARTY), play(5.0)));
    party.message(
        host,
        frame(
            "player_event",
            Some(PARTY),
            json!({"action": "seek", "position": 90.0, "play_state": "playing"}),
        ),
    );
    party.advance(Duration::from_millis(2000));
    let frames = party.take_sent_json(members[0]);
    assert_eq!(types(&frames), ["player_event", "player_event"]);
    assert_eq!(frames[1]["payload"]["action"], "play");
    assert_eq!(frames[1]["payload"]["position"], 90.0);
}

#[test]
fn pause_seek_and_buffering_go_to_everyone_but_the_host_at_now_plus_300() {
    let (mut party, host, members) = party_of(2);
    for (payload, play_state) in [
        (json!({"action": "pause", "position": 10.0}), "paused"),
        (
            json!({"action": "seek", "position": 20.0, "play_state": "playing", "extra": 1}),
            "playing",
        ),
        (json!({"action": "seek", "position": 25.0}), "playing"),
        (json!({"action": "buffering", "position": 21.0}), "playing"),
    ] {
        party.advance(Duration::from_millis(50));
        party.message(
            host,
            r#"{"type":"player_event","room":""#.to_owned()
                + PARTY
                + r#"","payload":"#
                + &payload.to_string()
                + r#","ts":4242}"#,
        );
        let target = party.now_ms() + 300;
        assert!(party.take_sent(host).is_empty(), "{payload}");
        let mut expected = payload.clone();
        expected["target_server_ts"] = json!(target);
        for &member in &members {
            let frames = party.take_sent_json(member);
            assert_eq!(
                frames,
                [json!({
                    "type": "player_event", "room": PARTY, "client": client_id(host),
                    "payload": expected, "ts": 4242, "server_ts": target,
                })],
                "{payload}"
            );
        }
        let state = party.service().room().map(|p| p.sync().play_state.as_str());
        assert_eq!(state, Some(play_state), "{payload}");
    }
}

#[test]
fn invalid_or_foreign_control_is_ignored() {
    let (mut party, host, members) = party_of(1);
    let member = members[0];
    party.message(
        member,
        frame(
            "player_event",
            Some(PARTY),
            json!({"action": "pause", "position": 1.0}),
        ),
    );
    party.message(
        member,
        frame(
            "state_update",
            Some(PARTY),
            json!({"position": 99.0, "play_state": "playing"}),
        ),
    );
    for payload in [
        json!({"action": "rewind", "position": 1.0}),
        json!({"action": "pause"}),
        json!({"action": "pause", "position": -1.0}),
        json!({"action": "pause", "position": 86400.5}),
        json!({"action": "pause", "position": "1"}),
        json!({"action": "seek", "position": 1.0, "play_state": "stopped"}),
        json!({"position": 1.0}),
    ] {
        party.message(host, frame("player_event", Some(PARTY), payload));
    }
    for payload in [
        json!({"position": 99.0}),
        json!({"position": 99.0, "play_state": "PLAYING"}),
        json!({"position": 1e9, "play_state": "playing"}),
    ] {
        party.message(host, frame("state_update", Some(PARTY), payload));
    }
    assert!(party.take_all().is_empty());
    // Frames for another party are ignored too.
    party.message(
        host,
        frame(
            "player_event",
            Some(OTHER),
            json!({"action": "pause", "position": 1.0}),
        ),
    );
    party.message(member, frame("leave_room", Some(OTHER), json!({})));
    assert!(party.take_all().is_empty());
    assert!(party.take_transfers().is_empty());
    let sync = party.service().room().map(|p| p.sync().clone());
    assert!(sync.is_some_and(|s| s.position == 12.5 && s.last_command.is_none()));
}

/// One step of [`state_updates_are_filtered`]: what, ms since the start, a
/// `player_event` sent first (action, position), then the update's
/// position and play_state, and whether it is relayed.
type FilterStep = (
    &'static str,
    u64,
    Option<(&'static str, f64)>,
    f64,
    &'static str,
    bool,
);

/// The filter end to end, step by step.
#[test]
fn state_updates_are_filtered() {
    let (mut party, host, members) = party_of(1);
    let member = members[0];
    let start = party.now_ms();
    let steps: &[FilterStep] = &[
        ("first update, moved 1 s", 0, None, 13.5, "paused", true),
        ("too soon", 400, None, 14.5, "paused", false),
        ("500 ms later, moved 1 s", 500, None, 14.5, "paused", true),
        ("too little movement", 1000, None, 14.8, "paused", false),
        (
            "play_state change, too soon",
            1100,
            None,
            14.8,
            "playing",
            true,
        ),
        (
            "command: cooldown starts",
            2000,
            Some(("seek", 100.0)),
            100.0,
            "playing",
            false,
        ),
        ("inside cooldown", 3000, None, 101.0, "playing", false),
        ("still inside cooldown", 3999, None, 102.0, "playing", false),
        ("cooldown over", 4000, None, 102.0, "playing", true),
        (
            "state change in cooldown",
            4100,
            Some(("pause", 102.1)),
            102.1,
            "playing",
            true,
        ),
        ("after the change", 4200, None, 102.2, "playing", false),
    ];
    for &(what, at, command, position, play_state, relayed) in steps {
        let now = start + at;
        party.advance(Duration::from_millis(now - party.now_ms()));
        if let Some((action, position)) = command {
            party.message(
                host,
                frame(
                    "player_event",
                    Some(PARTY),
                    json!({"action": action, "position": position}),
                ),
            );
            party.take_all();
        }
        let payload = json!({"position": position, "play_state": play_state});
        party.message(host, frame("state_update", Some(PARTY), payload.clone()));
        let frames = party.take_sent_json(member);
        assert!(party.take_sent(host).is_empty());
        if relayed {
            assert_eq!(
                frames,
                [
                    json!({"type": "state_update", "room": PARTY, "client": client_id(host), "payload": payload, "ts": 1, "server_ts": now})
                ],
                "{what}"
            );
        } else {
            assert!(frames.is_empty(), "{what}: {frames:?}");
        }
    }
}

#[test]
fn chat_goes_to_everyone_with_the_sender_name() {
    let (mut party, host, members) = party_of(1);
    let bob = members[0];
    party.message(
        bob,
        frame("chat_message", Some(PARTY), json!({"text": "salut 👋"})),
    );
    let now = party.now_ms();
    let expected = json!({
        "type": "chat_message", "room": PARTY, "client": client_id(bob),
        "payload": {"username": "M0", "text": "salut 👋"}, "ts": now, "server_ts": now,
    });
    assert_eq!(party.take_sent_json(host), std::slice::from_ref(&expected));
    assert_eq!(party.take_sent_json(bob), [expected]);

    for text in [json!(""), json!("x".repeat(501)), json!(5), Value::Null] {
        party.message(
            host,
            frame("chat_message", Some(PARTY), json!({"text": text})),
        );
    }
    assert!(party.take_all().is_empty());
    party.message(
        host,
        frame(
            "chat_message",
            Some(PARTY),
            json!({"text": "é".repeat(500)}),
        ),
    );
    assert_eq!(party.take_all().len(), 2);
}

#[test]
fn a_member_leaving_is_announced() {
    let (mut party, host, members) = party_of(2);
    party.message(members[0], frame("leave_room", Some(PARTY), json!({})));
    let transfers = party.take_transfers();
    assert_eq!(transfers.len(), 1);
    assert_eq!(
        (transfers[0].client, transfers[0].to.clone()),
        (members[0], None)
    );
    assert_eq!(transit(&transfers[0]).intent, Intent::Return);
    assert_eq!(
        transit(&transfers[0]).profile.user_name.as_deref(),
        Some("M0")
    );
    assert!(party.take_sent(members[0]).is_empty());
    let expected = json!({
        "type": "client_left", "room": PARTY, "client": client_id(members[0]),
        "payload": {"participant_count": 2}, "ts": party.now_ms(), "server_ts": party.now_ms(),
    });
    assert_eq!(party.take_sent_json(host), std::slice::from_ref(&expected));
    assert_eq!(party.take_sent_json(members[1]), [expected]);

    party.disconnect(members[1], DisconnectReason::Lost);
    assert_eq!(
        party.take_sent_json(host)[0]["payload"]["participant_count"],
        1
    );
    assert_eq!(party.info().map(|i| i["count"].clone()), Some(json!(1)));
}

fn assert_closed(
    party: &mut Harness,
    host: ClientId,
    members: &[ClientId],
    reason: &str,
    host_told: bool,
) {
    for &member in members {
        let frames = party.take_sent_json(member);
        assert_eq!(
            frames,
            [
                json!({"type": "room_closed", "room": PARTY, "payload": {"reason": reason}, "ts": party.now_ms(), "server_ts": party.now_ms()})
            ],
            "member {member}"
        );
        assert!(!party.is_connected(member));
    }
    let host_frames = party.take_sent_json(host);
    assert_eq!(!host_frames.is_empty(), host_told, "{host_frames:?}");
    assert!(party.clients().is_empty());
    assert!(
        party.pending_timers().is_empty(),
        "a closed party holds no timers"
    );
    assert_eq!(
        party
            .info()
            .map(|i| (i["closed"].clone(), i["count"].clone())),
        Some((json!(true), json!(0)))
    );
    assert!(party.connect_with_handoff(join_handoff("late")).is_err());
}

#[test]
fn the_host_leaving_closes_the_party() {
    let (mut party, host, members) = party_of(2);
    party.message(host, frame("player_event", Some(PARTY), play(5.0)));
    party.message(host, frame("leave_room", Some(PARTY), json!({})));
    let transfers = party.take_transfers();
    let moved: Vec<(ClientId, Option<String>)> =
        transfers.iter().map(|t| (t.client, t.to.clone())).collect();
    assert_eq!(
        moved,
        [(members[0], None), (members[1], None), (host, None)]
    );
    assert!(
        transfers
            .iter()
            .all(|t| transit(t).intent == Intent::Return)
    );
    assert_closed(&mut party, host, &members, REASON_HOST_LEFT, false);
    party.advance(Duration::from_secs(5));
    assert!(
        party.take_all().is_empty(),
        "the pending play was cancelled"
    );
}

#[test]
fn the_host_disconnecting_closes_the_party() {
    let (mut party, host, members) = party_of(1);
    party.disconnect(host, DisconnectReason::Lost);
    let transfers = party.take_transfers();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].client, members[0]);
    assert_closed(&mut party, host, &members, REASON_HOST_LEFT, false);
}

#[test]
fn creating_while_hosting_closes_the_old_party() {
    let (mut party, host, members) = party_of(1);
    party.message(
        host,
        frame(
            "create_room",
            Some(PARTY),
            json!({"start_pos": 3, "name": "Round two"}),
        ),
    );
    let transfers = party.take_transfers();
    assert_eq!(transfers.len(), 2);
    assert_eq!(transfers[1].client, host);
    assert_eq!(transfers[1].to, None);
    assert_eq!(
        transit(&transfers[1]).intent,
        Intent::Create {
            request: CreateRequest {
                start_pos: 3.0,
                media_id: None,
                name: Some("Round two".into())
            }
        }
    );
    let host_frames = party.take_sent_json(host);
    assert_eq!(host_frames[0]["payload"]["reason"], REASON_NEW_ROOM);
    assert_eq!(host_frames[0]["room"], PARTY);
    assert_eq!(host_frames.len(), 1);
    assert_closed(&mut party, host, &members, REASON_NEW_ROOM, false);
}

#[test]
fn a_member_creating_leaves_the_party() {
    let (mut party, host, members) = party_of(1);
    party.message(
        members[0],
        frame("create_room", Some(PARTY), json!({"start_pos": 0})),
    );
    let transfers = party.take_transfers();
    assert_eq!(transfers.len(), 1);
    assert!(matches!(
        transit(&transfers[0]).intent,
        Intent::Create { .. }
    ));
    assert_eq!(types(&party.take_sent_json(host)), ["client_left"]);
    assert!(!party.service().room().is_some_and(|p| p.is_closed()));
}

#[test]
fn joining_another_party_from_a_party() {
    let (mut party, host, members) = party_of(2);
    let bob = members[0];
    party.set_rooms(vec![
        party_entry(PARTY, 3, vec![host, members[0], members[1]], 1),
        party_entry(OTHER, 20, (100..120).collect(), 2),
    ]);
    // Unknown: ignored, still here.
    party.message(bob, frame("join_room", Some("nope"), json!({})));
    assert!(party.take_all().is_empty());
    // Full: an error naming it, still here.
    party.message(bob, frame("join_room", Some(OTHER), json!({})));
    let frames = party.take_sent_json(bob);
    assert_eq!(
        (error_messages(&frames), frames[0]["room"].clone()),
        (vec![ROOM_FULL], json!(OTHER))
    );
    // This party again: room_state, and no longer ready.
    party.message(bob, frame("ready", Some(PARTY), json!({})));
    party.message(bob, frame("join_room", Some(PARTY), json!({})));
    assert_eq!(types(&party.take_sent_json(bob)), ["room_state"]);
    assert!(
        !party
            .service()
            .room()
            .is_some_and(|p| p.sync().ready.contains(&bob))
    );

    party.set_rooms(vec![party_entry(OTHER, 3, vec![100, 101, 102], 2)]);
    party.message(bob, frame("join_room", Some(OTHER), json!({})));
    let transfers = party.take_transfers();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].to, None, "through the lobby");
    assert_eq!(
        transit(&transfers[0]).intent,
        Intent::Join { room: OTHER.into() }
    );
    assert_eq!(types(&party.take_sent_json(host)), ["client_left"]);
    party.take_all();

    // The host joining elsewhere closes the party.
    party.message(host, frame("join_room", Some(OTHER), json!({})));
    let transfers = party.take_transfers();
    assert_eq!(transfers.len(), 2);
    assert_eq!(transfers[1].client, host);
    assert_closed(&mut party, host, &members[1..], REASON_HOST_LEFT, false);
}

#[test]
fn auth_on_guards_create_and_join_from_a_party() {
    let mut party = TestRoom::<WatchParty>::builder()
        .room_id(PARTY)
        .auth(TestAuth::tokens([(
            "good",
            Ok::<_, String>(json!({"sub": "s", "name": "Tok"})),
        )]))
        .build();
    let host = party
        .connect_with_handoff(create_handoff("Alice", CreateRequest::from_payload(None)))
        .unwrap_or_default();
    party.take_all();
    party.message(host, frame("create_room", Some(PARTY), json!({})));
    let frames = party.take_sent_json(host);
    assert_eq!(
        (error_messages(&frames), frames[0]["room"].clone()),
        (vec![AUTH_REQUIRED], json!(PARTY))
    );
    assert!(party.take_transfers().is_empty());

    party.message(host, frame("auth", None, json!({"token": "good"})));
    assert_eq!(party.take_sent_json(host)[0]["payload"]["user_name"], "Tok");
    party.message(
        host,
        frame("chat_message", Some(PARTY), json!({"text": "hi"})),
    );
    assert_eq!(party.take_sent_json(host)[0]["payload"]["username"], "Tok");
    party.message(host, frame("create_room", Some(PARTY), json!({})));
    assert_eq!(party.take_transfers().len(), 1);
}

#[test]
fn party_frames_run_the_common_checks() {
    let (mut party, host, _members) = party_of(0);
    party.message(host, "{");
    party.message(host, frame("nope", None, json!({})));
    let frames = party.take_sent_json(host);
    assert_eq!(error_messages(&frames), [INVALID_FORMAT, UNKNOWN_TYPE]);
    assert!(frames.iter().all(|f| f["room"] == PARTY));
    party.message(
        host,
        r#"{"type":"ping","room":"x","client":"1","payload":{"client_ts":3},"ts":3}"#,
    );
    let pong = party.take_sent_json(host);
    assert_eq!(
        (pong[0]["room"].clone(), pong[0]["payload"].clone()),
        (json!("x"), json!({"client_ts": 3}))
    );
    party.set_rooms(vec![party_entry(PARTY, 1, vec![host], 1)]);
    party.message(host, frame("list_rooms", Some(PARTY), json!({})));
    let list = party.take_sent_json(host);
    assert_eq!(list[0]["payload"][0]["id"], PARTY);
}

#[test]
fn silent_members_are_dropped_and_a_silent_host_closes_the_party() {
    let (mut party, host, members) = party_of(1);
    for _ in 0..12 {
        party.advance(Duration::from_secs(5));
        party.message(host, r#"{"type":"ping","payload":{},"ts":1}"#);
    }
    assert_eq!(
        party
            .closed()
            .iter()
            .map(|c| (c.0, c.1))
            .collect::<Vec<_>>(),
        [(members[0], SILENCE_CLOSE_CODE)]
    );
    assert!(types(&party.take_sent_json(host)).contains(&"client_left"));
    party.advance(Duration::from_secs(65));
    assert_eq!(party.closed().len(), 2);
    assert!(party.clients().is_empty());
    assert!(party.pending_timers().is_empty());
}
