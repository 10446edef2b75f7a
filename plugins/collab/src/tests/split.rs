//! Cutting a document into updates of bounded size: every part applies on
//! its own, in order, and together they make the same document.

use yrs::types::ToJson;
use yrs::{Any, Array, ArrayPrelim, Doc, GetString, Map, ReadTxn, Text, Transact, WriteTxn};

use super::*;
use crate::split::split;

/// A document of several peers: long runs of text (one struct each, with
/// characters of 1 to 4 UTF-8 bytes and surrogate pairs in UTF-16), text
/// inserted inside other peers' runs, deletions, a long array of values,
/// a map.
fn busy_document() -> Peer {
    let peers: Vec<Peer> = (1..=3).map(Peer::new).collect();
    let runs = [
        "plain ascii ",
        "é ü ß ",
        "漢字かな ",
        "😀🎉 ",
        "mixed é😀x ",
    ];
    for (round, run) in runs.iter().cycle().take(15).enumerate() {
        let peer = &peers[round % peers.len()];
        let text = peer.doc.get_or_insert_text("t");
        {
            let mut txn = peer.doc.transact_mut();
            let len = text.len(&txn);
            let at = if round % 2 == 0 { len } else { len / 2 };
            // A long run: one struct, larger than the small budgets below.
            text.insert(&mut txn, at, &run.repeat(400));
            if round % 3 == 0 && len > 100 {
                text.remove_range(&mut txn, len / 3, 50);
            }
            let map = txn.get_or_insert_map("m");
            map.insert(&mut txn, format!("k{round}"), round as i64);
            if round == 4 {
                let array = txn.get_or_insert_array("a");
                let values: Vec<Any> = (0..3000).map(|i| Any::from(format!("v{i}"))).collect();
                array.insert_range(&mut txn, 0, values);
                array.insert(&mut txn, 1, ArrayPrelim::default());
            }
        }
        // Everyone sees everything before the next round: runs land inside
        // other peers' structs.
        let update = peer.state();
        for other in &peers {
            other.apply(&update);
        }
    }
    peers.into_iter().next().expect("three peers")
}

/// The document's roots; the map as sorted entries, so that equality does
/// not depend on the order of its keys.
fn content(doc: &Doc) -> (String, Vec<(String, String)>, String) {
    let txn = doc.transact();
    let text = txn
        .get_text("t")
        .map(|t| t.get_string(&txn))
        .unwrap_or_default();
    let mut map: Vec<(String, String)> = txn
        .get_map("m")
        .map(|m| {
            m.iter(&txn)
                .map(|(key, value)| (key.to_owned(), value.to_string(&txn)))
                .collect()
        })
        .unwrap_or_default();
    map.sort();
    let array = txn
        .get_array("a")
        .map(|a| a.to_json(&txn).to_string())
        .unwrap_or_default();
    (text, map, array)
}

#[test]
fn parts_rebuild_the_document_at_every_size() {
    let source = busy_document();
    let update = source.state();
    assert!(update.len() > 50_000, "{}", update.len());
    for max in [
        1_100,
        4_000,
        16_384,
        100_000,
        update.len(),
        update.len() * 2,
    ] {
        let parts = split(&update, max).expect("the room's own encoding splits");
        if max >= update.len() {
            assert_eq!(parts, std::slice::from_ref(&update));
        } else {
            assert!(parts.len() > 1, "max {max}: {} parts", parts.len());
        }
        // Nothing here is a struct that cannot be cut, so every part fits.
        for part in &parts {
            assert!(
                part.len() <= max,
                "max {max}: a part of {} bytes",
                part.len()
            );
        }
        let joiner = Peer::new(99);
        for part in &parts {
            joiner.apply(part);
        }
        assert_eq!(content(&joiner.doc), content(&source.doc), "max {max}");
        assert_eq!(
            joiner.doc.transact().state_vector(),
            source.doc.transact().state_vector(),
            "max {max}"
        );
    }
}

#[test]
fn a_diff_against_a_state_vector_splits_too() {
    let source = busy_document();
    let joiner = Peer::new(98);
    // The joiner has the first part of the document already.
    let first = split(&source.state(), 20_000).expect("splits")[0].clone();
    joiner.apply(&first);
    let diff = source
        .doc
        .transact()
        .encode_state_as_update_v1(&joiner.doc.transact().state_vector());
    for part in split(&diff, 3_000).expect("splits") {
        assert!(part.len() <= 3_000);
        joiner.apply(&part);
    }
    assert_eq!(content(&joiner.doc), content(&source.doc));
}

#[test]
fn a_struct_that_cannot_be_cut_goes_alone() {
    let peer = Peer::new(5);
    {
        let array = peer.doc.get_or_insert_array("a");
        let mut txn = peer.doc.transact_mut();
        array.insert(&mut txn, 0, Any::from(vec![7u8; 10_000]));
        array.insert(&mut txn, 1, "after");
    }
    let parts = split(&peer.state(), 2_000).expect("splits");
    assert!(parts.iter().any(|part| part.len() > 10_000));
    let joiner = Peer::new(6);
    for part in &parts {
        joiner.apply(part);
    }
    assert_eq!(content(&joiner.doc), content(&peer.doc));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let update = Peer::new(1).insert("t", 0, &"x".repeat(5_000));
    for cut in [1, 3, 10, update.len() / 2, update.len() - 1] {
        // Whatever comes out of a truncated update, nothing panics.
        let _ = split(&update[..cut], 100);
    }
    assert!(split(&[0xff; 200], 100).is_err());
}
