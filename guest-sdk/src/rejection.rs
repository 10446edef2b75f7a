//! Why a room refuses a client: [`Rejection`].

use std::fmt;

/// What [`RoomService::connect`](crate::RoomService::connect) returns to
/// refuse a client: a reason, and optionally a close code in `4000..=4999`
/// (without one, or with a code outside that range, the client gets 1008,
/// policy violation). The reason is truncated to
/// [`MAX_CLOSE_REASON_BYTES`](crate::limits::MAX_CLOSE_REASON_BYTES) on the
/// wire.
///
/// Strings convert into a rejection, so `Err("room is full".into())` works:
///
/// ```
/// use roomhost_sdk::{ClientInfo, Rejection, Room, RoomService, room_service};
///
/// #[derive(Default)]
/// #[room_service]
/// struct Guarded;
///
/// /// The close code clients of this service read as "log in first".
/// const LOGIN_REQUIRED: u16 = 4401;
///
/// impl RoomService for Guarded {
///     fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
///         if client.query_param("name").is_none() {
///             return Err("a name is required".into());
///         }
///         if client.identity.is_none() {
///             return Err(Rejection::with_code(LOGIN_REQUIRED, "log in first"));
///         }
///         Ok(())
///     }
/// }
///
/// let rejection = Rejection::with_code(LOGIN_REQUIRED, "log in first");
/// assert_eq!(rejection.code(), 4401);
/// assert_eq!(Rejection::from("full").code(), 1008);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    code: Option<u16>,
    reason: String,
}

impl Rejection {
    /// A rejection with close code 1008 (policy violation).
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            code: None,
            reason: reason.into(),
        }
    }

    /// A rejection with a close code of the service's own, in `4000..=4999`
    /// (other codes become 1008).
    pub fn with_code(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            reason: reason.into(),
        }
    }

    /// The close code the client gets.
    pub fn code(&self) -> u16 {
        roomhost_rules::close::rejection_code(self.code)
    }

    /// The code the service asked for, if any (before the host's check).
    pub fn requested_code(&self) -> Option<u16> {
        self.code
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Rejection {}

impl From<String> for Rejection {
    fn from(reason: String) -> Self {
        Self::new(reason)
    }
}

impl From<&str> for Rejection {
    fn from(reason: &str) -> Self {
        Self::new(reason)
    }
}

/// Lets tests compare a rejection with its reason: `assert_eq!(rejection, "full")`.
impl PartialEq<&str> for Rejection {
    fn eq(&self, other: &&str) -> bool {
        self.reason == *other
    }
}
