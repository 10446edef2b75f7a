//! The rules a room lives by, written once.
//!
//! The host (`roomhost-host`) enforces these rules on every plugin, and the
//! SDK's test harness (`roomhost_sdk::testing`) applies the same ones to a
//! service running natively, so a test that passes in the harness behaves
//! the same against the real host: the same defaults, the same checks in the
//! same order, and the same error messages.
//!
//! This crate depends on nothing but `std`, so the SDK can use it without
//! pulling in the host.
//!
//! - [`limits`]: the host's default limits.
//! - [`close`]: which close codes a plugin may use, and the reason length.
//! - [`checks`]: the checks on what a plugin asks for (frames, info, timers,
//!   client state, transfers, the root), each returning a typed error whose
//!   `Display` is the message the plugin sees.
//! - [`storage`]: a room's stored data as the room sees it (the caps, the
//!   errors, batches, paged listing, durable timers) and the changes that
//!   await their commit.
//!
//! ```
//! use roomhost_rules::checks::{self, FrameTooLarge};
//!
//! let limit = roomhost_rules::limits::MAX_PLUGIN_FRAME_BYTES;
//! assert!(checks::frame_fits(limit, limit).is_ok());
//! let error = checks::frame_fits(limit + 1, limit).unwrap_err();
//! assert_eq!(error, FrameTooLarge { len: limit + 1, limit });
//! ```

pub mod checks;
pub mod close;
pub mod limits;
pub mod storage;

/// The room id of a service's lobby. Room ids in URLs are never empty, so
/// no client reaches the lobby by id, and `init-info.room-id` is empty for
/// the lobby.
pub const LOBBY_ROOM_ID: &str = "";
