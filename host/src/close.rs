//! WebSocket close codes the host sends, and the reason-length rule.
//!
//! Plugins choose their own codes (1000 or 3000..=4999) through `host.close`;
//! the codes here are the host's own, each for exactly one situation.

/// Normal closure (a plugin may use it too).
pub const NORMAL: u16 = 1000;
/// The server is shutting down, or the client was idle too long.
pub const GOING_AWAY: u16 = 1001;
/// The client broke the WebSocket protocol (unmasked or malformed frames,
/// reserved bits, unknown opcodes).
pub const PROTOCOL_ERROR: u16 = 1002;
/// The client sent a text message (or close reason) that is not UTF-8.
pub const INVALID_DATA: u16 = 1007;
/// The plugin rejected the connection, the client was too slow to read (or
/// left too much output unread), or it sent too many pings.
pub const POLICY: u16 = 1008;
/// The client sent a message larger than `max_frame_bytes`.
pub const TOO_BIG: u16 = 1009;
/// The room failed (trap, deadline, memory limit) and was disposed.
pub const ROOM_ERROR: u16 = 1011;
/// The room is moving to another node of the cluster (this node stopped
/// vouching for it, or it moved while the client connected): reconnect
/// through the proxy to reach it.
pub const SERVICE_RESTART: u16 = 1012;
/// A limit (rooms, connections) is reached; try again later.
pub const TRY_AGAIN_LATER: u16 = 1013;

pub use roomhost_rules::close::{
    MAX_REASON_BYTES, is_plugin_code, rejection_code, truncate_reason,
};
