//! The admin endpoints' gate: `/status`, `/rooms`, `/rooms/{service}/{room}`
//! and, in dev mode, the dashboard and its event stream.
//!
//! With an admin token configured they answer only requests that show it
//! (`Authorization: Bearer <token>`, 401 otherwise). Without one they are
//! open on a loopback address, and off (403) on any other address unless
//! explicitly opened ([`AdminConfig::open`]), so a server put on a public
//! address does not publish its room list by accident. The server says
//! which at startup.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::App;

/// How the admin endpoints are protected.
#[derive(Clone, Default)]
pub struct AdminConfig {
    /// The token they require (`Authorization: Bearer <token>`).
    pub token: Option<String>,
    /// Serve them without a token on a non-loopback address.
    pub open: bool,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("open", &self.open)
            .finish()
    }
}

/// What the gate does, as decided at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAccess {
    /// A token is required.
    Token,
    /// Open: the server listens on a loopback address.
    Loopback,
    /// Open on a non-loopback address, as configured.
    Opened,
    /// Off: a non-loopback address, no token, not opened.
    Off,
}

impl fmt::Display for AdminAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdminAccess::Token => "require the admin token (Authorization: Bearer)",
            AdminAccess::Loopback => "open (loopback address)",
            AdminAccess::Opened => "open to anyone who can reach the port (--open-admin)",
            AdminAccess::Off => {
                "off: a non-loopback address without --admin-token (set one, or pass --open-admin)"
            }
        })
    }
}

/// The gate in front of the admin endpoints.
pub(crate) struct AdminGate {
    access: AdminAccess,
    digest: Option<[u8; 32]>,
}

impl AdminGate {
    /// Decides the gate for a server listening on `listen`.
    pub(crate) fn new(config: &AdminConfig, listen: SocketAddr) -> AdminGate {
        let digest = config
            .token
            .as_deref()
            .filter(|token| !token.is_empty())
            .map(digest);
        let access = match digest {
            Some(_) => AdminAccess::Token,
            None if listen.ip().is_loopback() => AdminAccess::Loopback,
            None if config.open => AdminAccess::Opened,
            None => AdminAccess::Off,
        };
        AdminGate { access, digest }
    }

    /// What the gate does.
    pub(crate) fn access(&self) -> AdminAccess {
        self.access
    }

    /// `None` if a request with `headers` may see the admin endpoints, else
    /// the refusal.
    pub(crate) fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        let expected = match (self.access, &self.digest) {
            (AdminAccess::Loopback | AdminAccess::Opened, _) => return None,
            (AdminAccess::Token, Some(expected)) => expected,
            _ => {
                return Some(crate::http::error_response(
                    StatusCode::FORBIDDEN,
                    format!("admin endpoints are {}", AdminAccess::Off),
                ));
            }
        };
        let shown = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| digest(token.trim()));
        if shown.as_ref() == Some(expected) {
            return None;
        }
        let mut refused = crate::http::error_response(
            StatusCode::UNAUTHORIZED,
            "admin endpoints require the admin token: Authorization: Bearer <token>".into(),
        );
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"roomhost admin\""),
        );
        Some(refused)
    }
}

/// Tokens are compared as SHA-256 digests, so the comparison's timing says
/// nothing about the token.
fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Middleware for the admin routes.
pub(crate) async fn gate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match app.admin.refuse(request.headers()) {
        Some(refused) => refused.into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(token: Option<&str>, open: bool, listen: &str) -> AdminAccess {
        let config = AdminConfig {
            token: token.map(str::to_owned),
            open,
        };
        AdminGate::new(&config, listen.parse().expect("address")).access()
    }

    #[test]
    fn without_a_token_admin_is_off_on_public_addresses_unless_opened() {
        assert_eq!(gate(None, false, "127.0.0.1:8080"), AdminAccess::Loopback);
        assert_eq!(gate(None, false, "[::1]:8080"), AdminAccess::Loopback);
        assert_eq!(gate(None, false, "0.0.0.0:8080"), AdminAccess::Off);
        assert_eq!(gate(None, true, "0.0.0.0:8080"), AdminAccess::Opened);
        assert_eq!(gate(Some("t"), false, "0.0.0.0:8080"), AdminAccess::Token);
        assert_eq!(gate(Some("t"), false, "127.0.0.1:8080"), AdminAccess::Token);
    }

    #[test]
    fn the_gate_checks_the_bearer_token() {
        let config = AdminConfig {
            token: Some("s3cret".into()),
            open: false,
        };
        let gate = AdminGate::new(&config, "0.0.0.0:1".parse().expect("address"));
        let mut headers = HeaderMap::new();
        assert_eq!(
            gate.refuse(&headers).map(|r| r.status()),
            Some(StatusCode::UNAUTHORIZED)
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert!(gate.refuse(&headers).is_some());
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret"),
        );
        assert!(gate.refuse(&headers).is_none());
        let off = AdminGate::new(
            &AdminConfig::default(),
            "0.0.0.0:1".parse().expect("address"),
        );
        assert_eq!(
            off.refuse(&headers).map(|r| r.status()),
            Some(StatusCode::FORBIDDEN)
        );
    }
}
