//! The document in the room's storage: restarts, compaction, the stored
//! size, refused writes.

use std::time::Duration;

use roomhost_sdk::testing::{Reload, TestRoom};
use roomhost_sdk::{DisconnectReason, HttpRequest};
use serde_json::json;

use super::*;
use crate::config::{DEFAULT_COMPACT_AFTER_UPDATES, DEFAULT_KEEP_EMPTY_MS};
use crate::persist::{DOC_PREFIX, LOG_PREFIX};

/// How many stored keys start with `prefix`.
fn keys(room: &TestRoom<Collab>, prefix: &str) -> usize {
    room.storage()
        .entries()
        .filter(|(key, _)| key.starts_with(prefix.as_bytes()))
        .count()
}

/// Every stored entry.
fn entries(room: &TestRoom<Collab>) -> Vec<(Vec<u8>, Vec<u8>)> {
    room.storage()
        .entries()
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect()
}

/// A room with `config` whose storage holds at most `bytes`.
fn room_storing(config: serde_json::Value, bytes: usize) -> TestRoom<Collab> {
    TestRoom::builder()
        .config(&config)
        .max_room_storage_bytes(bytes)
        .build()
}

/// Types `text` into text `t` of `peer` one character at a time, sending
/// each keystroke to the room.
fn type_text(room: &mut TestRoom<Collab>, client: ClientId, peer: &Peer, text: &str) {
    for ch in text.chars() {
        let len = peer.text("t").encode_utf16().count() as u32;
        let update = peer.insert("t", len, &ch.to_string());
        room.message(client, update_frame(update));
    }
}

#[test]
fn acknowledged_edits_survive_a_restart() {
    let mut room = room();
    let alice = Peer::new(1);
    let bob = Peer::new(2);
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    room.message(a, update_frame(alice.insert("t", 0, "hello")));
    deliver(&mut room, b, &bob);
    assert_eq!(bob.text("t"), "hello");
    let response = room
        .request(HttpRequest::new("POST", "/map/meta").with_body(r#"{"set": {"title": "Draft"}}"#));
    assert_eq!(response.status, 200, "{}", response.body_text());

    room.restart().unwrap();
    assert!(!room.is_connected(a));
    let carol = Peer::new(3);
    join(&mut room, &carol);
    assert_eq!(carol.text("t"), "hello");
    assert_eq!(
        doc_json(&mut room),
        json!({"t": "hello", "meta": {"title": "Draft"}})
    );
}

#[test]
fn a_room_that_ended_starts_again_from_storage() {
    let mut room = room_with(json!({"keep_empty_ms": 0}));
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    room.message(a, update_frame(alice.insert("t", 0, "kept")));
    room.disconnect(a, DisconnectReason::Closed);
    // No client and no timer: the room ends. The next one starts from what
    // it stored (a compacted copy, since the room compacts as it ends).
    assert!(room.pending_timers().is_empty());
    assert_eq!(keys(&room, LOG_PREFIX), 0);
    assert_eq!(keys(&room, DOC_PREFIX), 1);
    let mut builder = TestRoom::<Collab>::builder().config(&json!({"keep_empty_ms": 0}));
    for (key, value) in room.storage().entries() {
        builder = builder.stored(key, value);
    }
    let mut again = builder.build();
    let bob = Peer::new(2);
    join(&mut again, &bob);
    assert_eq!(bob.text("t"), "kept");
}

#[test]
fn the_keep_empty_timer_compacts_the_log_as_the_room_ends() {
    let mut room = room();
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    type_text(&mut room, a, &alice, "abc");
    assert_eq!(keys(&room, LOG_PREFIX), 3);
    room.disconnect(a, DisconnectReason::Closed);
    room.advance(Duration::from_millis(DEFAULT_KEEP_EMPTY_MS));
    assert_eq!(keys(&room, LOG_PREFIX), 0);
    room.restart().unwrap();
    assert_eq!(doc_json(&mut room), json!({"t": "abc"}));
}

#[test]
fn compaction_keeps_the_document_equal() {
    let mut room = room_with(json!({"compact_after_updates": 10}));
    let alice = Peer::new(1);
    let bob = Peer::new(2);
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    for round in 0..7 {
        type_text(&mut room, a, &alice, "ab");
        deliver(&mut room, b, &bob);
        room.message(b, update_frame(bob.insert("t", 0, &round.to_string())));
        room.message(b, update_frame(bob.set("m", &format!("k{round}"), round)));
        deliver(&mut room, a, &alice);
        // Some deletions, whose tombstones the compacted state must keep.
        let text = bob.doc.get_or_insert_text("t");
        let update = {
            let mut txn = bob.doc.transact_mut();
            text.remove_range(&mut txn, 1, 1);
            txn.encode_update_v1()
        };
        room.message(b, update_frame(update));
        deliver(&mut room, a, &alice);
    }
    // 35 updates: compacted at least three times, the log below 10.
    assert_eq!(keys(&room, DOC_PREFIX), 1);
    assert!(keys(&room, LOG_PREFIX) < 10);
    let before = doc_json(&mut room);
    let state = room.service().document().encode();
    assert_eq!(alice.text("t"), bob.text("t"));

    room.restart().unwrap();
    assert_eq!(doc_json(&mut room), before);
    // The same CRDT state: the same state vector and content, so a peer
    // that held the old document has nothing to send or receive.
    let restored = room.service().document();
    let old = Peer::new(9);
    old.apply(&state);
    assert_eq!(restored.state_vector(), old.doc.transact().state_vector());
    let carol = Peer::new(3);
    join(&mut room, &carol);
    assert_eq!(carol.text("t"), alice.text("t"));
}

#[test]
fn the_stored_size_stays_bounded_under_many_edits() {
    let limit = 4096;
    let mut room = room_with(json!({"compact_after_bytes": limit}));
    let alice = Peer::new(1);
    let bob = Peer::new(2);
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    for i in 0..1500 {
        let (client, peer, other) = if i % 2 == 0 {
            (a, &alice, &bob)
        } else {
            (b, &bob, &alice)
        };
        type_text(&mut room, client, peer, "x");
        deliver(&mut room, if client == a { b } else { a }, other);
        let doc = room.service().document().encode().len();
        let stored = room.storage().bytes();
        // The compacted document (plus the snapshot's few header bytes),
        // the log below its threshold, and each entry's key.
        let log_keys = keys(&room, LOG_PREFIX) * (LOG_PREFIX.len() + 16);
        assert!(
            stored <= doc + 64 + limit + log_keys,
            "edit {i}: {stored} bytes stored for a {doc}-byte document"
        );
        assert!(keys(&room, LOG_PREFIX) as u64 <= DEFAULT_COMPACT_AFTER_UPDATES);
    }
    room.restart().unwrap();
    let carol = Peer::new(3);
    join(&mut room, &carol);
    assert_eq!(carol.text("t").len(), 1500);
    assert_eq!(carol.text("t"), alice.text("t"));
}

#[test]
fn a_refused_log_write_compacts_and_retries() {
    // Sixty keystrokes take about 2.5 KB of log but 100 bytes compacted.
    let mut room = room_storing(json!({"compact_after_updates": 1000}), 1200);
    let alice = Peer::new(1);
    let bob = Peer::new(2);
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    let typed: String = "abcdefghij".repeat(6);
    type_text(&mut room, a, &alice, &typed);
    deliver(&mut room, b, &bob);
    assert_eq!(bob.text("t"), typed);
    assert_eq!(keys(&room, DOC_PREFIX), 1);
    assert!(room.storage().bytes() <= 1200);
    assert!(
        !room
            .logs()
            .iter()
            .any(|(_, line)| line.contains("cannot be stored"))
    );
    room.restart().unwrap();
    assert_eq!(doc_json(&mut room), json!({ "t": typed }));
}

#[test]
fn a_change_storage_refuses_reaches_nobody_and_is_not_kept() {
    let mut room = room_storing(json!({}), 1000);
    let alice = Peer::new(1);
    let bob = Peer::new(2);
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    room.message(a, update_frame(alice.insert("t", 0, "saved ")));
    deliver(&mut room, b, &bob);
    let stored = entries(&room);

    // Too large for the room's storage even compacted.
    let big = "y".repeat(2000);
    room.message(a, update_frame(alice.insert("t", 6, &big)));
    assert!(room.is_connected(a), "the update is dropped, not closed on");
    assert!(received(&mut room, b).is_empty(), "nobody receives it");
    assert_eq!(bob.text("t"), "saved ");
    assert_eq!(doc_json(&mut room), json!({"t": "saved "}));
    let after = entries(&room);
    assert_eq!(after, stored, "storage keeps what it had");
    assert!(
        room.logs()
            .iter()
            .any(|(_, line)| line.contains("the change cannot be stored")),
        "{:?}",
        room.logs()
    );

    // A REST edit refused the same way gets 507.
    let response = room.request(
        HttpRequest::new("POST", "/text/t").with_body(json!({ "insert": big }).to_string()),
    );
    assert_eq!(response.status, 507, "{}", response.body_text());
    assert!(received(&mut room, b).is_empty());

    // Smaller edits still go through, and survive.
    room.message(b, update_frame(bob.insert("t", 6, "ok")));
    room.restart().unwrap();
    assert_eq!(doc_json(&mut room), json!({"t": "saved ok"}));
}

#[test]
fn a_hot_reload_keeps_storing() {
    let mut room = room_with(json!({"compact_after_updates": 4}));
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    type_text(&mut room, a, &alice, "abc");
    assert_eq!(room.reload(), Ok(Reload::Restored));
    type_text(&mut room, a, &alice, "def");
    room.restart().unwrap();
    assert_eq!(doc_json(&mut room), json!({"t": "abcdef"}));
}

#[test]
fn unreadable_storage_refuses_to_start() {
    let started = TestRoom::<Collab>::builder()
        .stored("doc/00000000", "not a document")
        .try_build();
    assert!(
        started
            .err()
            .is_some_and(|reason| reason.contains("cannot be read")),
    );
}

#[test]
fn a_large_document_is_stored_in_chunks() {
    let mut room = room_with(json!({"compact_after_bytes": 100_000}));
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    for i in 0..12 {
        let chunk = format!("{i:x}").repeat(50_000);
        let len = alice.text("t").encode_utf16().count() as u32;
        room.message(a, update_frame(alice.insert("t", len, &chunk)));
    }
    // 600 KB of text: more than one chunk of the compacted copy.
    assert_eq!(keys(&room, DOC_PREFIX), 2);
    assert!(
        room.storage()
            .entries()
            .all(|(_, value)| value.len() <= crate::persist::CHUNK_BYTES)
    );
    room.restart().unwrap();
    let bob = Peer::new(2);
    join(&mut room, &bob);
    assert_eq!(bob.text("t"), alice.text("t"));
    assert_eq!(bob.text("t").len(), 600_000);
}

#[test]
fn a_compaction_to_fewer_chunks_deletes_the_others() {
    let mut room = room_with(json!({"gc": true, "compact_after_updates": 1}));
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    for i in 0..12 {
        let len = alice.text("t").encode_utf16().count() as u32;
        let update = alice.insert("t", len, &format!("{i:x}").repeat(50_000));
        room.message(a, update_frame(update));
    }
    assert_eq!(keys(&room, DOC_PREFIX), 2);
    assert_eq!(keys(&room, LOG_PREFIX), 0);
    let clear = room.request(HttpRequest::new("DELETE", "/doc"));
    assert_eq!(clear.status, 200, "{}", clear.body_text());
    // Collected: the document fits one chunk again.
    assert_eq!(keys(&room, DOC_PREFIX), 1);
    assert!(room.storage().bytes() < 1000);
    room.restart().unwrap();
    assert_eq!(doc_json(&mut room), json!({"t": ""}));
}
