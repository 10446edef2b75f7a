//! Tests through the SDK harness: real yrs documents play the Yjs clients
//! and exchange y-protocols frames with the room.

mod awareness;
mod guard;
mod http;
mod lifecycle;
mod malformed;
mod split;
mod storage;
mod sync;

use std::collections::HashMap;

use roomhost_sdk::testing::TestRoom;
use roomhost_sdk::{ClientId, Message};
use yrs::sync::AwarenessUpdate;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::updates::decoder::Decode;
use yrs::{
    ClientID, Doc, GetString, Map, OffsetKind, Options, ReadTxn, StateVector, Text, Transact,
    Update,
};

use crate::Collab;
use crate::protocol::{self, Incoming};

/// A room with the default configuration.
pub fn room() -> TestRoom<Collab> {
    TestRoom::new()
}

/// A room with `config`.
pub fn room_with(config: serde_json::Value) -> TestRoom<Collab> {
    TestRoom::with_config(&config)
}

/// The frames `client` received since the last take, decoded.
pub fn received(room: &mut TestRoom<Collab>, client: ClientId) -> Vec<Incoming> {
    room.take_sent(client)
        .into_iter()
        .map(|message| match message {
            Message::Binary(frame) => match protocol::decode(&frame) {
                Ok(incoming) => incoming,
                Err(err) => panic!("the room sent an undecodable frame: {err}"),
            },
            Message::Text(text) => panic!("the room sent a text frame: {text}"),
        })
        .collect()
}

/// A Yjs client: a yrs document with a fixed client id.
pub struct Peer {
    pub doc: Doc,
}

impl Peer {
    /// A peer whose document uses client id `id`.
    pub fn new(id: u64) -> Self {
        Self {
            doc: Doc::with_options(Options {
                offset_kind: OffsetKind::Utf16,
                ..Options::with_client_id(ClientID::new(id))
            }),
        }
    }

    /// A sync step 1 frame with this peer's state vector.
    pub fn step1(&self) -> Vec<u8> {
        protocol::sync_step1(self.doc.transact().state_vector())
    }

    /// Applies a v1 update.
    pub fn apply(&self, update: &[u8]) {
        let update = Update::decode_v1(update).expect("a valid update");
        self.doc
            .transact_mut()
            .apply_update(update)
            .expect("the update applies");
    }

    /// Plays the y-websocket client: applies step 2 and updates, and
    /// returns the frames it answers with (step 2 for a step 1).
    pub fn handle(&self, frames: &[Incoming]) -> Vec<Vec<u8>> {
        let mut replies = Vec::new();
        for frame in frames {
            match frame {
                Incoming::SyncStep1(sv) => {
                    let diff = self.doc.transact().encode_state_as_update_v1(sv);
                    replies.push(protocol::sync_step2(diff));
                }
                Incoming::SyncStep2(update) | Incoming::Update(update) => self.apply(update),
                _ => {}
            }
        }
        replies
    }

    /// Inserts `chunk` at `index` of text `name` and returns the update.
    pub fn insert(&self, name: &str, index: u32, chunk: &str) -> Vec<u8> {
        let text = self.doc.get_or_insert_text(name);
        let mut txn = self.doc.transact_mut();
        text.insert(&mut txn, index, chunk);
        txn.encode_update_v1()
    }

    /// Sets `key` of map `name` and returns the update.
    pub fn set(&self, name: &str, key: &str, value: impl Into<yrs::Any>) -> Vec<u8> {
        let map = self.doc.get_or_insert_map(name);
        let mut txn = self.doc.transact_mut();
        map.insert(&mut txn, key, value.into());
        txn.encode_update_v1()
    }

    /// The content of text `name`.
    pub fn text(&self, name: &str) -> String {
        let text = self.doc.get_or_insert_text(name);
        text.get_string(&self.doc.transact())
    }

    /// The peer's whole state as a v1 update.
    pub fn state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }
}

/// A sync update frame.
pub fn update_frame(update: Vec<u8>) -> Vec<u8> {
    protocol::sync_update(update)
}

/// An awareness frame with one entry.
pub fn awareness_frame(id: u64, clock: u32, json: &str) -> Vec<u8> {
    protocol::awareness(awareness_update(&[(id, clock, json)]))
}

/// An awareness update with `entries` of `(id, clock, json)`.
pub fn awareness_update(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
    let clients: HashMap<ClientID, AwarenessUpdateEntry> = entries
        .iter()
        .map(|&(id, clock, json)| {
            (
                ClientID::new(id),
                AwarenessUpdateEntry {
                    clock,
                    json: json.into(),
                },
            )
        })
        .collect();
    AwarenessUpdate { clients }
}

/// The `(id, clock, json)` entries of the awareness frames in `frames`,
/// sorted.
pub fn awareness_entries(frames: &[Incoming]) -> Vec<(u64, u32, String)> {
    let mut entries: Vec<(u64, u32, String)> = frames
        .iter()
        .filter_map(|frame| match frame {
            Incoming::Awareness(update) => Some(update),
            _ => None,
        })
        .flat_map(|update| {
            update
                .clients
                .iter()
                .map(|(id, entry)| (id.get(), entry.clock, entry.json.to_string()))
        })
        .collect();
    entries.sort();
    entries
}

/// Connects a peer and runs the whole handshake as y-websocket does: the
/// room's step 1 is answered with step 2, and the peer's own step 1 gets
/// the room's step 2. Returns the connection id; the frames are consumed.
pub fn join(room: &mut TestRoom<Collab>, peer: &Peer) -> ClientId {
    let client = room.connect();
    let greeting = received(room, client);
    assert!(
        matches!(greeting.first(), Some(Incoming::SyncStep1(_))),
        "the room opens with sync step 1, got {greeting:?}"
    );
    for reply in peer.handle(&greeting) {
        room.message(client, reply);
    }
    room.message(client, peer.step1());
    let answer = received(room, client);
    assert!(
        answer.iter().any(|f| matches!(f, Incoming::SyncStep2(_))),
        "the room answers step 1 with step 2, got {answer:?}"
    );
    peer.handle(&answer);
    client
}

/// Delivers every frame `client` received to `peer`.
pub fn deliver(room: &mut TestRoom<Collab>, client: ClientId, peer: &Peer) {
    let frames = received(room, client);
    peer.handle(&frames);
}

/// The room's document as JSON (through `GET /doc`).
pub fn doc_json(room: &mut TestRoom<Collab>) -> serde_json::Value {
    let response = room.request(roomhost_sdk::HttpRequest::new("GET", "/doc"));
    assert_eq!(response.status, 200, "{}", response.body_text());
    serde_json::from_slice(&response.body).expect("GET /doc answers JSON")
}
