//! The REST face: reads, edits that reach connected clients, errors.

use std::time::Duration;

use roomhost_sdk::{DisconnectReason, HttpRequest, HttpResponse};
use serde_json::{Value, json};

use super::*;
use crate::KEEP_EMPTY_TIMER;

fn post_json(room: &mut TestRoom<Collab>, path: &str, body: Value) -> HttpResponse {
    room.request(HttpRequest::new("POST", path).with_body(body.to_string().into_bytes()))
}

fn body(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).expect("a JSON body")
}

fn error_of(response: &HttpResponse) -> String {
    body(response)["error"]
        .as_str()
        .expect("an error message")
        .to_owned()
}

#[test]
fn get_update_loads_into_yjs() {
    let mut room = room();
    let alice = Peer::new(1);
    alice.insert("t", 0, "from alice");
    join(&mut room, &alice);
    let response = room.request(HttpRequest::new("GET", "/update"));
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    let fresh = Peer::new(5);
    fresh.apply(&response.body);
    assert_eq!(fresh.text("t"), "from alice");
}

#[test]
fn post_update_reaches_every_client() {
    let mut room = room();
    let (alice, bob) = (Peer::new(1), Peer::new(2));
    let a = join(&mut room, &alice);
    let b = join(&mut room, &bob);
    let script = Peer::new(3);
    let update = script.insert("t", 0, "server-side");
    let response = room.request(HttpRequest::new("POST", "/update").with_body(update.clone()));
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(
        body(&response),
        json!({"bytes": update.len(), "changed": true})
    );
    deliver(&mut room, a, &alice);
    deliver(&mut room, b, &bob);
    assert_eq!(alice.text("t"), "server-side");
    assert_eq!(bob.text("t"), "server-side");

    let again = room.request(HttpRequest::new("POST", "/update").with_body(update));
    assert_eq!(body(&again)["changed"], json!(false));
    assert!(room.take_all().is_empty());
}

#[test]
fn post_update_refuses_garbage() {
    let mut room = room();
    let empty = room.request(HttpRequest::new("POST", "/update"));
    assert_eq!(empty.status, 400);
    let garbage = room.request(HttpRequest::new("POST", "/update").with_body(vec![1, 2, 3, 4]));
    assert_eq!(garbage.status, 400);
    assert!(
        error_of(&garbage).contains("malformed"),
        "{}",
        error_of(&garbage)
    );
}

#[test]
fn text_edits_reach_clients() {
    let mut room = room();
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    let inserted = post_json(&mut room, "/text/notes", json!({"insert": "hello"}));
    assert_eq!(inserted.status, 200, "{}", inserted.body_text());
    assert_eq!(
        body(&inserted),
        json!({"name": "notes", "length": 5, "changed": true})
    );
    post_json(
        &mut room,
        "/text/notes",
        json!({"insert": " 😀 world", "index": 5}),
    );
    let deleted = post_json(&mut room, "/text/notes", json!({"delete": 3, "index": 5}));
    assert_eq!(body(&deleted)["length"], json!(11));
    deliver(&mut room, a, &alice);
    assert_eq!(alice.text("notes"), "hello world");
    assert_eq!(doc_json(&mut room), json!({"notes": "hello world"}));
}

#[test]
fn text_edits_on_a_clients_text_merge_with_it() {
    let mut room = room();
    let alice = Peer::new(1);
    alice.insert("t", 0, "ac");
    let a = join(&mut room, &alice);
    post_json(&mut room, "/text/t", json!({"insert": "b", "index": 1}));
    deliver(&mut room, a, &alice);
    assert_eq!(alice.text("t"), "abc");
}

#[test]
fn bad_text_edits_are_400() {
    let mut room = room();
    post_json(&mut room, "/text/t", json!({"insert": "a😀"}));
    for (edit, why) in [
        (json!({"insert": "x", "index": 9}), "past the end"),
        (
            json!({"insert": "x", "index": 2}),
            "inside a surrogate pair",
        ),
        (json!({"delete": 1, "index": 2}), "starts inside a pair"),
        (json!({"delete": 1, "index": 1}), "ends inside a pair"),
        (json!({"delete": 9}), "too long"),
        (json!({"delete": 4294967295u32, "index": 1}), "overflows"),
        (json!({"insert": "x", "delete": 1}), "both"),
        (json!({}), "neither"),
        (json!({"insert": 5}), "not a string"),
        (json!({"insert": "x", "extra": 1}), "unknown field"),
    ] {
        let response = post_json(&mut room, "/text/t", edit.clone());
        assert_eq!(response.status, 400, "{why}: {edit}");
        assert!(!error_of(&response).is_empty());
    }
    let not_json = room.request(HttpRequest::new("POST", "/text/t").with_body(b"{".to_vec()));
    assert_eq!(not_json.status, 400);
    assert_eq!(doc_json(&mut room), json!({"t": "a😀"}));
}

#[test]
fn map_edits_reach_clients() {
    let mut room = room();
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    let response = post_json(
        &mut room,
        "/map/settings",
        json!({"set": {"theme": "dark", "size": 12, "tags": ["a", "b"], "deep": {"x": null}}}),
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(
        body(&response),
        json!({"name": "settings", "keys": 4, "changed": true})
    );
    let response = post_json(
        &mut room,
        "/map/settings",
        json!({"delete": ["size", "missing"]}),
    );
    assert_eq!(body(&response)["keys"], json!(3));
    deliver(&mut room, a, &alice);
    let expected = json!({"theme": "dark", "tags": ["a", "b"], "deep": {"x": null}});
    assert_eq!(doc_json(&mut room), json!({ "settings": expected }));
    let map = alice.doc.get_or_insert_map("settings");
    let txn = alice.doc.transact();
    assert_eq!(
        crate::json::any_to_json(&yrs::types::ToJson::to_json(&map, &txn)),
        expected
    );
}

#[test]
fn edits_refuse_a_root_of_another_kind() {
    let mut room = room();
    let alice = Peer::new(1);
    alice.set("m", "k", 1);
    alice.insert("t", 0, "text");
    join(&mut room, &alice);
    let response = post_json(&mut room, "/text/m", json!({"insert": "x"}));
    assert_eq!(response.status, 409);
    assert_eq!(error_of(&response), r#"root "m" is a map, not a text"#);
    let response = post_json(&mut room, "/map/t", json!({"set": {"a": 1}}));
    assert_eq!(response.status, 409);
    let response = post_json(&mut room, "/map/t", json!({}));
    assert_eq!(response.status, 400);
}

#[test]
fn names_are_not_decoded_twice() {
    // The host's router percent-decodes the path before the room sees it:
    // a client asking for `/text/100%25` reaches the room as `/text/100%`.
    // Decoding again refused that (and turned `%2520` into a space).
    let mut room = room();
    for (path, name) in [
        ("/text/my notes", "my notes"),
        ("/text/100%", "100%"),
        ("/text/%20", "%20"),
        ("/text/a/b", "a/b"),
    ] {
        let response = post_json(&mut room, path, json!({"insert": "x"}));
        assert_eq!(response.status, 200, "{path}: {}", response.body_text());
        assert_eq!(body(&response)["name"], json!(name), "{path}");
    }
    assert_eq!(
        doc_json(&mut room),
        json!({"my notes": "x", "100%": "x", "%20": "x", "a/b": "x"})
    );
}

#[test]
fn delete_doc_clears_every_root() {
    let mut room = room();
    let alice = Peer::new(1);
    alice.insert("t", 0, "text");
    alice.set("m", "k", 1);
    let a = join(&mut room, &alice);
    let response = room.request(HttpRequest::new("DELETE", "/doc"));
    assert_eq!(body(&response), json!({"cleared": 2, "changed": true}));
    deliver(&mut room, a, &alice);
    assert_eq!(alice.text("t"), "");
    assert_eq!(doc_json(&mut room), json!({"t": "", "m": {}}));
}

#[test]
fn presence_lists_the_live_states() {
    let mut room = room();
    assert_eq!(
        body(&room.request(HttpRequest::new("GET", "/presence"))),
        json!([])
    );
    let a = room.connect();
    room.message(a, awareness_frame(7, 1, r#"{"cursor":3}"#));
    assert_eq!(
        body(&room.request(HttpRequest::new("GET", "/presence"))),
        json!([{"client": 7, "state": {"cursor": 3}}])
    );
}

#[test]
fn unknown_paths_and_methods() {
    let mut room = room();
    let missing = room.request(HttpRequest::new("GET", "/nothing"));
    assert_eq!(missing.status, 404);
    assert!(error_of(&missing).contains("routes"));
    assert_eq!(room.request(HttpRequest::new("POST", "/doc")).status, 405);
    assert_eq!(room.request(HttpRequest::new("GET", "/text/t")).status, 405);
    assert_eq!(
        room.request(HttpRequest::new("DELETE", "/update")).status,
        405
    );
    assert_eq!(room.request(HttpRequest::new("POST", "/text")).status, 404);
    assert_eq!(room.request(HttpRequest::new("GET", "/doc/")).status, 200);
}

#[test]
fn an_edit_to_an_empty_room_keeps_it_alive() {
    let mut room = room_with(json!({"keep_empty_ms": 5000}));
    assert!(room.pending_timers().is_empty());
    let read = room.request(HttpRequest::new("GET", "/doc"));
    assert_eq!(read.status, 200);
    assert!(room.pending_timers().is_empty(), "a read does not");
    post_json(&mut room, "/text/t", json!({"insert": "x"}));
    assert_eq!(
        room.pending_timers(),
        [(KEEP_EMPTY_TIMER, Duration::from_secs(5))]
    );
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    assert_eq!(alice.text("t"), "x");
    assert!(room.pending_timers().is_empty());
    room.disconnect(a, DisconnectReason::Closed);
}

/// The exact size of the room's document.
fn exact_size(room: &mut TestRoom<Collab>) -> usize {
    room.request(HttpRequest::new("GET", "/update")).body.len()
}

#[test]
fn map_edits_count_the_root_name_for_every_key() {
    // An item at the start of a map carries the root's name: 20 keys under
    // a 200-byte name grow the document by over 4 KB, from a 200-byte body.
    let mut room = room_with(json!({"max_doc_bytes": 3000}));
    let name = "n".repeat(200);
    let set: serde_json::Map<String, Value> =
        (0..20).map(|i| (format!("k{i:02}"), json!(1))).collect();
    let response = post_json(&mut room, &format!("/map/{name}"), json!({ "set": set }));
    assert_eq!(response.status, 413, "{}", response.body_text());
    assert!(exact_size(&mut room) <= 3000);
    assert_eq!(doc_json(&mut room), json!({}));
    // A short name fits.
    let response = post_json(&mut room, "/map/m", json!({ "set": set }));
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert!(exact_size(&mut room) <= 3000);
}

#[test]
fn root_names_are_at_most_256_bytes() {
    let mut room = room();
    let long = "é".repeat(128) + "x"; // 257 bytes
    for path in [format!("/text/{long}"), format!("/map/{long}")] {
        let body = if path.starts_with("/text") {
            json!({"insert": "x"})
        } else {
            json!({"set": {"k": 1}})
        };
        let response = post_json(&mut room, &path, body);
        assert_eq!(response.status, 400, "{path}");
        assert!(
            error_of(&response).contains("257 bytes"),
            "{}",
            error_of(&response)
        );
    }
    let fits = "é".repeat(128);
    let response = post_json(&mut room, &format!("/text/{fits}"), json!({"insert": "x"}));
    assert_eq!(response.status, 200);
    assert_eq!(doc_json(&mut room), json!({ fits: "x" }));
}

#[test]
fn a_rest_edit_that_would_pass_the_cap_is_undone() {
    // Clearing adds a tombstone range per client to the delete set: with
    // content from 200 clients the document grows by about 1 KB, which no
    // estimate made beforehand knows. The edit that crosses the cap is
    // undone and refused, and never reaches the clients.
    let mut room = room();
    for id in 1..=200 {
        let update = Peer::new(1_000_000 + id).insert(&format!("t{}", id % 3), 0, "abc");
        let response = room.request(HttpRequest::new("POST", "/update").with_body(update));
        assert_eq!(response.status, 200);
    }
    let size = exact_size(&mut room);
    let state = room.request(HttpRequest::new("GET", "/update")).body;
    let cap = size + 300;
    let mut room = room_with(json!({ "max_doc_bytes": cap }));
    let response = room.request(HttpRequest::new("POST", "/update").with_body(state));
    assert_eq!(response.status, 200, "{}", response.body_text());
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    let before = doc_json(&mut room);

    let response = room.request(HttpRequest::new("DELETE", "/doc"));
    assert_eq!(response.status, 413, "{}", response.body_text());
    assert!(exact_size(&mut room) <= cap);
    assert_eq!(doc_json(&mut room), before, "undone");
    assert!(room.take_sent(a).is_empty(), "nothing reached the client");
    // The room goes on with the document as it was.
    let bob = Peer::new(2);
    join(&mut room, &bob);
    assert_eq!(bob.text("t1"), alice.text("t1"));
    room.message(a, update_frame(alice.insert("t1", 0, "y")));
    assert_eq!(json!(alice.text("t1")), doc_json(&mut room)["t1"]);
    let response = post_json(&mut room, "/text/t1", json!({"insert": "z", "index": 0}));
    assert_eq!(response.status, 200, "{}", response.body_text());
    deliver(&mut room, a, &alice);
    assert_eq!(json!(alice.text("t1")), doc_json(&mut room)["t1"]);
}

#[test]
fn post_update_refusals_have_the_status_of_their_kind() {
    // One mapping (DocError::status) for REST edits and POST /update.
    use crate::document::DocError;
    let mut room = room_with(json!({"max_doc_bytes": 200}));
    let alice = Peer::new(1);
    let _first = alice.insert("t", 0, "ab");
    let incomplete = alice.insert("t", 2, "cd");
    let too_large = Peer::new(2).insert("t", 0, &"z".repeat(300));
    for (body, status, needle) in [
        (vec![1, 2, 3, 4], 400, "malformed"),
        (incomplete, 400, "incomplete"),
        (too_large, 413, "too large"),
    ] {
        let response = room.request(HttpRequest::new("POST", "/update").with_body(body));
        assert_eq!(response.status, status, "{}", response.body_text());
        assert!(
            error_of(&response).contains(needle),
            "{}",
            error_of(&response)
        );
    }
    let cases = [
        (
            DocError::Malformed(String::new()),
            400,
            Some(crate::CLOSE_MALFORMED),
        ),
        (DocError::Incomplete(String::new()), 400, None),
        (
            DocError::TooLarge {
                size: 1,
                incoming: 1,
                limit: 1,
            },
            413,
            None,
        ),
    ];
    for (err, status, close) in cases {
        assert_eq!((err.status(), err.close_code()), (status, close), "{err}");
    }
    assert_eq!(doc_json(&mut room), json!({}));
}

#[test]
fn a_refused_edit_creates_no_root() {
    let mut room = room();
    for (path, edit) in [
        ("/text/new", json!({"insert": "x", "index": 5})),
        ("/text/new", json!({"delete": 1})),
        ("/text/new", json!({"insert": "x", "delete": 1})),
        ("/map/m", json!({})),
    ] {
        let response = post_json(&mut room, path, edit.clone());
        assert_eq!(response.status, 400, "{path} {edit}");
    }
    assert_eq!(doc_json(&mut room), json!({}));
    // So the name is still free for either kind.
    let response = post_json(&mut room, "/map/new", json!({"set": {"k": 1}}));
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(doc_json(&mut room), json!({"new": {"k": 1}}));
}
