//! Hand-built hostile updates: the guard refuses them before yrs sees them.

use yrs::encoding::write::Write;

use super::*;
use crate::guard::{self, MAX_DEPTH, Problem};

/// One client's structs for [`update`].
struct Run {
    client: u64,
    clock: u32,
    structs: Vec<Vec<u8>>,
}

/// A v1 update from runs and a delete set of `(client, clock, len)`.
fn update(runs: &[Run], deletes: &[(u64, u32, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.write_var(runs.len());
    for run in runs {
        out.write_var(run.structs.len());
        out.write_var(run.client);
        out.write_var(run.clock);
        for item in &run.structs {
            out.extend_from_slice(item);
        }
    }
    out.write_var(deletes.len());
    for &(client, clock, len) in deletes {
        out.write_var(client);
        out.write_var(1u32);
        out.write_var(clock);
        out.write_var(len);
    }
    out
}

/// A string item in root `t` (no origins).
fn root_text(text: &str) -> Vec<u8> {
    let mut out = vec![4];
    out.write_var(1u32);
    out.write_string("t");
    out.write_string(text);
    out
}

/// A string item after `origin`.
fn text_after(origin: (u64, u32), text: &str) -> Vec<u8> {
    let mut out = vec![4 | 0b1000_0000];
    out.write_var(origin.0);
    out.write_var(origin.1);
    out.write_string(text);
    out
}

fn check(bytes: &[u8]) -> Result<(), Problem> {
    guard::check(bytes, &yrs::StateVector::default()).map(drop)
}

fn is_malformed(result: Result<(), Problem>) -> bool {
    matches!(result, Err(Problem::Malformed(_)))
}

fn is_incomplete(result: Result<(), Problem>) -> bool {
    matches!(result, Err(Problem::Incomplete(_)))
}

#[test]
fn real_updates_pass() {
    let alice = Peer::new(1);
    let first = alice.insert("t", 0, "hello 😀");
    assert_eq!(check(&first), Ok(()));
    let built = update(
        &[Run {
            client: 1,
            clock: 0,
            structs: vec![root_text("ab"), text_after((1, 1), "c")],
        }],
        &[(1, 0, 1)],
    );
    assert_eq!(check(&built), Ok(()));
    // yrs reads it the same way.
    let peer = Peer::new(5);
    peer.apply(&built);
    assert_eq!(peer.text("t"), "bc", "the delete set removed the a");
}

#[test]
fn gaps_and_unknown_references_are_incomplete() {
    let gap = update(
        &[Run {
            client: 1,
            clock: 5,
            structs: vec![root_text("x")],
        }],
        &[],
    );
    assert!(is_incomplete(check(&gap)));
    let unknown_origin = update(
        &[Run {
            client: 1,
            clock: 0,
            structs: vec![text_after((7, 3), "x")],
        }],
        &[],
    );
    assert!(is_incomplete(check(&unknown_origin)));
    let unknown_delete = update(&[], &[(9, 0, 4)]);
    assert!(is_incomplete(check(&unknown_delete)));
    let mut skip = vec![10];
    skip.write_var(3u32);
    let with_skip = update(
        &[Run {
            client: 1,
            clock: 0,
            structs: vec![root_text("a"), skip, text_after((1, 0), "b")],
        }],
        &[],
    );
    assert!(is_incomplete(check(&with_skip)));
}

#[test]
fn a_gap_is_fine_once_the_document_has_the_start() {
    let mut room = room();
    let alice = Peer::new(1);
    let a = join(&mut room, &alice);
    room.message(a, update_frame(alice.insert("t", 0, "abc")));
    let next = update(
        &[Run {
            client: 1,
            clock: 3,
            structs: vec![text_after((1, 2), "d")],
        }],
        &[],
    );
    room.message(a, update_frame(next));
    assert!(room.closed().is_empty());
    assert_eq!(doc_json(&mut room), serde_json::json!({"t": "abcd"}));
}

#[test]
fn structural_lies_are_malformed() {
    let twice = update(
        &[
            Run {
                client: 1,
                clock: 0,
                structs: vec![root_text("a")],
            },
            Run {
                client: 1,
                clock: 0,
                structs: vec![root_text("b")],
            },
        ],
        &[],
    );
    assert!(is_malformed(check(&twice)));
    let own_future = update(
        &[Run {
            client: 1,
            clock: 0,
            structs: vec![text_after((1, 0), "a")],
        }],
        &[],
    );
    assert!(is_malformed(check(&own_future)));
    let overflow = update(
        &[Run {
            client: 1,
            clock: u32::MAX - 1,
            structs: vec![root_text("abc")],
        }],
        &[],
    );
    assert!(is_malformed(check(&overflow)));
    let delete_overflow = update(&[], &[(1, u32::MAX, 5)]);
    assert!(is_malformed(check(&delete_overflow)));
    let mut huge_count = Vec::new();
    huge_count.write_var(1u32);
    huge_count.write_var(u32::MAX);
    huge_count.write_var(1u64);
    huge_count.write_var(0u32);
    assert!(is_malformed(check(&huge_count)));
    assert!(is_malformed(check(&[])));
    assert!(is_malformed(check(&[0])));
}

#[test]
fn a_dependency_cycle_is_malformed() {
    let update = update(
        &[
            Run {
                client: 1,
                clock: 0,
                structs: vec![text_after((2, 0), "a")],
            },
            Run {
                client: 2,
                clock: 0,
                structs: vec![text_after((1, 0), "b")],
            },
        ],
        &[],
    );
    assert!(is_malformed(check(&update)));
}

#[test]
fn deeply_nested_values_are_refused_before_yrs_decodes_them() {
    // An Any item (content 8) in root `t` holding arrays nested 10,000 deep:
    // yrs's recursive decoder would overflow the stack.
    let mut item = vec![8];
    item.write_var(1u32);
    item.write_string("t");
    item.write_var(1u32);
    for _ in 0..10_000 {
        item.push(117);
        item.write_var(1u32);
    }
    item.push(126);
    let nested = update(
        &[Run {
            client: 1,
            clock: 0,
            structs: vec![item],
        }],
        &[],
    );
    assert!(is_malformed(check(&nested)));
    let mut room = room();
    let a = room.connect();
    room.message(a, update_frame(nested));
    assert_eq!(room.closed()[0].1, crate::CLOSE_MALFORMED);
    // Nesting within the limit is fine.
    let mut item = vec![8];
    item.write_var(1u32);
    item.write_string("t");
    item.write_var(1u32);
    for _ in 0..MAX_DEPTH - 1 {
        item.push(117);
        item.write_var(1u32);
    }
    item.push(126);
    let fine = update(
        &[Run {
            client: 1,
            clock: 0,
            structs: vec![item],
        }],
        &[],
    );
    assert_eq!(check(&fine), Ok(()));
}

#[test]
fn count_bombs_in_small_frames_are_refused() {
    // A state vector and an awareness update declaring 2^32 - 1 entries.
    let mut sv = Vec::new();
    sv.write_var(u32::MAX);
    let mut step1 = vec![0, 0];
    step1.write_buf(&sv);
    assert!(protocol::decode(&step1).is_err());
    let mut awareness = vec![1];
    awareness.write_buf(&sv);
    assert!(protocol::decode(&awareness).is_err());
}
