//! The y-protocols wire format: decoding a client's binary frame and
//! encoding the frames the server sends.
//!
//! Every frame holds one message: a varint message type, then its body.
//!
//! | type | body |
//! |---|---|
//! | `0` sync | varint sub-type: `0` step 1 (state vector), `1` step 2 (update), `2` update; then a length-prefixed buffer |
//! | `1` awareness | a length-prefixed awareness update: `(clientID, clock, JSON state)` entries |
//! | `3` query-awareness | nothing |
//!
//! Other types (`2` auth, custom extensions) are reported as
//! [`Incoming::Other`] so the caller can ignore them, as the reference
//! server does. Bytes after the first message are ignored, also like the
//! reference server.

use std::fmt;

use yrs::StateVector;
use yrs::encoding::read::{Cursor, Read};
use yrs::sync::protocol::{MSG_AWARENESS, MSG_QUERY_AWARENESS, MSG_SYNC};
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;

/// One decoded client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Sync step 1: the client's state vector; answer with step 2.
    SyncStep1(StateVector),
    /// Sync step 2: the part of the client's document the server lacks (a v1
    /// update).
    SyncStep2(Vec<u8>),
    /// A document update (v1) made by the client.
    Update(Vec<u8>),
    /// An awareness update.
    Awareness(AwarenessUpdate),
    /// A request for every known awareness state.
    QueryAwareness,
    /// A message type this server does not handle (e.g. `2`, auth).
    Other(u64),
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes the first message of a binary frame.
///
/// Counts declared in a state vector or an awareness update are checked
/// against the bytes that follow before yrs decodes them, so a short
/// hostile frame cannot make it reserve memory for millions of entries.
pub fn decode(frame: &[u8]) -> Result<Incoming, DecodeError> {
    let mut cursor = Cursor::new(frame);
    let bad = |what: &str, err: &dyn fmt::Display| DecodeError(format!("bad {what}: {err}"));
    let tag: u64 = cursor.read_var().map_err(|err| bad("message type", &err))?;
    if tag == u64::from(MSG_QUERY_AWARENESS) {
        return Ok(Incoming::QueryAwareness);
    }
    if tag == u64::from(MSG_AWARENESS) {
        let body = cursor
            .read_buf()
            .map_err(|err| bad("awareness message", &err))?;
        // Each entry takes at least 3 bytes: id, clock, state length.
        check_count(body, 3).map_err(|err| bad("awareness message", &err))?;
        let update =
            AwarenessUpdate::decode_v1(body).map_err(|err| bad("awareness message", &err))?;
        return Ok(Incoming::Awareness(update));
    }
    if tag != u64::from(MSG_SYNC) {
        return Ok(Incoming::Other(tag));
    }
    let kind: u64 = cursor.read_var().map_err(|err| bad("sync message", &err))?;
    let body = cursor.read_buf().map_err(|err| bad("sync message", &err))?;
    match kind {
        0 => {
            // Each entry takes at least 2 bytes: client, clock.
            check_count(body, 2).map_err(|err| bad("state vector", &err))?;
            let sv = StateVector::decode_v1(body).map_err(|err| bad("state vector", &err))?;
            Ok(Incoming::SyncStep1(sv))
        }
        1 => Ok(Incoming::SyncStep2(body.to_vec())),
        2 => Ok(Incoming::Update(body.to_vec())),
        other => Err(DecodeError(format!("bad sync message type {other}"))),
    }
}

/// Checks that the count `body` starts with could fit in the rest of it,
/// at `min_bytes` per entry.
fn check_count(body: &[u8], min_bytes: u64) -> Result<(), String> {
    let mut cursor = Cursor::new(body);
    let count: u64 = cursor.read_var().map_err(|err| err.to_string())?;
    let rest = (body.len() - cursor.next) as u64;
    if count.saturating_mul(min_bytes) > rest {
        return Err(format!("{count} entries cannot fit in {rest} bytes"));
    }
    Ok(())
}

/// A sync step 1 frame carrying the server's state vector.
pub fn sync_step1(state_vector: StateVector) -> Vec<u8> {
    Message::Sync(SyncMessage::SyncStep1(state_vector)).encode_v1()
}

/// A sync step 2 frame carrying what the client lacks.
pub fn sync_step2(update: Vec<u8>) -> Vec<u8> {
    Message::Sync(SyncMessage::SyncStep2(update)).encode_v1()
}

/// A sync update frame carrying a document change.
pub fn sync_update(update: Vec<u8>) -> Vec<u8> {
    Message::Sync(SyncMessage::Update(update)).encode_v1()
}

/// An awareness frame.
pub fn awareness(update: AwarenessUpdate) -> Vec<u8> {
    Message::Awareness(update).encode_v1()
}

/// A query-awareness frame (the server never sends one).
#[cfg(test)]
pub(crate) fn query_awareness() -> Vec<u8> {
    Message::AwarenessQuery.encode_v1()
}
