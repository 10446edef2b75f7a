//! Frames that are not y-protocols messages: closed with 4400, never a
//! panic, the document and the other clients untouched.

use serde_json::json;

use super::*;
use crate::sync::TEXT_FRAME_REASON;
use crate::{CLOSE_MALFORMED, Collab};

/// Sends `frame` from a fresh client and returns the close code it got, if
/// any, checking that the document and the other client are untouched.
fn send_bad(room: &mut TestRoom<Collab>, frame: Message) -> Option<u16> {
    let watcher = room.connect();
    let client = room.connect();
    room.take_all();
    let before = doc_json(room);
    let closes = room.closed().len();
    room.message(client, frame);
    assert_eq!(doc_json(room), before, "the document is untouched");
    assert!(room.take_sent(watcher).is_empty(), "no fan-out");
    let code = room.closed().get(closes).map(|(who, code, _)| {
        assert_eq!(*who, client);
        *code
    });
    if room.is_connected(client) {
        room.disconnect(client, roomhost_sdk::DisconnectReason::Closed);
    }
    room.disconnect(watcher, roomhost_sdk::DisconnectReason::Closed);
    code
}

fn seeded_room() -> TestRoom<Collab> {
    let mut room = room();
    let alice = Peer::new(1);
    alice.insert("t", 0, "keep me");
    let a = join(&mut room, &alice);
    room.disconnect(a, roomhost_sdk::DisconnectReason::Closed);
    room
}

#[test]
fn text_frames_are_closed_with_a_reason() {
    let mut room = seeded_room();
    let client = room.connect();
    room.message(client, "hello");
    assert_eq!(
        room.closed().last(),
        Some(&(client, CLOSE_MALFORMED, TEXT_FRAME_REASON.to_owned()))
    );
}

#[test]
fn undecodable_frames_are_closed_with_4400() {
    let mut room = seeded_room();
    let bad: &[&[u8]] = &[
        &[],                       // empty
        &[0x80],                   // truncated varint
        &[0],                      // sync without sub-type
        &[0, 7, 0],                // unknown sync sub-type
        &[0, 0],                   // step 1 without its buffer
        &[0, 0, 5, 1],             // step 1 buffer shorter than its length
        &[0, 0, 2, 0xff, 0xff],    // state vector garbage
        &[0, 2, 3, 1, 2, 3],       // update garbage
        &[0, 1, 1, 9],             // step 2 garbage
        &[1],                      // awareness without its buffer
        &[1, 3, 1, 1, 1],          // awareness entry truncated
        &[1, 5, 1, 1, 1, 1, 0xc3], // awareness state not UTF-8
    ];
    for frame in bad {
        let code = send_bad(&mut room, Message::binary(frame.to_vec()));
        assert_eq!(code, Some(CLOSE_MALFORMED), "frame {frame:?}");
    }
    assert_eq!(doc_json(&mut room), json!({"t": "keep me"}));
}

#[test]
fn unknown_message_types_are_ignored() {
    let mut room = seeded_room();
    for frame in [
        vec![2, 0],
        vec![2, 1, 1, b'x'],
        vec![100, 1, 2, 3],
        vec![0xff, 0x01],
    ] {
        assert_eq!(send_bad(&mut room, Message::binary(frame)), None);
    }
}

#[test]
fn trailing_bytes_after_a_message_are_ignored() {
    let mut room = seeded_room();
    let client = room.connect();
    room.take_all();
    let mut frame = protocol::sync_step1(yrs::StateVector::default());
    frame.extend_from_slice(&[9, 9, 9]);
    room.message(client, frame);
    assert!(room.closed().is_empty());
    let answer = received(&mut room, client);
    assert!(matches!(answer.as_slice(), [Incoming::SyncStep2(_)]));
}

/// A small deterministic generator for the fuzz loop.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Valid frames from several peers (text with formatting, maps, arrays,
/// XML, deletions, awareness) for the fuzz loop to mutate.
fn fuzz_seeds() -> Vec<Vec<u8>> {
    use yrs::{Array, XmlElementPrelim, XmlFragment, XmlTextPrelim};

    let alice = Peer::new(1);
    let bob = Peer::new(2);
    let mut seeds = vec![
        update_frame(alice.insert("t", 0, "hello")),
        update_frame(alice.set("m", "k", "v")),
        update_frame(alice.insert("t", 2, "😀 more")),
        alice.step1(),
        awareness_frame(5, 1, r#"{"user":{"name":"a"}}"#),
        protocol::query_awareness(),
    ];
    bob.apply(&alice.state());
    seeds.push(update_frame(bob.insert("t", 3, "bob")));
    {
        let array = alice.doc.get_or_insert_array("a");
        let xml = alice.doc.get_or_insert_xml_fragment("x");
        let text = alice.doc.get_or_insert_text("t");
        let mut txn = alice.doc.transact_mut();
        array.insert_range(&mut txn, 0, [1, 2, 3]);
        array.insert(&mut txn, 1, yrs::MapPrelim::from([("deep", "value")]));
        let p = xml.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
        p.insert(&mut txn, 0, XmlTextPrelim::new("para"));
        yrs::Text::remove_range(&text, &mut txn, 1, 3);
        let bold = yrs::types::Attrs::from([("bold".into(), true.into())]);
        yrs::Text::format(&text, &mut txn, 0, 2, bold);
        seeds.push(update_frame(txn.encode_update_v1()));
    }
    seeds.push(protocol::sync_step2(alice.state()));
    seeds.push(protocol::sync_step2(bob.state()));
    seeds.push(bob.step1());
    seeds
}

/// A frame derived from a random seed by one to three random mutations.
fn mutate(rng: &mut Lcg, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut frame = seeds[(rng.next() as usize) % seeds.len()].clone();
    for _ in 0..=(rng.next() % 3) {
        if frame.is_empty() {
            break;
        }
        match rng.next() % 5 {
            0 => {
                let at = (rng.next() as usize) % frame.len();
                frame[at] ^= 1 << (rng.next() % 8);
            }
            1 => {
                let at = (rng.next() as usize) % frame.len();
                frame[at] = rng.next() as u8;
            }
            2 => frame.truncate((rng.next() as usize) % frame.len()),
            3 => {
                let at = (rng.next() as usize) % (frame.len() + 1);
                frame.insert(at, rng.next() as u8);
            }
            _ => {
                // Splice in a slice of another seed.
                let other = &seeds[(rng.next() as usize) % seeds.len()];
                let from = (rng.next() as usize) % other.len();
                let to = from + (rng.next() as usize) % (other.len() - from + 1);
                let at = (rng.next() as usize) % (frame.len() + 1);
                frame.splice(at..at, other[from..to].iter().copied());
            }
        }
    }
    frame
}

/// Sends thousands of mutated frames (seed and count from
/// `COLLAB_FUZZ_SEED` / `COLLAB_FUZZ_ROUNDS`, default 42 / 3000): the room
/// never panics, and keeps working. Run it under valgrind with other seeds
/// to look for memory errors in yrs.
#[test]
fn mutated_frames_never_panic_the_room() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let mut rng = Lcg(env("COLLAB_FUZZ_SEED", 42));
    let rounds = env("COLLAB_FUZZ_ROUNDS", 3000);
    let trace = std::env::var_os("COLLAB_FUZZ_TRACE").is_some();
    let seeds = fuzz_seeds();
    let mut room = room();
    let watcher = join(&mut room, &Peer::new(9));
    for round in 0..rounds {
        let frame = mutate(&mut rng, &seeds);
        if trace {
            eprintln!("round {round}: {frame:?}");
        }
        let client = room.connect();
        room.message(client, frame);
        if room.is_connected(client) {
            room.disconnect(client, roomhost_sdk::DisconnectReason::Closed);
        }
        if round % 256 == 0 {
            room.take_all();
            doc_json(&mut room);
        }
    }
    assert!(room.is_connected(watcher));
    // The room still works: a late joiner gets a document that loads.
    let bob = Peer::new(10);
    join(&mut room, &bob);
    let state = room.request(roomhost_sdk::HttpRequest::new("GET", "/update"));
    assert_eq!(state.status, 200);
    Peer::new(11).apply(&state.body);
}
