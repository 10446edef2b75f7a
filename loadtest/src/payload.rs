//! The wire format of a loadtest frame and its parser.
//!
//! Every frame starts with a 16-byte header: the magic `LT`, the send time (microseconds since
//! the run's shared monotonic origin), the sender's id and a per-sender sequence number. The
//! rest of the frame is padding up to the requested size. Binary frames carry the numbers
//! big-endian; text frames carry them as fixed-width base-64 digits, so a text frame is plain
//! ASCII (and JSON-safe: no quotes or backslashes) and still fits the same 16 bytes.
//!
//! | bytes  | binary                  | text                                  |
//! |--------|-------------------------|---------------------------------------|
//! | 0..2   | `LT`                    | `LT`                                  |
//! | 2..8   | send time, 48-bit µs    | send time, 6 digits (36-bit µs, 19 h) |
//! | 8..12  | sender, u32             | sender, 4 digits (24 bits)            |
//! | 12..16 | sequence, u32           | sequence mod 2²⁴, 4 digits            |
//! | 16..   | zero bytes              | `.`                                   |

use tokio_tungstenite::tungstenite::Message;

/// Size of the header every loadtest frame starts with, and so the smallest payload.
pub const HEADER_BYTES: usize = 16;

const MAGIC: &[u8; 2] = b"LT";
/// URL-safe base-64 digits: ASCII, no characters that need escaping in JSON.
const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const TEXT_PAD: char = '.';

/// Largest send time each form can carry; later times saturate (the run's phases are capped
/// far below either).
const BINARY_MAX_US: u64 = (1 << 48) - 1;
const TEXT_MAX_US: u64 = (1 << 36) - 1;
/// Largest sender id the text form can carry. The connection ceiling is below it.
pub(crate) const TEXT_MAX_SENDER: u32 = (1 << 24) - 1;

/// What a loadtest frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Send time, in microseconds since the run's origin.
    pub sent_us: u64,
    /// The sending client's id (0-based, unique in the run).
    pub sender: u32,
    /// The sender's sequence number (modulo 2²⁴ in text frames).
    pub seq: u32,
}

/// Builds a frame of `size` bytes (at least [`HEADER_BYTES`]) carrying `header`.
pub fn encode(header: Header, size: usize, binary: bool) -> Message {
    if binary {
        Message::binary(encode_binary(header, size))
    } else {
        Message::text(encode_text(header, size))
    }
}

/// The binary form: header big-endian, then zero padding.
pub fn encode_binary(header: Header, size: usize) -> Vec<u8> {
    let mut frame = vec![0u8; size.max(HEADER_BYTES)];
    frame[0..2].copy_from_slice(MAGIC);
    let sent = header.sent_us.min(BINARY_MAX_US).to_be_bytes();
    frame[2..8].copy_from_slice(&sent[2..8]);
    frame[8..12].copy_from_slice(&header.sender.to_be_bytes());
    frame[12..16].copy_from_slice(&header.seq.to_be_bytes());
    frame
}

/// The text form: header as base-64 digits, then `.` padding.
pub fn encode_text(header: Header, size: usize) -> String {
    let size = size.max(HEADER_BYTES);
    let mut frame = String::with_capacity(size);
    frame.push_str("LT");
    push_digits(&mut frame, header.sent_us.min(TEXT_MAX_US), 6);
    push_digits(&mut frame, u64::from(header.sender.min(TEXT_MAX_SENDER)), 4);
    push_digits(&mut frame, u64::from(header.seq & TEXT_MAX_SENDER), 4);
    frame.extend(std::iter::repeat_n(TEXT_PAD, size - HEADER_BYTES));
    frame
}

fn push_digits(out: &mut String, value: u64, width: u32) {
    for position in (0..width).rev() {
        let digit = (value >> (6 * position)) & 63;
        out.push(char::from(DIGITS[digit as usize]));
    }
}

/// Parses a binary frame; `None` when it is not a loadtest frame.
pub fn decode_binary(frame: &[u8]) -> Option<Header> {
    if frame.len() < HEADER_BYTES || &frame[0..2] != MAGIC {
        return None;
    }
    let mut sent = [0u8; 8];
    sent[2..8].copy_from_slice(&frame[2..8]);
    Some(Header {
        sent_us: u64::from_be_bytes(sent),
        sender: u32::from_be_bytes(frame[8..12].try_into().ok()?),
        seq: u32::from_be_bytes(frame[12..16].try_into().ok()?),
    })
}

/// Parses a text frame; `None` when it is not a loadtest frame.
pub fn decode_text(frame: &str) -> Option<Header> {
    let bytes = frame.as_bytes();
    if bytes.len() < HEADER_BYTES || &bytes[0..2] != MAGIC {
        return None;
    }
    let sent_us = read_digits(&bytes[2..8])?;
    let sender = read_digits(&bytes[8..12])?;
    let seq = read_digits(&bytes[12..16])?;
    Some(Header {
        sent_us,
        // Four digits are 24 bits: these conversions cannot fail, but stay checked.
        sender: u32::try_from(sender).ok()?,
        seq: u32::try_from(seq).ok()?,
    })
}

fn read_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &byte| {
        let digit = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        Some((value << 6) | u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Header = Header {
        sent_us: 123_456_789,
        sender: 49_999,
        seq: 1_000_003,
    };

    #[test]
    fn binary_round_trip_and_size() {
        for size in [16, 17, 64, 4096] {
            let frame = encode_binary(HEADER, size);
            assert_eq!(frame.len(), size);
            assert_eq!(decode_binary(&frame), Some(HEADER));
        }
    }

    #[test]
    fn text_round_trip_is_ascii_and_sized() {
        for size in [16, 17, 64, 4096] {
            let frame = encode_text(HEADER, size);
            assert_eq!(frame.len(), size);
            assert!(frame.is_ascii());
            assert!(!frame.contains(['"', '\\']));
            assert_eq!(decode_text(&frame), Some(HEADER));
        }
    }

    #[test]
    fn text_sequence_wraps_at_24_bits_and_time_saturates() {
        let header = Header {
            sent_us: u64::MAX,
            sender: 7,
            seq: (1 << 24) + 5,
        };
        let decoded = decode_text(&encode_text(header, 16));
        assert_eq!(
            decoded,
            Some(Header {
                sent_us: TEXT_MAX_US,
                sender: 7,
                seq: 5
            })
        );
        let decoded = decode_binary(&encode_binary(header, 16));
        assert_eq!(decoded.map(|h| h.sent_us), Some(BINARY_MAX_US));
    }

    #[test]
    fn other_frames_are_not_parsed() {
        assert_eq!(decode_text(r#"{"type":"hello","id":1}"#), None);
        assert_eq!(decode_text("LT"), None);
        assert_eq!(decode_text("LT!!!!!!AAAAAAAA"), None);
        assert_eq!(decode_binary(b"LT short"), None);
        assert_eq!(decode_binary(&[0u8; 64]), None);
    }
}
