//! Document lifetime, size caps, configuration and hot reload.

use std::time::Duration;

use roomhost_sdk::testing::Reload;
use roomhost_sdk::{DisconnectReason, HttpRequest};
use serde_json::json;

use super::*;
use crate::{AWARENESS_TIMER, KEEP_EMPTY_TIMER};

#[test]
fn an_empty_room_keeps_its_document_for_keep_empty_ms() {
    let mut room = room_with(json!({"keep_empty_ms": 30_000}));
    let alice = Peer::new(1);
    alice.insert("t", 0, "kept");
    let a = join(&mut room, &alice);
    room.disconnect(a, DisconnectReason::Closed);
    assert_eq!(
        room.pending_timers(),
        [(KEEP_EMPTY_TIMER, Duration::from_secs(30))]
    );
    room.advance(Duration::from_secs(29));
    // A client coming back in time cancels the timer and finds the doc.
    let bob = Peer::new(2);
    let b = join(&mut room, &bob);
    assert!(room.pending_timers().is_empty());
    assert_eq!(bob.text("t"), "kept");
    room.disconnect(b, DisconnectReason::Closed);
    room.advance(Duration::from_secs(30));
    // No clients and no timers: the host ends the room.
    assert!(room.pending_timers().is_empty());
}

#[test]
fn the_default_keeps_30_seconds() {
    let mut room = room();
    let a = room.connect();
    room.disconnect(a, DisconnectReason::Closed);
    assert_eq!(
        room.pending_timers(),
        [(KEEP_EMPTY_TIMER, Duration::from_secs(30))]
    );
}

#[test]
fn keep_empty_zero_drops_at_once() {
    let mut room = room_with(json!({"keep_empty_ms": 0}));
    let a = room.connect();
    room.disconnect(a, DisconnectReason::Closed);
    assert!(room.pending_timers().is_empty());
}

#[test]
fn no_awareness_timer_outlives_the_last_client() {
    let mut room = room_with(json!({"keep_empty_ms": 1000}));
    let a = room.connect();
    room.message(a, awareness_frame(1, 1, "{}"));
    room.disconnect(a, DisconnectReason::Closed);
    assert!(
        !room
            .pending_timers()
            .iter()
            .any(|(id, _)| *id == AWARENESS_TIMER)
    );
    room.advance(Duration::from_secs(1));
    assert!(room.pending_timers().is_empty());
}

/// The warnings the room logged.
fn warnings(room: &TestRoom<Collab>) -> Vec<String> {
    room.logs()
        .iter()
        .filter(|(level, _)| *level == roomhost_sdk::LogLevel::Warn)
        .map(|(_, line)| line.clone())
        .collect()
}

#[test]
fn an_update_beyond_the_size_cap_is_dropped_and_the_client_stays() {
    // Closing would make y-websocket reconnect 100 ms later and resend the
    // same update: a reconnect loop. The update is dropped instead.
    let mut room = room_with(json!({"max_doc_bytes": 200}));
    let (alice, bob) = (Peer::new(1), Peer::new(2));
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    room.message(a, update_frame(alice.insert("t", 0, "small")));
    deliver(&mut room, b, &bob);
    room.message(a, update_frame(alice.insert("t", 5, &"x".repeat(300))));
    assert!(room.closed().is_empty(), "{:?}", room.closed());
    assert!(room.is_connected(a));
    let logged = warnings(&room);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("200-byte limit"), "{logged:?}");
    assert!(room.take_sent(b).is_empty());
    assert_eq!(doc_json(&mut room), json!({"t": "small"}));
    // The others go on editing below the cap.
    room.message(b, update_frame(bob.insert("t", 0, "ok ")));
    assert_eq!(doc_json(&mut room), json!({"t": "ok small"}));
}

#[test]
fn refusals_are_logged_once_per_interval_per_connection() {
    let mut room = room_with(json!({"max_doc_bytes": 200}));
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    let big = update_frame(alice.insert("t", 0, &"x".repeat(300)));
    // y-websocket resends the same content; every copy is dropped, one is
    // logged.
    for _ in 0..5 {
        room.message(a, big.clone());
    }
    assert_eq!(warnings(&room).len(), 1);
    room.advance(Duration::from_millis(crate::sync::REFUSAL_LOG_INTERVAL_MS));
    room.message(a, big.clone());
    let logged = warnings(&room);
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(logged[1].contains("4 more dropped"), "{logged:?}");
    // Another connection has its own budget.
    let b = room.connect();
    room.message(b, big.clone());
    assert_eq!(warnings(&room).len(), 3);
    // What was never logged is counted when the connection leaves.
    room.message(a, big);
    room.disconnect(a, DisconnectReason::Closed);
    let logged = warnings(&room);
    assert_eq!(logged.len(), 4, "{logged:?}");
    assert!(logged[3].contains("1 more"), "{logged:?}");
    assert!(room.closed().is_empty());
}

#[test]
fn the_cap_counts_the_real_size_when_the_bound_is_reached() {
    // Many duplicate updates push the running bound up; the exact size is
    // measured before refusing.
    let mut room = room_with(json!({"max_doc_bytes": 400}));
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    let update = alice.insert("t", 0, &"y".repeat(100));
    for _ in 0..10 {
        room.message(a, update_frame(update.clone()));
    }
    assert!(room.closed().is_empty());
}

#[test]
fn a_rest_edit_beyond_the_cap_is_413() {
    let mut room = room_with(json!({"max_doc_bytes": 100}));
    let response = room.request(
        HttpRequest::new("POST", "/text/t")
            .with_body(json!({"insert": "z".repeat(200)}).to_string().into_bytes()),
    );
    assert_eq!(response.status, 413);
    let update = Peer::new(1).insert("t", 0, &"z".repeat(200));
    let response = room.request(HttpRequest::new("POST", "/update").with_body(update));
    assert_eq!(response.status, 413);
    assert_eq!(doc_json(&mut room), json!({}));
}

#[test]
#[should_panic(expected = "invalid collab config")]
fn an_invalid_config_refuses_to_start() {
    room_with(json!({"keep_empty": 5}));
}

#[test]
#[should_panic(expected = "max_doc_bytes must be positive")]
fn a_zero_cap_refuses_to_start() {
    room_with(json!({"max_doc_bytes": 0}));
}

#[test]
fn a_bad_config_refuses_to_start() {
    let started = TestRoom::<Collab>::builder()
        .config(&serde_json::json!({ "max_doc_bytes": 0 }))
        .try_build();
    let reason = started.err().unwrap_or_default();
    assert!(reason.contains("max_doc_bytes"), "{reason}");
}

#[test]
fn the_room_publishes_its_client_count() {
    let mut room = room();
    let a = room.connect();
    room.connect();
    assert_eq!(room.info(), Some(json!({"clients": 2})));
    room.disconnect(a, DisconnectReason::Closed);
    assert_eq!(room.info(), Some(json!({"clients": 1})));
}

#[test]
fn a_reload_keeps_the_document_awareness_and_connections() {
    let mut room = room();
    let (alice, bob) = (Peer::new(1), Peer::new(2));
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    room.message(a, update_frame(alice.insert("t", 0, "survives")));
    room.message(a, update_frame(alice.set("m", "k", "v")));
    room.message(a, awareness_frame(11, 4, r#"{"user":"alice"}"#));
    room.message(b, awareness_frame(22, 1, r#"{"user":"bob"}"#));
    // An emptied text stays a text across the reload.
    let text = alice.doc.get_or_insert_text("gone");
    let emptied = {
        let mut txn = alice.doc.transact_mut();
        yrs::Text::insert(&text, &mut txn, 0, "x");
        yrs::Text::remove_range(&text, &mut txn, 0, 1);
        txn.encode_update_v1()
    };
    room.message(b, update_frame(emptied));
    room.message(b, update_frame(bob.insert("gone", 0, "y")));
    room.message(
        b,
        update_frame({
            let text = bob.doc.get_or_insert_text("gone");
            let mut txn = bob.doc.transact_mut();
            yrs::Text::remove_range(&text, &mut txn, 0, 1);
            txn.encode_update_v1()
        }),
    );
    let before = doc_json(&mut room);
    let server_id = room.service().document().client_id();
    room.take_all();

    assert_eq!(room.reload(), Ok(Reload::Restored));
    assert_eq!(doc_json(&mut room), before);
    assert_eq!(before["gone"], json!(""));
    assert_eq!(room.service().document().client_id(), server_id);
    assert_eq!(room.service().presence().len(), 2);

    // Updates still fan out, a late joiner still gets everything.
    bob.apply(&alice.state());
    room.message(b, update_frame(bob.insert("t", 0, "still ")));
    deliver(&mut room, a, &alice);
    assert_eq!(alice.text("t"), "still survives");
    let carol = Peer::new(3);
    join(&mut room, &carol);
    assert_eq!(carol.text("t"), "still survives");

    // Alice's awareness is still hers: leaving removes it.
    room.take_all();
    room.disconnect(a, DisconnectReason::Closed);
    assert_eq!(
        awareness_entries(&received(&mut room, b)),
        [(11, 4, "null".to_owned())]
    );
}

#[test]
fn a_garbage_snapshot_is_refused() {
    let mut room = TestRoom::<Collab>::new();
    let info = roomhost_sdk::testing::init_info("test", "null");
    let result = room.with_room(|_, ctx| {
        <Collab as roomhost_sdk::RoomService>::restore(ctx, &info, b"nope").map(|_| ())
    });
    assert!(result.is_err());
}

#[test]
fn gc_is_off_by_default_and_can_be_turned_on() {
    let size_after_delete = |config: serde_json::Value| {
        let mut room = room_with(config);
        let alice = Peer::new(1);
        let a = join(&mut room, &alice);
        room.message(a, update_frame(alice.insert("t", 0, &"z".repeat(2000))));
        let text = alice.doc.get_or_insert_text("t");
        let removal = {
            let mut txn = alice.doc.transact_mut();
            yrs::Text::remove_range(&text, &mut txn, 0, 2000);
            txn.encode_update_v1()
        };
        room.message(a, update_frame(removal));
        assert_eq!(doc_json(&mut room), json!({"t": ""}));
        room.request(HttpRequest::new("GET", "/update")).body.len()
    };
    let kept = size_after_delete(json!({}));
    let collected = size_after_delete(json!({"gc": true}));
    assert!(kept > 2000, "without gc the deleted text stays: {kept}");
    assert!(collected < 100, "with gc it is collected: {collected}");
}

/// The exact size of the room's document (`GET /update` encodes it whole,
/// without touching the running bound).
fn exact_size(room: &mut TestRoom<Collab>) -> usize {
    room.request(HttpRequest::new("GET", "/update")).body.len()
}

#[test]
fn the_size_bound_is_an_upper_bound() {
    // Random edits from three peers, some concurrent, plus REST edits: each
    // change grows the running bound at least as much as the real size, so
    // no sequence of changes can take the document past it. Before, the
    // bound grew by each update's bytes, and a deletion inside an insertion
    // grows the document by more than that (the struct is split in two).
    let mut room = room();
    let mut last = (
        exact_size(&mut room),
        room.service().document().size_bound(),
    );
    let mut check = |room: &mut TestRoom<Collab>, round: usize| {
        let bound = room.service().document().size_bound();
        let exact = exact_size(room);
        // (The document can also shrink: adjacent structs merge.)
        let grew = exact as i64 - last.0 as i64;
        let bound_grew = (bound - last.1) as i64;
        assert!(
            grew <= bound_grew,
            "round {round}: grew {grew} bytes, the bound {bound_grew}"
        );
        assert!(exact <= bound);
        last = (exact, bound);
    };
    let peers = [Peer::new(1), Peer::new(2), Peer::new(300_000_000)];
    let clients: Vec<ClientId> = peers.iter().map(|peer| join(&mut room, peer)).collect();
    let mut seed = 11u64;
    let mut next = move |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound.max(1)
    };
    for round in 0..600 {
        let who = next(3) as usize;
        let (peer, client) = (&peers[who], clients[who]);
        let text = peer.doc.get_or_insert_text("t");
        let update = {
            let mut txn = peer.doc.transact_mut();
            let len = yrs::Text::len(&text, &txn);
            match next(4) {
                0 | 1 => {
                    let chunk = "abcdefgh"[..1 + next(8) as usize].to_owned();
                    yrs::Text::insert(&text, &mut txn, next(u64::from(len) + 1) as u32, &chunk);
                }
                2 if len > 0 => {
                    let at = next(u64::from(len)) as u32;
                    let n = 1 + next(u64::from((len - at).min(3))) as u32;
                    yrs::Text::remove_range(&text, &mut txn, at, n);
                }
                _ => {
                    let map = yrs::WriteTxn::get_or_insert_map(&mut txn, "m");
                    yrs::Map::insert(&map, &mut txn, format!("k{}", next(5)), next(1000) as i64);
                }
            }
            txn.encode_update_v1()
        };
        room.message(client, update_frame(update));
        check(&mut room, round);
        if round % 7 == 0 {
            let body = json!({"insert": "rest", "index": 0}).to_string();
            room.request(HttpRequest::new("POST", "/text/t").with_body(body.into_bytes()));
            check(&mut room, round);
        }
        // The others catch up now and then, so edits are often concurrent.
        if next(3) == 0 {
            for (peer, client) in peers.iter().zip(&clients) {
                deliver(&mut room, *client, peer);
            }
        }
    }
    assert!(room.closed().is_empty());
}

#[test]
fn deletions_inside_an_insertion_cannot_pass_the_cap() {
    let mut room = room_with(json!({"max_doc_bytes": 3000}));
    let alice = Peer::new(123_456_789);
    let a = join(&mut room, &alice);
    room.message(a, update_frame(alice.insert("t", 0, &"x".repeat(2000))));
    let text = alice.doc.get_or_insert_text("t");
    for i in 0..300 {
        let update = {
            let mut txn = alice.doc.transact_mut();
            yrs::Text::remove_range(&text, &mut txn, 1990 - 3 * i, 1);
            txn.encode_update_v1()
        };
        room.message(a, update_frame(update));
        let size = exact_size(&mut room);
        assert!(
            size <= 3000,
            "after {} deletions the document has {size} bytes",
            i + 1
        );
    }
    assert!(room.closed().is_empty());
}

#[test]
fn the_default_cap_reaches_far_beyond_a_client_frame() {
    // Clients send at most 64 KiB per frame, but the document is not
    // bounded by that: 3 MB of it, built from client frames, reaches a
    // joiner in frames of at most 1 MiB. The default cap used to follow
    // the client frame limit, 64,512 bytes.
    let mut room = room();
    assert_eq!(
        room.service().document().max_bytes(),
        crate::config::DEFAULT_MAX_DOC_BYTES
    );
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    for i in 0..75u8 {
        let run = char::from(b'a' + i % 26).to_string().repeat(40_000);
        let at = if i % 2 == 0 { 0 } else { u32::from(i) * 1000 };
        room.message(a, update_frame(alice.insert("t", at, &run)));
    }
    assert!(room.closed().is_empty());
    assert!(room.logs().is_empty(), "{:?}", room.logs());
    let size = exact_size(&mut room);
    assert!(size > 3_000_000, "{size}");
    let bob = Peer::new(2);
    let b = room.connect();
    let greeting = received(&mut room, b);
    for reply in bob.handle(&greeting) {
        room.message(b, reply);
    }
    room.message(b, bob.step1());
    let frames = room.take_sent(b);
    assert!(frames.len() >= 3, "{} frames", frames.len());
    assert!(frames.iter().all(|frame| frame.len() <= 1024 * 1024));
    let decoded: Vec<Incoming> = frames
        .iter()
        .map(|frame| protocol::decode(frame.as_bytes()).expect("a frame"))
        .collect();
    // Updates, then step 2 last: the client is synced once it has it all.
    assert!(matches!(decoded.last(), Some(Incoming::SyncStep2(_))));
    assert!(
        decoded[..decoded.len() - 1]
            .iter()
            .all(|frame| matches!(frame, Incoming::Update(_)))
    );
    bob.handle(&decoded);
    assert_eq!(bob.text("t"), alice.text("t"));
    assert_eq!(bob.text("t").len(), 3_000_000);
}

#[test]
fn the_cap_and_the_frames_are_separate() {
    let room = room_with(json!({"max_doc_bytes": 40_000_000, "max_frame_bytes": 65_536}));
    assert_eq!(room.service().document().max_bytes(), 40_000_000);
    let room = room_with(json!({"max_frame_bytes": 500_000}));
    assert_eq!(
        room.service().document().max_bytes(),
        crate::config::DEFAULT_MAX_DOC_BYTES
    );
}

#[test]
#[should_panic(expected = "max_frame_bytes (1000) must be at least 1024")]
fn a_tiny_frame_limit_refuses_to_start() {
    room_with(json!({"max_frame_bytes": 1000, "max_awareness_bytes": 10}));
}
