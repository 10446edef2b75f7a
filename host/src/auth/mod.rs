//! Token verification: JSON Web Tokens checked with the `jsonwebtoken` crate
//! against the host's keys, audience, issuer and clock.
//!
//! Keys come from an HS256 shared secret, PEM public key files (RSA, EC
//! P-256/P-384, Ed25519) and a JWKS (a file or an `https://` URL, refreshed
//! on a schedule, see [`jwks`]). Every key is bound to its algorithm family
//! when it is loaded, and a token is only ever checked with keys of the
//! family its header names, so `alg: none` and algorithm confusion (an HS256
//! token "signed" with an RSA public key) cannot verify.
//!
//! The verifier serves two callers: the connection gate of services that
//! require a token ([`crate::access`]), and plugins that receive tokens
//! inside their own protocol (`auth.verify-token`). Secrets stay in the
//! host: they are never passed to a plugin, logged, or shown by `Debug`.

mod fetch;
pub mod jwks;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use tokio_util::sync::CancellationToken;

pub use jwks::JwksSource;
use jwks::{JwksKeys, KeyEntry};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How often a JWKS is fetched again by default.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);

/// Default clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// How the host verifies tokens: its keys and the claims it checks.
///
/// The audience and issuer are checked only when set (there are no
/// application-specific defaults); `exp` is always required.
///
/// ```
/// use roomhost_host::AuthConfig;
///
/// let auth = AuthConfig::new("s3cret").with_audience("my-app");
/// assert_eq!(auth.audience.as_deref(), Some("my-app"));
/// assert_eq!(auth.issuer, None);
/// assert!(!format!("{auth:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct AuthConfig {
    /// The HS256 shared secret, if any.
    pub secret: Option<String>,
    /// PEM files holding public keys (RSA, EC or Ed25519); each verifies
    /// the algorithms of its key type only.
    pub public_keys: Vec<PathBuf>,
    /// A JSON Web Key Set to take public keys from, chosen by `kid`.
    pub jwks: Option<JwksSource>,
    /// How often the JWKS is read again (an unknown `kid` also triggers a
    /// read, at most once per [`jwks::MIN_REFETCH`]).
    pub jwks_refresh: Duration,
    /// The required `aud` claim; `None` does not check it.
    pub audience: Option<String>,
    /// The required `iss` claim; `None` does not check it.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

impl AuthConfig {
    /// No keys yet, no audience or issuer check, 60 s leeway.
    pub fn empty() -> AuthConfig {
        AuthConfig {
            secret: None,
            public_keys: Vec::new(),
            jwks: None,
            jwks_refresh: DEFAULT_JWKS_REFRESH,
            audience: None,
            issuer: None,
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// HS256 with `secret`, no audience or issuer check, 60 s leeway.
    pub fn new(secret: impl Into<String>) -> AuthConfig {
        AuthConfig {
            secret: Some(secret.into()),
            ..AuthConfig::empty()
        }
    }

    /// Public keys from a JWKS file or URL, refreshed every `refresh`.
    pub fn jwks(source: JwksSource, refresh: Duration) -> AuthConfig {
        AuthConfig {
            jwks: Some(source),
            jwks_refresh: refresh,
            ..AuthConfig::empty()
        }
    }

    /// Requires `aud` to be (or contain) `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> AuthConfig {
        self.audience = Some(audience.into());
        self
    }

    /// Requires `iss` to be `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> AuthConfig {
        self.issuer = Some(issuer.into());
        self
    }

    /// Adds a PEM public key file.
    pub fn with_public_key(mut self, path: impl Into<PathBuf>) -> AuthConfig {
        self.public_keys.push(path.into());
        self
    }

    /// Sets the tolerated clock skew.
    pub fn with_leeway(mut self, leeway: Duration) -> AuthConfig {
        self.leeway = leeway;
        self
    }

    /// Whether any key is configured.
    pub fn has_keys(&self) -> bool {
        self.secret.is_some() || !self.public_keys.is_empty() || self.jwks.is_some()
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_keys", &self.public_keys)
            .field("jwks", &self.jwks)
            .field("jwks_refresh", &self.jwks_refresh)
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
    /// An algorithm none of the host's keys verifies (`none` included).
    #[error("unsupported token algorithm")]
    Algorithm,
    /// The header names a `kid` the host has no key for.
    #[error("unknown token key id")]
    UnknownKey,
    /// The signature does not match any of the host's keys.
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
    /// Wrong or missing `aud`.
    #[error("wrong token audience")]
    Audience,
    /// Wrong or missing `iss`.
    #[error("wrong token issuer")]
    Issuer,
}

/// Why the verifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The secret is empty.
    #[error("the token secret is empty")]
    EmptySecret,
    /// A PEM file could not be read.
    #[error("cannot read public key {path}: {source}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file holds no RSA, EC or Ed25519 public key.
    #[error("{0} holds no RSA, EC or Ed25519 public key in PEM form")]
    BadKey(PathBuf),
    /// The JWKS could not be loaded.
    #[error(transparent)]
    Jwks(#[from] jwks::JwksError),
}

/// The verifier built from an [`AuthConfig`]: the loaded keys, and for a
/// JWKS the current key set, replaced by its refresh task.
pub struct TokenVerifier {
    secret: Option<DecodingKey>,
    public_keys: Vec<KeyEntry>,
    jwks: Option<Arc<JwksKeys>>,
    validation: Validation,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_keys", &self.public_keys.len())
            .field("jwks", &self.jwks.is_some())
            .finish()
    }
}

impl TokenVerifier {
    /// Loads the keys `config` names (reading PEM files and fetching the
    /// JWKS once). Refreshing starts with [`TokenVerifier::spawn_refresh`].
    pub async fn load(config: &AuthConfig) -> Result<Arc<TokenVerifier>, AuthError> {
        let secret = match &config.secret {
            Some(secret) if secret.is_empty() => return Err(AuthError::EmptySecret),
            Some(secret) => Some(
                DecodingKey::from_secret(secret.as_bytes()).map_err(|_| AuthError::EmptySecret)?,
            ),
            None => None,
        };
        let mut public_keys = Vec::new();
        for path in &config.public_keys {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|source| AuthError::ReadKey {
                    path: path.clone(),
                    source,
                })?;
            public_keys.push(pem_key(&pem).ok_or_else(|| AuthError::BadKey(path.clone()))?);
        }
        let jwks = match &config.jwks {
            Some(source) => Some(Arc::new(
                JwksKeys::load(source.clone(), config.jwks_refresh).await?,
            )),
            None => None,
        };
        Ok(Arc::new(TokenVerifier {
            secret,
            public_keys,
            jwks,
            validation: validation(config),
        }))
    }

    /// Keeps the JWKS fresh until `stop` is cancelled (nothing to do without
    /// one).
    pub fn spawn_refresh(&self, stop: CancellationToken) {
        if let Some(jwks) = &self.jwks {
            jwks.clone().spawn_refresh(stop);
        }
    }

    /// Verifies `token` (signature, algorithm, `exp`, `nbf`, `aud`, `iss`)
    /// and returns its claims.
    pub fn verify(&self, token: &str) -> Result<serde_json::Value, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let (algorithm, kid) = peek_header(token)?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![algorithm];
        let mut refusal = TokenError::Algorithm;
        if algorithm.family() == AlgorithmFamily::Hmac {
            // Only HS256, and only with the secret: never with a public key.
            return match (&self.secret, algorithm) {
                (Some(secret), Algorithm::HS256) => decode(token, secret, &validation),
                _ => Err(TokenError::Algorithm),
            };
        }
        let jwks = self.jwks.as_ref().map(|jwks| jwks.current());
        let from_jwks = jwks.iter().flat_map(|set| set.iter());
        let mut tried_named = false;
        for entry in self.public_keys.iter().chain(from_jwks) {
            if !entry.algorithms.contains(&algorithm) {
                continue;
            }
            match (&kid, &entry.kid) {
                (Some(wanted), Some(have)) if wanted != have => continue,
                (Some(_), Some(_)) => tried_named = true,
                _ => {}
            }
            match decode(token, &entry.key, &validation) {
                Err(TokenError::Signature) => refusal = TokenError::Signature,
                outcome => return outcome,
            }
        }
        if let (Some(_), Some(jwks)) = (&kid, &self.jwks)
            && !tried_named
        {
            // A key the set did not have when it was read: perhaps a
            // rotation; read it again (rate-limited) for the next token.
            jwks.refetch_soon();
            if refusal == TokenError::Algorithm {
                refusal = TokenError::UnknownKey;
            }
        }
        Err(refusal)
    }
}

/// The checks every token gets; the algorithm is set per token.
fn validation(config: &AuthConfig) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = config.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    match &config.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// The header's algorithm and key id, read without trusting them: an
/// algorithm the crate does not know (`none`, `None`, ...) is refused here.
fn peek_header(token: &str) -> Result<(Algorithm, Option<String>), TokenError> {
    #[derive(serde::Deserialize)]
    struct Peek {
        alg: String,
        kid: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let peek: Peek = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let algorithm = Algorithm::from_str(&peek.alg).map_err(|_| TokenError::Algorithm)?;
    Ok((algorithm, peek.kid))
}

fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<serde_json::Value, TokenError> {
    jsonwebtoken::decode::<serde_json::Value>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|error| token_error(error.kind()))
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => TokenError::MissingExpiry,
            "aud" => TokenError::Audience,
            "iss" => TokenError::Issuer,
            _ => TokenError::Malformed,
        },
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        _ => TokenError::Malformed,
    }
}

/// A PEM public key with the algorithms of its type.
fn pem_key(pem: &[u8]) -> Option<KeyEntry> {
    let (key, family) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        (key, AlgorithmFamily::Rsa)
    } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        (key, AlgorithmFamily::Ec)
    } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        (key, AlgorithmFamily::Ed)
    } else {
        return None;
    };
    Some(KeyEntry {
        kid: None,
        key,
        algorithms: family.algorithms().to_vec(),
    })
}

#[cfg(test)]
mod tests;
