//! What a client's misbehaviour means for its connection: the close code an
//! error from the WebSocket layer calls for (RFC 6455 section 7.4.1), the
//! close for output left unread, and the ping rate limit.

use std::time::Duration;

use tokio::time::Instant;

use crate::close;
use crate::limits::Limits;

/// Pings a client sent in the current one-second window.
pub(super) struct PingRate {
    max: usize,
    window: Instant,
    count: usize,
}

impl PingRate {
    pub(super) fn new(max: usize) -> PingRate {
        PingRate {
            max,
            window: Instant::now(),
            count: 0,
        }
    }

    /// Counts one ping; false once the client sent more than `max` within a
    /// second.
    pub(super) fn allow(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= self.max
    }
}

/// The tungstenite error behind `error`, if any.
pub(super) fn tungstenite_error(error: &axum::Error) -> Option<&tungstenite::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(found) = current.downcast_ref::<tungstenite::Error>() {
            return Some(found);
        }
        source = current.source();
    }
    None
}

/// The close frame a connection error calls for (RFC 6455 section 7.4.1):
/// `None` when the connection is already gone.
pub(super) fn close_for(error: &axum::Error, limits: &Limits) -> Option<(u16, String)> {
    use tungstenite::error::ProtocolError;
    match tungstenite_error(error)? {
        tungstenite::Error::Capacity(_) => Some((
            close::TOO_BIG,
            format!("message too big (limit {} bytes)", limits.max_frame_bytes),
        )),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        tungstenite::Error::Protocol(violation) => Some((
            close::PROTOCOL_ERROR,
            format!("protocol error: {violation}"),
        )),
        tungstenite::Error::Utf8(_) => Some((close::INVALID_DATA, "invalid UTF-8".to_owned())),
        tungstenite::Error::WriteBufferFull(_) => Some(unread_output(limits)),
        _ => None,
    }
}

/// The close for a client whose unread output passed the cap.
pub(super) fn unread_output(limits: &Limits) -> (u16, String) {
    (
        close::POLICY,
        format!(
            "slow consumer: unread output over max_write_buffer_bytes ({})",
            limits.max_write_buffer_bytes
        ),
    )
}

#[cfg(test)]
mod tests {
    use tungstenite::error::{CapacityError, ProtocolError};

    use super::*;

    fn code_for(error: tungstenite::Error) -> Option<u16> {
        close_for(&axum::Error::new(error), &Limits::default()).map(|(code, _)| code)
    }

    #[test]
    fn errors_map_to_rfc_6455_close_codes() {
        let protocol = tungstenite::Error::Protocol(ProtocolError::NonZeroReservedBits);
        assert_eq!(code_for(protocol), Some(close::PROTOCOL_ERROR));
        let utf8 = tungstenite::Error::Utf8("bad".into());
        assert_eq!(code_for(utf8), Some(close::INVALID_DATA));
        let big = CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        };
        assert_eq!(code_for(big.into()), Some(close::TOO_BIG));
        let full = tungstenite::Error::WriteBufferFull(Box::new(tungstenite::Message::Ping(
            Default::default(),
        )));
        assert_eq!(code_for(full), Some(close::POLICY));
        // A peer that is already gone gets no close frame.
        let reset = tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(code_for(reset), None);
        assert_eq!(code_for(tungstenite::Error::ConnectionClosed), None);
    }

    #[test]
    fn pings_beyond_the_rate_are_refused() {
        let mut pings = PingRate::new(3);
        assert!((0..3).all(|_| pings.allow()));
        assert!(!pings.allow());
    }
}
