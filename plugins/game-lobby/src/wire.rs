//! The wire format: the postcard-encoded [`JoinRequest`] of the handshake,
//! the relay's replies, and the message type bytes.
//!
//! Postcard is decoded by hand (no dependency): strings are a varint length
//! followed by UTF-8, `u16`/`u64` are LEB128 varints (little-endian groups of
//! seven bits, high bit = "more follows"), `bool` is one byte (`00`/`01`),
//! `Option` is `00`, or `01` followed by the value. Decoding follows
//! postcard's rules: a varint may not overflow its type (nor use more bytes
//! than the type needs), and bools and option tags must be `00` or `01`.
//!
//! Two request forms are accepted: the current five-field one, and the
//! older four-field one that ends right before `reconnect_token` (read as
//! `None`). Bytes left after a complete request make it malformed.
//!
//! Everything the relay writes itself uses big-endian integers.

use std::fmt;

/// Relay → host: a player joined or reconnected (`00` + `u16` id).
pub const NEW_CLIENT: u8 = 0x00;
/// Relay → host: a player left (`01` + `u16` id).
pub const CLIENT_DISCONNECTS: u8 = 0x01;
/// Host → relay: the host ends the game (`00`).
pub const SERVER_DISCONNECTS: u8 = 0x00;
/// Host → relay: kick a player (`01` + `u16` id).
pub const CLIENT_GETS_KICKED: u8 = 0x01;
/// Host → clients: an incremental update (`02` + payload).
pub const DELTA_UPDATE: u8 = 0x02;
/// Client → host: a remote call (`02` + payload from the client; `02` + `u16`
/// id + payload to the host).
pub const SERVER_RPC: u8 = 0x02;
/// Host → clients: the complete state (`03` + payload).
pub const FULL_UPDATE: u8 = 0x03;
/// Client → relay: the client ends its own connection (`03`).
pub const CLIENT_DISCONNECTS_SELF: u8 = 0x03;
/// Host → clients: the game restarts (`04` + payload).
pub const RESET: u8 = 0x04;
/// Relay → anyone: an error (`05` + UTF-8 text), followed by a close.
pub const SERVER_ERROR: u8 = 0x05;
/// Relay → player: the handshake succeeded (`06` + id + rule variation + token).
pub const HAND_SHAKE_RESPONSE: u8 = 0x06;

/// The length of the handshake reply: `[06][u16][u16][u64]`.
pub const HAND_SHAKE_RESPONSE_SIZE: usize = 13;

/// The first frame of every client: which game and room it wants, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The game, one of the configured names.
    pub game_id: String,
    /// The room within the game, chosen by the players.
    pub room_id: String,
    /// The rules variant; fixed by the room's creator.
    pub rule_variation: u16,
    /// Whether to create the room (as its host) rather than join it.
    pub create_room: bool,
    /// A token from an earlier handshake, to reconnect as that player.
    pub reconnect_token: Option<u64>,
    /// Whether the request came in the older four-field form: its client
    /// gets the older 5-byte handshake reply (see [`handshake_reply_for`]).
    pub four_field: bool,
}

/// Why a join request could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ended in the middle of a field.
    UnexpectedEnd,
    /// A varint overflowed its type or ran on too long.
    BadVarint,
    /// A string was not valid UTF-8.
    BadUtf8,
    /// A bool was neither `00` nor `01`.
    BadBool,
    /// An option tag was neither `00` nor `01`.
    BadOption,
    /// Bytes were left after a complete request.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnexpectedEnd => "the request ends in the middle of a field",
            Self::BadVarint => "a varint overflows its type",
            Self::BadUtf8 => "a string is not valid UTF-8",
            Self::BadBool => "a bool is neither 0 nor 1",
            Self::BadOption => "an option tag is neither 0 nor 1",
            Self::TrailingBytes => "bytes are left after the request",
        })
    }
}

impl std::error::Error for DecodeError {}

impl JoinRequest {
    /// The room key of the requested room: `"{room_id}#{game_id}"`.
    pub fn room_key(&self) -> String {
        room_key(&self.room_id, &self.game_id)
    }

    /// Decodes a request in either form (see the [module docs](self)).
    pub fn decode(bytes: &[u8]) -> Result<JoinRequest, DecodeError> {
        let mut reader = Reader { bytes };
        let game_id = reader.string()?;
        let room_id = reader.string()?;
        let rule_variation = reader.varint_u16()?;
        let create_room = reader.bool()?;
        // The older four-field form ends here.
        let four_field = reader.bytes.is_empty();
        let reconnect_token = if four_field {
            None
        } else {
            reader.option_u64()?
        };
        if !reader.bytes.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(JoinRequest {
            game_id,
            room_id,
            rule_variation,
            create_room,
            reconnect_token,
            four_field,
        })
    }

    /// Encodes the request in its form (canonical postcard): the four-field
    /// one ends before the token.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.game_id.len() + self.room_id.len() + 16);
        put_string(&mut out, &self.game_id);
        put_string(&mut out, &self.room_id);
        put_varint(&mut out, u64::from(self.rule_variation));
        out.push(u8::from(self.create_room));
        if self.four_field {
            return out;
        }
        match self.reconnect_token {
            None => out.push(0),
            Some(token) => {
                out.push(1);
                put_varint(&mut out, token);
            }
        }
        out
    }
}

/// The room key for `room_id` of game `game_id`: `"{room_id}#{game_id}"`.
pub fn room_key(room_id: &str, game_id: &str) -> String {
    format!("{room_id}#{game_id}")
}

/// The successful handshake reply: `[06][player_id][rule_variation][token]`,
/// big-endian, 13 bytes.
pub fn handshake_reply(player_id: u16, rule_variation: u16, token: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HAND_SHAKE_RESPONSE_SIZE);
    out.push(HAND_SHAKE_RESPONSE);
    out.extend_from_slice(&player_id.to_be_bytes());
    out.extend_from_slice(&rule_variation.to_be_bytes());
    out.extend_from_slice(&token.to_be_bytes());
    out
}

/// The older handshake reply, for clients that sent the four-field request:
/// `[06][player_id][rule_variation]`, big-endian, 5 bytes (no token: those
/// clients cannot reconnect).
pub const OLD_HAND_SHAKE_RESPONSE_SIZE: usize = 5;

/// The handshake reply in the form `request`'s client expects: the older
/// 5-byte one for a four-field request, else [`handshake_reply`].
pub fn handshake_reply_for(
    request: &JoinRequest,
    player_id: u16,
    rule_variation: u16,
    token: u64,
) -> Vec<u8> {
    let mut reply = handshake_reply(player_id, rule_variation, token);
    if request.four_field {
        reply.truncate(OLD_HAND_SHAKE_RESPONSE_SIZE);
    }
    reply
}

/// An error frame: `[05]` followed by `text` as UTF-8.
pub fn error_frame(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + text.len());
    out.push(SERVER_ERROR);
    out.extend_from_slice(text.as_bytes());
    out
}

/// A frame of type `kind` carrying player `id`: `[kind][id u16]`.
pub fn id_frame(kind: u8, id: u16) -> Vec<u8> {
    let [high, low] = id.to_be_bytes();
    vec![kind, high, low]
}

/// A client's remote call as the host receives it: `[02][id u16][payload]`,
/// where `payload` is what followed the client's `02`.
pub fn rpc_to_host(id: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + payload.len());
    out.extend_from_slice(&id_frame(SERVER_RPC, id));
    out.extend_from_slice(payload);
    out
}

/// Appends `value` as a LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        // Truncation intended: the low seven bits.
        let low = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Reads postcard values off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.bytes.split_first().ok_or(DecodeError::UnexpectedEnd)?;
        self.bytes = rest;
        Ok(first)
    }

    /// A varint of at most `bits` bits, as postcard reads it: at most
    /// `ceil(bits / 7)` bytes, and the last one may not carry bits beyond
    /// `bits`.
    fn varint(&mut self, bits: u32) -> Result<u64, DecodeError> {
        let max_bytes = bits.div_ceil(7);
        let last_byte_max = (1u64 << (bits - 7 * (max_bytes - 1))) - 1;
        let mut value = 0u64;
        for index in 0..max_bytes {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7F) << (7 * index);
            if byte & 0x80 == 0 {
                if index == max_bytes - 1 && u64::from(byte) > last_byte_max {
                    return Err(DecodeError::BadVarint);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    fn varint_u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.varint(16)?).map_err(|_| DecodeError::BadVarint)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = usize::try_from(self.varint(64)?).map_err(|_| DecodeError::UnexpectedEnd)?;
        if len > self.bytes.len() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let (text, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|_| DecodeError::BadUtf8)
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadBool),
        }
    }

    fn option_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.varint(64).map(Some),
            _ => Err(DecodeError::BadOption),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol page's example.
    const EXAMPLE: [u8; 18] = [
        0x0b, 0x74, 0x69, 0x63, 0x2d, 0x74, 0x61, 0x63, 0x2d, 0x74, 0x6f, 0x65, 0x02, 0x72, 0x31,
        0x00, 0x00, 0x00,
    ];

    fn example() -> JoinRequest {
        JoinRequest {
            game_id: "tic-tac-toe".into(),
            room_id: "r1".into(),
            rule_variation: 0,
            create_room: false,
            reconnect_token: None,
            four_field: false,
        }
    }

    #[test]
    fn decodes_the_protocol_example() {
        assert_eq!(JoinRequest::decode(&EXAMPLE), Ok(example()));
        assert_eq!(example().encode(), EXAMPLE);
        assert_eq!(example().room_key(), "r1#tic-tac-toe");
    }

    #[test]
    fn the_four_field_form_has_no_token() {
        let four = JoinRequest {
            four_field: true,
            ..example()
        };
        assert_eq!(JoinRequest::decode(&EXAMPLE[..17]), Ok(four.clone()));
        // It encodes back to the same four fields.
        assert_eq!(four.encode(), EXAMPLE[..17]);
    }

    #[test]
    fn a_four_field_request_gets_the_older_five_byte_reply() {
        let four = JoinRequest {
            four_field: true,
            ..example()
        };
        let reply = handshake_reply_for(&four, 3, 7, 99);
        assert_eq!(reply, [HAND_SHAKE_RESPONSE, 0, 3, 0, 7]);
        assert_eq!(
            handshake_reply_for(&example(), 3, 7, 99).len(),
            HAND_SHAKE_RESPONSE_SIZE
        );
    }

    #[test]
    fn round_trips_every_field() {
        let request = JoinRequest {
            game_id: "Ternio".into(),
            room_id: "zimmer ü".into(),
            rule_variation: u16::MAX,
            create_room: true,
            reconnect_token: Some(u64::MAX),
            four_field: false,
        };
        let bytes = request.encode();
        assert_eq!(JoinRequest::decode(&bytes), Ok(request.clone()));
        // u16::MAX is three varint bytes, u64::MAX ten.
        assert_eq!(&bytes[bytes.len() - 11..bytes.len() - 10], [1]);
        let token = JoinRequest {
            reconnect_token: Some(300),
            ..request
        };
        assert!(token.encode().ends_with(&[0x01, 0xAC, 0x02]));
    }

    #[test]
    fn rejects_malformed_requests() {
        let mut trailing = EXAMPLE.to_vec();
        trailing.push(0);
        assert_eq!(
            JoinRequest::decode(&trailing),
            Err(DecodeError::TrailingBytes)
        );
        assert_eq!(JoinRequest::decode(&[]), Err(DecodeError::UnexpectedEnd));
        // Cut anywhere before the bool.
        for cut in 0..16 {
            assert!(JoinRequest::decode(&EXAMPLE[..cut]).is_err(), "{cut}");
        }
        // `Some` without its value.
        let mut some = EXAMPLE.to_vec();
        some[17] = 1;
        assert_eq!(JoinRequest::decode(&some), Err(DecodeError::UnexpectedEnd));
        let mut bad_option = EXAMPLE.to_vec();
        bad_option[17] = 2;
        assert_eq!(
            JoinRequest::decode(&bad_option),
            Err(DecodeError::BadOption)
        );
        let mut bad_bool = EXAMPLE.to_vec();
        bad_bool[16] = 2;
        assert_eq!(JoinRequest::decode(&bad_bool), Err(DecodeError::BadBool));
        // A string longer than the data.
        assert_eq!(
            JoinRequest::decode(&[0x05, b'a']),
            Err(DecodeError::UnexpectedEnd)
        );
        // Invalid UTF-8.
        assert_eq!(
            JoinRequest::decode(&[0x01, 0xFF, 0x00, 0x00, 0x00]),
            Err(DecodeError::BadUtf8)
        );
        // A u16 varint of 2^16 overflows; so does a four-byte one.
        assert_eq!(
            JoinRequest::decode(&[0x00, 0x00, 0x80, 0x80, 0x04, 0x00]),
            Err(DecodeError::BadVarint)
        );
        assert_eq!(
            JoinRequest::decode(&[0x00, 0x00, 0x80, 0x80, 0x80, 0x00, 0x00]),
            Err(DecodeError::BadVarint)
        );
        // A u64 token of eleven bytes.
        let mut long_token = EXAMPLE[..17].to_vec();
        long_token.push(1);
        long_token.extend([0xFF; 10]);
        long_token.push(0);
        assert_eq!(
            JoinRequest::decode(&long_token),
            Err(DecodeError::BadVarint)
        );
        // A huge string length.
        let mut huge = vec![0xFF; 9];
        huge.push(0x01);
        assert!(JoinRequest::decode(&huge).is_err());
    }

    #[test]
    fn replies_are_big_endian() {
        assert_eq!(
            handshake_reply(0x0102, 0x0304, 0x0506_0708_090A_0B0C),
            [6, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        );
        assert_eq!(error_frame("no"), [5, b'n', b'o']);
        assert_eq!(id_frame(NEW_CLIENT, 0x1234), [0, 0x12, 0x34]);
        assert_eq!(rpc_to_host(7, &[9, 9]), [2, 0, 7, 9, 9]);
    }
}
