//! JSON Web Key Sets: where a set comes from (a file or a URL), turning its
//! keys into verification keys bound to their algorithms, and the task that
//! reads it again on a schedule so rotated keys are picked up.
//!
//! A refresh that fails keeps the last good set (and says so in the log);
//! a token whose `kid` the set lacks asks for an early read, at most once
//! per [`MIN_REFETCH`], so a rotation is seen within seconds, not at the
//! next scheduled refresh.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::fetch;

/// The shortest time between two reads of a JWKS.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

/// The largest JWKS accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where a JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local file.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl FromStr for JwksSource {
    type Err = std::convert::Infallible;

    /// `http://...` and `https://...` are URLs; anything else is a path.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(
            if text.starts_with("https://") || text.starts_with("http://") {
                JwksSource::Url(text.to_owned())
            } else {
                JwksSource::File(PathBuf::from(text))
            },
        )
    }
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "{}", path.display()),
            JwksSource::Url(url) => f.write_str(url),
        }
    }
}

/// Why a JWKS could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file could not be read.
    #[error("cannot read the JWKS {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The URL could not be fetched.
    #[error("cannot fetch the JWKS {url}: {source}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        source: fetch::FetchError,
    },
    /// The document is not a JWKS (`{"keys": [...]}`).
    #[error("{0} is not a JSON Web Key Set")]
    NotAKeySet(String),
    /// The set holds no usable signature key.
    #[error("{0} holds no usable signature key (RSA, EC P-256/P-384 or Ed25519)")]
    NoKeys(String),
}

/// A verification key with its `kid` and the algorithms it may verify.
pub(crate) struct KeyEntry {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    pub(crate) algorithms: Vec<Algorithm>,
}

/// The current key set of one source, and its refresh schedule.
pub(crate) struct JwksKeys {
    source: JwksSource,
    refresh: Duration,
    current: RwLock<Arc<Vec<KeyEntry>>>,
    /// Set when a token named an unknown `kid`; the refresh task reads the
    /// set early (after [`MIN_REFETCH`] since the last read).
    wanted: AtomicBool,
    wake: Notify,
}

impl JwksKeys {
    /// Reads the set once; fails if it cannot be read or has no key.
    pub(crate) async fn load(source: JwksSource, refresh: Duration) -> Result<JwksKeys, JwksError> {
        let keys = read(&source).await?;
        Ok(JwksKeys {
            source,
            refresh,
            current: RwLock::new(Arc::new(keys)),
            wanted: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    /// The keys as last read.
    pub(crate) fn current(&self) -> Arc<Vec<KeyEntry>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks the refresh task for an early read.
    pub(crate) fn refetch_soon(&self) {
        if !self.wanted.swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Reads the set every `refresh` (and early when asked) until `stop`.
    pub(crate) fn spawn_refresh(self: Arc<Self>, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut last = tokio::time::Instant::now();
            loop {
                let scheduled = last + self.refresh.max(Duration::from_millis(10));
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep_until(scheduled) => {}
                    () = self.wake.notified() => {
                        // Early, but never more often than MIN_REFETCH.
                        let earliest = last + MIN_REFETCH;
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep_until(earliest.min(scheduled)) => {}
                        }
                    }
                }
                self.wanted.store(false, Ordering::Relaxed);
                last = tokio::time::Instant::now();
                match read(&self.source).await {
                    Ok(keys) => {
                        tracing::debug!(source = %self.source, keys = keys.len(), "JWKS refreshed");
                        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                            Arc::new(keys);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "JWKS refresh failed; keeping the last good key set");
                    }
                }
            }
        });
    }
}

/// Reads and parses the set at `source`.
async fn read(source: &JwksSource) -> Result<Vec<KeyEntry>, JwksError> {
    let bytes = match source {
        JwksSource::File(path) => {
            tokio::fs::read(path)
                .await
                .map_err(|source| JwksError::Read {
                    path: path.clone(),
                    source,
                })?
        }
        JwksSource::Url(url) => {
            fetch::get(url, MAX_JWKS_BYTES)
                .await
                .map_err(|source| JwksError::Fetch {
                    url: url.clone(),
                    source,
                })?
        }
    };
    let keys = parse(&bytes).ok_or_else(|| JwksError::NotAKeySet(source.to_string()))?;
    if keys.is_empty() {
        return Err(JwksError::NoKeys(source.to_string()));
    }
    Ok(keys)
}

/// The usable signature keys of a JWKS document; `None` if it is not one.
/// Keys of unknown types, encryption keys and symmetric (`oct`) keys are
/// skipped: a published set holds public keys, and the shared secret has
/// its own setting.
pub(crate) fn parse(bytes: &[u8]) -> Option<Vec<KeyEntry>> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(bytes).ok()?;
    let keys = set
        .keys
        .into_iter()
        .filter_map(|value| {
            let jwk: Jwk = serde_json::from_value(value).ok()?;
            let entry = key_entry(&jwk);
            if entry.is_none() {
                tracing::debug!(kid = ?jwk.common.key_id, "JWKS key skipped (not a usable signature key)");
            }
            entry
        })
        .collect();
    Some(keys)
}

fn key_entry(jwk: &Jwk) -> Option<KeyEntry> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 | EllipticCurve::P384 => AlgorithmFamily::Ec,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => AlgorithmFamily::Ed,
            _ => return None,
        },
        _ => return None,
    };
    let algorithms = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        // The key says which algorithm it is for: that one only, and only
        // if it belongs to the key's family.
        (Some(named), _) => {
            let algorithm = Algorithm::from_str(&named.to_string()).ok()?;
            if algorithm.family() != family {
                return None;
            }
            vec![algorithm]
        }
        (None, AlgorithmParameters::EllipticCurve(params)) => match params.curve {
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => vec![Algorithm::ES256],
        },
        (None, _) => family.algorithms().to_vec(),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
    })
}
