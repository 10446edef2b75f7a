//! Test-only signing keys and tokens: key pairs generated per test run with
//! the `openssl` command (no private key is checked in), tokens signed with
//! `jsonwebtoken`, JWKS documents, and a tiny HTTP server that serves a
//! JWKS that a test can rotate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A key pair made for one test.
pub struct KeyPair {
    /// The algorithm tokens are signed with.
    pub algorithm: Algorithm,
    /// The private key, PKCS#8 PEM.
    pub private_pem: Vec<u8>,
    /// The public key file (SPKI PEM), for `--jwt-public-key`.
    pub public_path: PathBuf,
}

static KEYS_MADE: AtomicUsize = AtomicUsize::new(0);

impl KeyPair {
    /// A fresh RSA 2048 key for RS256.
    pub fn rs256() -> KeyPair {
        Self::generate(
            Algorithm::RS256,
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        )
    }

    /// A fresh P-256 key for ES256.
    pub fn es256() -> KeyPair {
        Self::generate(
            Algorithm::ES256,
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        )
    }

    /// A fresh Ed25519 key for EdDSA.
    pub fn ed25519() -> KeyPair {
        Self::generate(Algorithm::EdDSA, &["-algorithm", "ED25519"])
    }

    fn generate(algorithm: Algorithm, args: &[&str]) -> KeyPair {
        let dir = std::env::temp_dir().join(format!("roomhost-e2e-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the key directory");
        let n = KEYS_MADE.fetch_add(1, Ordering::Relaxed);
        let private_path = dir.join(format!("key-{n}.pem"));
        let public_path = dir.join(format!("key-{n}.pub.pem"));
        let status = Command::new("openssl")
            .arg("genpkey")
            .args(args)
            .arg("-out")
            .arg(&private_path)
            .stderr(Stdio::null())
            .status()
            .expect("the openssl command is installed (test keys are generated with it)");
        assert!(status.success(), "openssl genpkey {args:?} failed");
        let status = Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private_path)
            .arg("-out")
            .arg(&public_path)
            .status()
            .expect("openssl pkey");
        assert!(status.success(), "openssl pkey -pubout failed");
        KeyPair {
            algorithm,
            private_pem: std::fs::read(&private_path).expect("read the private key"),
            public_path,
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        match self.algorithm {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&self.private_pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&self.private_pem),
            _ => EncodingKey::from_rsa_pem(&self.private_pem),
        }
        .expect("a usable private key")
    }

    /// A token with `claims`, signed with this key, its header naming `kid`.
    pub fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, &self.encoding_key()).expect("sign")
    }

    /// The public key as a JWK with `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(), self.algorithm).expect("a JWK");
        jwk.common.key_id = Some(kid.to_owned());
        serde_json::to_value(jwk).expect("JSON")
    }
}

/// A JWKS document holding `keys` (each from [`KeyPair::jwk`]).
pub fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// An HS256 token with `claims`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("a secret"),
    )
    .expect("sign")
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Claims for subject `sub`, valid for an hour, plus `extra`.
pub fn claims(sub: &str, extra: Value) -> Value {
    let mut claims = json!({ "sub": sub, "iat": now_secs(), "exp": now_secs() + 3600 });
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    claims
}

/// A one-route HTTP server answering every request with the current JWKS;
/// [`JwksServer::set`] rotates it.
pub struct JwksServer {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
    served: Arc<AtomicUsize>,
}

impl JwksServer {
    /// Starts serving `body`.
    pub async fn start(body: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let body = Arc::new(Mutex::new(body));
        let served = Arc::new(AtomicUsize::new(0));
        let (shared, count) = (body.clone(), served.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let current = shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{current}",
                        current.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        JwksServer { addr, body, served }
    }

    /// The URL of the set.
    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// Replaces the set (a key rotation).
    pub fn set(&self, body: String) {
        *self.body.lock().unwrap_or_else(PoisonError::into_inner) = body;
    }

    /// How many times the set was fetched.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}
