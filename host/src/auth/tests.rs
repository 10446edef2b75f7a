//! The verifier against good tokens and a table of forgeries (HS256, and
//! RS256 keys made with the `openssl` command for algorithm confusion).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::*;

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn claims(exp_in: i64) -> Value {
    json!({ "sub": "u1", "name": "Ada", "aud": "app", "iss": "idp", "exp": now() + exp_in, "iat": now() })
}

fn hs256(secret: &str, claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("a secret"),
    )
    .expect("sign")
}

/// `header.payload.signature` from raw JSON parts and a signature.
fn raw(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// Re-signs `header.payload` with HMAC-SHA256 over `key` bytes, whatever
/// the header says (how an algorithm-confusion forgery is made).
fn hmac_over(header: &Value, claims: &Value, key: &[u8]) -> String {
    let unsigned = raw(header, claims, "");
    let signing_input = unsigned.trim_end_matches('.');
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(key).expect("a secret"),
        Algorithm::HS256,
    )
    .expect("hmac");
    format!("{signing_input}.{signature}")
}

async fn verifier(config: AuthConfig) -> Arc<TokenVerifier> {
    TokenVerifier::load(&config).await.expect("keys load")
}

fn strict() -> AuthConfig {
    AuthConfig::new("k").with_audience("app").with_issuer("idp")
}

#[tokio::test]
async fn a_good_token_yields_its_claims() {
    let auth = verifier(strict()).await;
    let token = hs256("k", &claims(600));
    assert_eq!(auth.verify(&token).expect("valid")["name"], "Ada");
}

#[tokio::test]
async fn expiry_is_required_and_enforced_with_leeway() {
    let auth = verifier(strict()).await;
    assert!(
        auth.verify(&hs256("k", &claims(-30))).is_ok(),
        "within leeway"
    );
    assert_eq!(
        auth.verify(&hs256("k", &claims(-61))),
        Err(TokenError::Expired)
    );
    let no_exp = json!({ "aud": "app", "iss": "idp" });
    assert_eq!(
        auth.verify(&hs256("k", &no_exp)),
        Err(TokenError::MissingExpiry)
    );
    let mut early = claims(600);
    early["nbf"] = json!(now() + 600);
    assert_eq!(
        auth.verify(&hs256("k", &early)),
        Err(TokenError::NotYetValid)
    );
}

#[tokio::test]
async fn audience_and_issuer_are_checked_only_when_configured() {
    let neutral = verifier(AuthConfig::new("k")).await;
    let mut other = claims(600);
    other["aud"] = json!("someone-else");
    other["iss"] = json!("elsewhere");
    assert!(neutral.verify(&hs256("k", &other)).is_ok());
    let strict = verifier(strict()).await;
    assert_eq!(strict.verify(&hs256("k", &other)), Err(TokenError::Issuer));
    let mut wrong_aud = claims(600);
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(
        strict.verify(&hs256("k", &wrong_aud)),
        Err(TokenError::Audience)
    );
    let mut list = claims(600);
    list["aud"] = json!(["x", "app"]);
    assert!(strict.verify(&hs256("k", &list)).is_ok());
    let mut no_aud = claims(600);
    no_aud.as_object_mut().map(|claims| claims.remove("aud"));
    assert_eq!(
        strict.verify(&hs256("k", &no_aud)),
        Err(TokenError::Audience)
    );
}

/// Generates a key pair with `openssl genpkey ARGS`; returns (private PKCS#8
/// PEM, public SPKI PEM).
pub(crate) fn openssl_key(args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    use std::process::Command;
    let private = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .expect("the openssl command is installed");
    assert!(private.status.success(), "openssl genpkey failed");
    let dir = std::env::temp_dir().join(format!("roomhost-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // One file per key: tests run at once, and two writing the same path
    // would pair one test's private key with another's public key.
    static KEYS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let serial = KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = args.join("_").replace([':', '/'], "-");
    let path = dir.join(format!("{name}-{serial}.pem"));
    std::fs::write(&path, &private.stdout).expect("write key");
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&path)
        .output()
        .expect("openssl pkey");
    assert!(public.status.success(), "openssl pkey failed");
    (private.stdout, public.stdout)
}

const RSA: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];

/// Thirty-odd ways to forge a token: each must be refused, none may panic.
#[tokio::test]
async fn forgeries_are_refused() {
    let (private, public) = openssl_key(RSA);
    let dir = std::env::temp_dir().join(format!("roomhost-forge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let public_path = dir.join("rsa.pub.pem");
    std::fs::write(&public_path, &public).expect("write");
    let auth = verifier(strict().with_public_key(&public_path)).await;
    let good = claims(600);
    let rs256 = |claims: &Value, header: Header| {
        encode(
            &header,
            claims,
            &EncodingKey::from_rsa_pem(&private).expect("rsa key"),
        )
        .expect("sign")
    };
    // Sanity: both keys work for honest tokens.
    assert!(auth.verify(&hs256("k", &good)).is_ok());
    assert!(
        auth.verify(&rs256(&good, Header::new(Algorithm::RS256)))
            .is_ok()
    );

    let valid = hs256("k", &good);
    let (signed, signature) = valid.rsplit_once('.').expect("three parts");
    let mut tampered = good.clone();
    tampered["sub"] = json!("admin");
    let swapped_payload = format!(
        "{}.{}.{signature}",
        signed.split('.').next().unwrap_or_default(),
        URL_SAFE_NO_PAD.encode(tampered.to_string())
    );
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    let mut string_exp = good.clone();
    string_exp["exp"] = json!("9999999999");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("evil");
    let mut kid_header = Header::new(Algorithm::RS256);
    kid_header.kid = Some("../../etc/passwd".into());
    let (other_private, _) = openssl_key(RSA);

    let forgeries: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("one part", "abc".into()),
        ("two parts", "a.b".into()),
        ("four parts", format!("{valid}.x")),
        ("junk", "!!.??.**".into()),
        ("empty header and claims", "e30.e30.".into()),
        ("too long", "x".repeat(MAX_TOKEN_BYTES + 1)),
        (
            "alg none, no signature",
            raw(&json!({ "alg": "none" }), &good, ""),
        ),
        ("alg None", raw(&json!({ "alg": "None" }), &good, "")),
        ("alg NONE", raw(&json!({ "alg": "NONE" }), &good, "")),
        ("alg nOnE", raw(&json!({ "alg": "nOnE" }), &good, "")),
        (
            "alg hs256 lower case",
            raw(&json!({ "alg": "hs256" }), &good, signature),
        ),
        (
            "alg missing",
            raw(&json!({ "typ": "JWT" }), &good, signature),
        ),
        ("alg null", raw(&json!({ "alg": null }), &good, signature)),
        ("alg number", raw(&json!({ "alg": 256 }), &good, signature)),
        (
            "header not JSON",
            format!(
                "bm90IGpzb24.{}",
                &signed[signed.find('.').unwrap_or(0) + 1..]
            ) + "."
                + signature,
        ),
        (
            "HS384 with the secret",
            encode(
                &Header::new(Algorithm::HS384),
                &good,
                &EncodingKey::from_secret(b"k").expect("a secret"),
            )
            .expect("sign"),
        ),
        (
            "HS512 with the secret",
            encode(
                &Header::new(Algorithm::HS512),
                &good,
                &EncodingKey::from_secret(b"k").expect("a secret"),
            )
            .expect("sign"),
        ),
        ("wrong secret", hs256("not-k", &good)),
        ("secret with a trailing space", hs256("k ", &good)),
        ("payload swapped after signing", swapped_payload),
        ("signature stripped", format!("{signed}.")),
        (
            "signature truncated",
            format!("{signed}.{}", &signature[..signature.len() / 2]),
        ),
        ("signature not base64", format!("{signed}.@@@@")),
        (
            "signature of another token",
            format!(
                "{}.{signature}",
                raw(&json!({"alg":"HS256"}), &tampered, "").trim_end_matches('.')
            ),
        ),
        ("expired", hs256("k", &expired)),
        ("exp as a string", hs256("k", &string_exp)),
        ("wrong issuer", hs256("k", &wrong_iss)),
        (
            "HS256 keyed with the RSA public key (algorithm confusion)",
            hmac_over(&json!({ "alg": "HS256", "typ": "JWT" }), &good, &public),
        ),
        (
            "RS256 header, HMAC signature with the public key",
            hmac_over(&json!({ "alg": "RS256", "typ": "JWT" }), &good, &public),
        ),
        (
            "RS256 signed by another key",
            encode(
                &Header::new(Algorithm::RS256),
                &good,
                &EncodingKey::from_rsa_pem(&other_private).expect("rsa"),
            )
            .expect("sign"),
        ),
        (
            "RS256 with a path-like kid, signed by another key",
            encode(
                &kid_header,
                &good,
                &EncodingKey::from_rsa_pem(&other_private).expect("rsa"),
            )
            .expect("sign"),
        ),
        (
            "PS256 signed by another key",
            encode(
                &Header::new(Algorithm::PS256),
                &good,
                &EncodingKey::from_rsa_pem(&other_private).expect("rsa"),
            )
            .expect("sign"),
        ),
        ("ES256 header on an RSA signature", {
            let token = rs256(&good, Header::new(Algorithm::RS256));
            let (_, rest) = token.split_once('.').expect("parts");
            format!(
                "{}.{rest}",
                URL_SAFE_NO_PAD.encode(json!({"alg":"ES256"}).to_string())
            )
        }),
        (
            "EdDSA header on an HMAC signature",
            hmac_over(&json!({ "alg": "EdDSA" }), &good, b"k"),
        ),
    ];
    assert!(forgeries.len() >= 30, "{} cases", forgeries.len());
    for (what, token) in &forgeries {
        assert!(auth.verify(token).is_err(), "{what}: accepted");
    }
    let neutral = verifier(AuthConfig::new("k")).await;
    for (what, token) in &forgeries {
        if *what == "wrong issuer" {
            continue;
        }
        assert!(
            neutral.verify(token).is_err(),
            "{what}: accepted without aud/iss checks"
        );
    }
}

#[tokio::test]
async fn a_jwks_binds_each_key_to_its_algorithm_and_kid() {
    let (private, _) = openssl_key(RSA);
    let key = EncodingKey::from_rsa_pem(&private).expect("rsa");
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some("k1".into());
    let set = json!({ "keys": [jwk, { "kty": "oct", "k": "c2VjcmV0", "kid": "sym" }, { "kty": "unknown" }] });
    let keys = jwks::parse(set.to_string().as_bytes()).expect("a set");
    assert_eq!(keys.len(), 1, "the oct and unknown keys are skipped");
    assert_eq!(keys[0].algorithms, [Algorithm::RS256]);
    assert!(jwks::parse(b"[]").is_none());
}

/// Prints what one verification costs per key type (`cargo test -p
/// roomhost-host --lib verification_cost -- --ignored --nocapture`; the
/// crypto crates are optimised even in debug builds).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn verification_cost() {
    let dir = std::env::temp_dir().join(format!("roomhost-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = claims(600);
    let mut cases = vec![("HS256".to_owned(), strict(), hs256("k", &good))];
    for (name, args, algorithm) in [
        ("RS256", RSA, Algorithm::RS256),
        (
            "ES256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            Algorithm::ES256,
        ),
        ("EdDSA", &["-algorithm", "ED25519"][..], Algorithm::EdDSA),
    ] {
        let (private, public) = openssl_key(args);
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &public).expect("write");
        let key = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&private),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&private),
            _ => EncodingKey::from_rsa_pem(&private),
        }
        .expect("key");
        let token = encode(&Header::new(algorithm), &good, &key).expect("sign");
        cases.push((name.to_owned(), strict().with_public_key(&path), token));
    }
    for (name, config, token) in cases {
        let auth = verifier(config).await;
        let rounds = 2000u32;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            assert!(auth.verify(&token).is_ok());
        }
        println!("{name}: {:?} per token", started.elapsed() / rounds);
    }
}
