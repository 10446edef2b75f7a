//! The sync protocol: handshake, fan-out, convergence.

use roomhost_sdk::DisconnectReason;
use serde_json::json;
use yrs::{ReadTxn, StateVector, Transact};

use super::*;

#[test]
fn a_new_client_gets_sync_step1_and_no_awareness() {
    let mut room = room();
    let alice = room.connect();
    let frames = received(&mut room, alice);
    assert_eq!(frames, [Incoming::SyncStep1(StateVector::default())]);
}

#[test]
fn step1_and_step2_give_a_late_joiner_the_whole_document() {
    let mut room = room();
    // Alice edits offline, then connects and syncs.
    let alice = Peer::new(1);
    alice.insert("notes", 0, "hello world");
    alice.set("meta", "title", "Draft");
    join(&mut room, &alice);
    assert_eq!(
        doc_json(&mut room),
        json!({"notes": "hello world", "meta": {"title": "Draft"}})
    );

    let bob = Peer::new(2);
    join(&mut room, &bob);
    assert_eq!(bob.text("notes"), "hello world");
    assert_eq!(bob.state().len(), alice.state().len());
}

#[test]
fn the_servers_step1_carries_its_state_vector() {
    let mut room = room();
    let alice = Peer::new(1);
    alice.insert("t", 0, "abc");
    join(&mut room, &alice);
    let bob = room.connect();
    let frames = received(&mut room, bob);
    let Some(Incoming::SyncStep1(sv)) = frames.first() else {
        panic!("expected step 1, got {frames:?}");
    };
    assert_eq!(sv, &alice.doc.transact().state_vector());
}

#[test]
fn updates_reach_the_other_clients_but_not_the_sender() {
    let mut room = room();
    let (alice, bob, carol) = (Peer::new(1), Peer::new(2), Peer::new(3));
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    let c = join(&mut room, &carol);

    room.message(a, update_frame(alice.insert("t", 0, "hi")));
    assert!(room.take_sent(a).is_empty(), "no echo to the sender");
    for (client, peer) in [(b, &bob), (c, &carol)] {
        let frames = received(&mut room, client);
        assert!(
            matches!(frames.as_slice(), [Incoming::Update(_)]),
            "{frames:?}"
        );
        peer.handle(&frames);
        assert_eq!(peer.text("t"), "hi");
    }
}

#[test]
fn a_duplicate_update_is_not_fanned_out() {
    let mut room = room();
    let (alice, bob) = (Peer::new(1), Peer::new(2));
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    let update = alice.insert("t", 0, "x");
    room.message(a, update_frame(update.clone()));
    assert_eq!(received(&mut room, b).len(), 1);
    room.message(a, update_frame(update));
    assert!(room.take_sent(b).is_empty());
}

#[test]
fn step2_from_a_client_is_fanned_out_as_an_update() {
    let mut room = room();
    let bob = Peer::new(2);
    let b = join(&mut room, &bob);
    let alice = Peer::new(1);
    alice.insert("t", 0, "offline work");
    join(&mut room, &alice);
    let frames = received(&mut room, b);
    assert!(
        matches!(frames.as_slice(), [Incoming::Update(_)]),
        "{frames:?}"
    );
    bob.handle(&frames);
    assert_eq!(bob.text("t"), "offline work");
}

#[test]
fn concurrent_edits_converge() {
    let mut room = room();
    let (alice, bob) = (Peer::new(1), Peer::new(2));
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    room.message(a, update_frame(alice.insert("t", 0, "hello")));
    deliver(&mut room, b, &bob);

    // Both edit before seeing the other's change.
    let from_alice = alice.insert("t", 5, " alice");
    let from_bob = bob.insert("t", 0, "bob: ");
    let alice_set = alice.set("m", "k", "from alice");
    let bob_set = bob.set("m", "k", "from bob");
    room.message(a, update_frame(from_alice));
    room.message(b, update_frame(from_bob));
    room.message(a, update_frame(alice_set));
    room.message(b, update_frame(bob_set));
    deliver(&mut room, a, &alice);
    deliver(&mut room, b, &bob);

    let server = doc_json(&mut room);
    assert_eq!(alice.text("t"), bob.text("t"));
    assert_eq!(server["t"], json!(alice.text("t")));
    assert!(alice.text("t").contains("bob: ") && alice.text("t").contains(" alice"));
    let txn = alice.doc.transact();
    let bob_txn = bob.doc.transact();
    assert_eq!(txn.state_vector(), bob_txn.state_vector());
    assert!(server["m"]["k"] == json!("from alice") || server["m"]["k"] == json!("from bob"));
}

#[test]
fn an_update_missing_its_dependency_asks_the_client_to_resync() {
    let mut room = room();
    let bob = Peer::new(2);
    let b = join(&mut room, &bob);
    let alice = Peer::new(1);
    let a = room.connect();
    room.take_sent(a);
    let _first = alice.insert("t", 0, "ab");
    let second = alice.insert("t", 2, "cd");
    room.message(a, update_frame(second));
    // Dropped, not closed (a close would make y-websocket reconnect and
    // resend), and nothing pending.
    assert!(room.closed().is_empty(), "{:?}", room.closed());
    assert!(room.take_sent(b).is_empty(), "nothing integrable");
    assert_eq!(doc_json(&mut room), json!({}));
    // Nothing stays pending: the next update integrates on its own...
    room.message(b, update_frame(bob.insert("u", 0, "bob")));
    assert_eq!(doc_json(&mut room)["u"], json!("bob"));
    // ...and the room asked alice to resync with its step 1: her step 2
    // brings everything.
    let asked = received(&mut room, a);
    assert!(
        asked.iter().any(|f| matches!(f, Incoming::SyncStep1(_))),
        "{asked:?}"
    );
    for reply in alice.handle(&asked) {
        room.message(a, reply);
    }
    deliver(&mut room, b, &bob);
    assert_eq!(bob.text("t"), "abcd");
    assert!(room.closed().is_empty());
}

#[test]
fn resync_requests_are_rate_limited() {
    let mut room = room();
    let alice = Peer::new(1);
    let a = room.connect();
    room.take_sent(a);
    alice.insert("t", 0, "ab");
    let step1s = |room: &mut TestRoom<Collab>| {
        received(room, a)
            .iter()
            .filter(|f| matches!(f, Incoming::SyncStep1(_)))
            .count()
    };
    for i in 0..5 {
        room.message(a, update_frame(alice.insert("t", 2 + i, "x")));
    }
    assert_eq!(step1s(&mut room), 1);
    room.advance(std::time::Duration::from_millis(
        crate::sync::RESYNC_INTERVAL_MS,
    ));
    room.message(a, update_frame(alice.insert("t", 0, "y")));
    assert_eq!(step1s(&mut room), 1);
}

#[test]
fn every_root_kind_shows_in_the_json_view() {
    use yrs::{Array, XmlElementPrelim, XmlFragment, XmlTextPrelim};

    let mut room = room();
    let alice = Peer::new(1);
    {
        let text = alice.doc.get_or_insert_text("text");
        let map = alice.doc.get_or_insert_map("map");
        let array = alice.doc.get_or_insert_array("array");
        let xml = alice.doc.get_or_insert_xml_fragment("xml");
        let mut txn = alice.doc.transact_mut();
        text.insert(&mut txn, 0, "hi");
        map.insert(&mut txn, "n", 1);
        map.insert(&mut txn, "nested", yrs::MapPrelim::from([("x", true)]));
        array.insert_range(&mut txn, 0, ["a", "b"]);
        let paragraph = xml.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
        paragraph.insert(&mut txn, 0, XmlTextPrelim::new("para"));
    }
    join(&mut room, &alice);
    assert_eq!(
        doc_json(&mut room),
        json!({
            "text": "hi",
            "map": {"n": 1, "nested": {"x": true}},
            "array": ["a", "b"],
            "xml": "<p>para</p>",
        })
    );
}

#[test]
fn a_text_emptied_by_its_clients_stays_a_text() {
    let mut room = room();
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    room.message(a, update_frame(alice.insert("t", 0, "abc")));
    let text = alice.doc.get_or_insert_text("t");
    let removal = {
        let mut txn = alice.doc.transact_mut();
        yrs::Text::remove_range(&text, &mut txn, 0, 3);
        txn.encode_update_v1()
    };
    room.message(a, update_frame(removal));
    assert_eq!(doc_json(&mut room), json!({"t": ""}));
}

#[test]
fn a_client_that_leaves_stops_receiving_and_others_continue() {
    let mut room = room();
    let (alice, bob) = (Peer::new(1), Peer::new(2));
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    room.disconnect(b, DisconnectReason::Closed);
    room.message(a, update_frame(alice.insert("t", 0, "solo")));
    assert!(room.take_sent(b).is_empty());
    assert_eq!(doc_json(&mut room), json!({"t": "solo"}));
}

#[test]
fn a_read_only_client_reads_and_shows_presence_but_cannot_edit() {
    let mut room = room();
    let (alice, viewer) = (Peer::new(1), Peer::new(2));
    alice.insert("t", 0, "shared");
    let a = join(&mut room, &alice);
    let v = room
        .try_connect_with(|info| info.read_only = true)
        .expect("a read-only client is accepted");
    let greeting = received(&mut room, v);
    for reply in viewer.handle(&greeting) {
        room.message(v, reply);
    }
    room.message(v, viewer.step1());
    viewer.handle(&received(&mut room, v));
    assert_eq!(viewer.text("t"), "shared", "it reads the document");

    room.message(v, update_frame(viewer.insert("t", 0, "vandal ")));
    assert!(room.take_sent(a).is_empty(), "its update reaches nobody");
    assert_eq!(doc_json(&mut room), json!({ "t": "shared" }));
    assert!(
        room.logs()
            .iter()
            .any(|(_, line)| line.contains(crate::sync::READ_ONLY_REASON)),
        "the drop is logged"
    );

    room.message(v, awareness_frame(2, 1, r#"{"user":"viewer"}"#));
    let seen = awareness_entries(&received(&mut room, a));
    assert_eq!(
        seen,
        [(2, 1, r#"{"user":"viewer"}"#.to_owned())],
        "its presence is relayed"
    );

    // Writers are unaffected.
    room.message(a, update_frame(alice.insert("t", 6, "!")));
    assert_eq!(doc_json(&mut room), json!({ "t": "shared!" }));
}
