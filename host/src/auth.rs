//! Token verification for plugins: HS256 JSON Web Tokens checked against the
//! host's secret, audience and issuer.
//!
//! Plugins receive tokens inside their own protocol messages and ask the host
//! to check them (`auth.verify-token`), so the secret stays in the host: it is
//! never passed to a plugin, logged, or shown by `Debug`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How the host verifies tokens.
///
/// ```
/// use roomhost_host::AuthConfig;
///
/// let auth = AuthConfig::new("s3cret");
/// assert_eq!(auth.audience, "OpenWatchParty");
/// assert!(!format!("{auth:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct AuthConfig {
    /// The HS256 shared secret.
    pub secret: String,
    /// The required `aud` claim.
    pub audience: String,
    /// The required `iss` claim.
    pub issuer: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

impl AuthConfig {
    /// HS256 with `secret`, audience `OpenWatchParty`, issuer `Jellyfin` and
    /// 60 s leeway (the OpenWatchParty defaults).
    pub fn new(secret: impl Into<String>) -> AuthConfig {
        AuthConfig {
            secret: secret.into(),
            audience: "OpenWatchParty".into(),
            issuer: "Jellyfin".into(),
            leeway: Duration::from_secs(60),
        }
    }

    /// Verifies `token` at time `now` and returns its claims.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<serde_json::Value, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: serde_json::Value = decode_json(header)?;
        if header["alg"] != "HS256" {
            return Err(TokenError::Algorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())
            .map_err(|_| TokenError::Signature)?;
        mac.update(&token.as_bytes()[..header_and_payload_len(token)]);
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Signature)?;

        let claims: serde_json::Value = decode_json(payload)?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let leeway = self.leeway.as_secs();
        let exp = claims["exp"].as_u64().ok_or(TokenError::MissingExpiry)?;
        if now > exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        match &claims["nbf"] {
            serde_json::Value::Null => {}
            nbf => match nbf.as_u64() {
                Some(nbf) if now.saturating_add(leeway) >= nbf => {}
                _ => return Err(TokenError::NotYetValid),
            },
        }
        let audience_ok = match &claims["aud"] {
            serde_json::Value::String(aud) => *aud == self.audience,
            serde_json::Value::Array(auds) => auds.iter().any(|aud| *aud == *self.audience),
            _ => false,
        };
        if !audience_ok {
            return Err(TokenError::Audience);
        }
        if claims["iss"] != *self.issuer {
            return Err(TokenError::Issuer);
        }
        Ok(claims)
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("secret", &"<redacted>")
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token too long")]
    TooLong,
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// Not signed with HS256.
    #[error("unsupported token algorithm (only HS256)")]
    Algorithm,
    /// The signature does not match the host's secret.
    #[error("bad token signature")]
    Signature,
    /// No numeric `exp` claim.
    #[error("token has no expiry")]
    MissingExpiry,
    /// `exp` is past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// Wrong `aud`.
    #[error("wrong token audience")]
    Audience,
    /// Wrong `iss`.
    #[error("wrong token issuer")]
    Issuer,
}

fn decode_json(part: &str) -> Result<serde_json::Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Length of `header.payload`, the signed part (the token has two dots).
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sign(secret: &str, header: serde_json::Value, claims: serde_json::Value) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn claims(exp: u64) -> serde_json::Value {
        json!({ "sub": "u1", "name": "Ada", "aud": "OpenWatchParty", "iss": "Jellyfin", "exp": exp, "iat": 0 })
    }

    fn hs256() -> serde_json::Value {
        json!({ "alg": "HS256", "typ": "JWT" })
    }

    #[test]
    fn a_good_token_yields_its_claims() {
        let auth = AuthConfig::new("k");
        let token = sign("k", hs256(), claims(1000));
        assert_eq!(auth.verify(&token, at(500)).unwrap()["name"], "Ada");
    }

    #[test]
    fn expiry_is_enforced_with_leeway() {
        let auth = AuthConfig::new("k");
        let token = sign("k", hs256(), claims(1000));
        assert!(auth.verify(&token, at(1060)).is_ok());
        assert_eq!(auth.verify(&token, at(1061)), Err(TokenError::Expired));
        let no_exp = sign(
            "k",
            hs256(),
            json!({ "aud": "OpenWatchParty", "iss": "Jellyfin" }),
        );
        assert_eq!(auth.verify(&no_exp, at(0)), Err(TokenError::MissingExpiry));
    }

    #[test]
    fn audience_issuer_signature_and_algorithm_are_checked() {
        let auth = AuthConfig::new("k");
        let mut wrong_aud = claims(1000);
        wrong_aud["aud"] = json!("Other");
        assert_eq!(
            auth.verify(&sign("k", hs256(), wrong_aud), at(0)),
            Err(TokenError::Audience)
        );
        let mut aud_list = claims(1000);
        aud_list["aud"] = json!(["Other", "OpenWatchParty"]);
        assert!(auth.verify(&sign("k", hs256(), aud_list), at(0)).is_ok());
        let mut wrong_iss = claims(1000);
        wrong_iss["iss"] = json!("Emby");
        assert_eq!(
            auth.verify(&sign("k", hs256(), wrong_iss), at(0)),
            Err(TokenError::Issuer)
        );
        assert_eq!(
            auth.verify(&sign("other", hs256(), claims(1000)), at(0)),
            Err(TokenError::Signature)
        );
        let none = sign("k", json!({ "alg": "none" }), claims(1000));
        assert_eq!(auth.verify(&none, at(0)), Err(TokenError::Algorithm));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let auth = AuthConfig::new("k");
        for token in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            "e30.e30.",
            &"x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(auth.verify(token, at(0)).is_err(), "{token:?}");
        }
    }
}
