//! Access control end to end, over real sockets: every refusal before the
//! upgrade (missing, expired, wrong key, wrong algorithm, wrong room, bad
//! origin), the three places a token may travel, identity and claims in
//! `connect`, RS256/ES256/EdDSA keys from PEM files, a JWKS rotated while
//! the server runs, the admin token, and a read-only collab client.

use std::time::Duration;

use roomhost_e2e::keys::{self, JwksServer, KeyPair, claims, hs256, jwks};
use roomhost_e2e::{
    Client, HttpResponse, TestServer, eventually, http_request_with_headers, leb128, plugin,
};
use roomhost_host::access::AccessPolicy;
use roomhost_host::{AdminConfig, AuthConfig, JwksSource, ServiceSpec};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "e2e-access-secret";

fn guarded(name: &str, crate_name: &str) -> ServiceSpec {
    ServiceSpec::new(name, plugin(crate_name)).with_access(AccessPolicy {
        require_token: true,
        allowed_origins: vec!["https://app.example".into()],
        ..AccessPolicy::default()
    })
}

async fn hs_server() -> TestServer {
    TestServer::start_with_access(
        vec![guarded("echo", "misbehave")],
        Some(AuthConfig::new(SECRET).with_audience("roomhost-e2e")),
        AdminConfig::default(),
    )
    .await
}

fn token(extra: Value) -> String {
    let mut extra = extra;
    if extra.get("aud").is_none() {
        extra["aud"] = json!("roomhost-e2e");
    }
    hs256(SECRET, &claims("ada", extra))
}

async fn upgrade(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
    Client::connect_with_headers(server.addr(), path, headers).await
}

/// A refusal case: what, request headers, path, expected status.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str, u16);

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_comes_before_the_upgrade() {
    let server = hs_server().await;
    let mut expired = claims("ada", json!({ "aud": "roomhost-e2e" }));
    expired["exp"] = json!(keys::now_secs() - 3600);
    let none = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIn0", // {"alg":"none"}
        token(json!({})).split('.').nth(1).unwrap_or_default()
    );
    let hs512 = {
        use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
        let claims = claims("ada", json!({ "aud": "roomhost-e2e" }));
        encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).expect("a secret"),
        )
        .expect("sign")
    };
    let cases: Vec<Case> = vec![
        ("missing", vec![], "/ws/r1", 401),
        (
            "expired",
            vec![("authorization", bearer(&hs256(SECRET, &expired)))],
            "/ws/r1",
            401,
        ),
        (
            "wrong key",
            vec![(
                "authorization",
                bearer(&hs256(
                    "not-the-secret",
                    &claims("ada", json!({ "aud": "roomhost-e2e" })),
                )),
            )],
            "/ws/r1",
            401,
        ),
        (
            "wrong algorithm: none",
            vec![("authorization", bearer(&none))],
            "/ws/r1",
            401,
        ),
        (
            "wrong algorithm: HS512",
            vec![("authorization", bearer(&hs512))],
            "/ws/r1",
            401,
        ),
        (
            "wrong audience",
            vec![("authorization", bearer(&token(json!({ "aud": "other" }))))],
            "/ws/r1",
            401,
        ),
        (
            "wrong room",
            vec![(
                "authorization",
                bearer(&token(json!({ "rooms": ["team-*"] }))),
            )],
            "/ws/r1",
            403,
        ),
        (
            "bad origin",
            vec![
                ("authorization", bearer(&token(json!({})))),
                ("origin", "https://evil.example".into()),
            ],
            "/ws/r1",
            403,
        ),
        (
            "bad origin, no token",
            vec![("origin", "https://evil.example".into())],
            "/ws/r1",
            403,
        ),
        (
            "token in an unconfigured query parameter",
            vec![],
            &*format!("/ws/r1?token={}", token(json!({}))).leak(),
            401,
        ),
    ];
    for (what, headers, path, status) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        match upgrade(&server, path, &headers).await {
            Err(got) => assert_eq!(got, *status, "{what}"),
            Ok(_) => panic!("{what}: the upgrade succeeded"),
        }
    }
    // Nothing was touched: no room exists.
    let (status, rooms) = server.get_json("/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(rooms, json!([]), "refused clients created no room");

    // The same server admits good tokens from each source.
    let good = token(json!({ "rooms": ["r1", "team-*"] }));
    let by_header = upgrade(&server, "/ws/r1", &[("authorization", &bearer(&good))]).await;
    assert!(by_header.is_ok(), "Authorization: Bearer");
    let by_query = upgrade(&server, &format!("/ws/team-a?access_token={good}"), &[]).await;
    assert!(by_query.is_ok(), "query parameter");
    let protocols = format!("chat, bearer.{good}");
    let mut by_protocol = upgrade(
        &server,
        "/ws/r1?whoami",
        &[
            ("sec-websocket-protocol", &protocols),
            ("origin", "https://app.example"),
        ],
    )
    .await
    .expect("Sec-WebSocket-Protocol entry, allowed origin");
    let info = by_protocol.recv_json().await;
    assert_eq!(info["identity"], "ada");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_claims_and_read_only_arrive_in_connect() {
    let server = hs_server().await;
    let writer = token(json!({ "name": "Ada", "rooms": { "doc-*": "write" } }));
    let mut client = upgrade(
        &server,
        &format!("/ws/doc-1?whoami&access_token={writer}&x=1"),
        &[],
    )
    .await
    .expect("admitted");
    let info = client.recv_json().await;
    assert_eq!(info["identity"], "ada", "the token's subject");
    assert_eq!(info["claims"]["name"], "Ada");
    assert_eq!(info["read_only"], false);
    assert_eq!(info["query"], "whoami&x=1", "the token is not passed on");

    let reader = token(json!({ "rooms": { "doc-*": "read" } }));
    let mut client = upgrade(
        &server,
        "/ws/doc-1?whoami",
        &[("authorization", &bearer(&reader))],
    )
    .await
    .expect("admitted");
    let info = client.recv_json().await;
    assert_eq!(info["read_only"], true);
    server.stop().await;
}

/// Serves misbehave with `auth`, then checks that `good` connects and each
/// of `bad` gets 401.
async fn check_tokens(auth: AuthConfig, good: &[String], bad: &[(&str, String)]) {
    let server = TestServer::start_with_access(
        vec![guarded("echo", "misbehave")],
        Some(auth),
        AdminConfig::default(),
    )
    .await;
    for token in good {
        let mut client = upgrade(
            &server,
            "/ws/r?whoami",
            &[("authorization", &bearer(token))],
        )
        .await
        .unwrap_or_else(|status| panic!("refused with {status}: {token}"));
        assert_eq!(client.recv_json().await["identity"], "ada");
    }
    for (what, token) in bad {
        assert_eq!(
            upgrade(&server, "/ws/r", &[("authorization", &bearer(token))])
                .await
                .err(),
            Some(401),
            "{what}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_es256_and_eddsa_keys_from_pem_files() {
    let (rsa, ec, ed) = (KeyPair::rs256(), KeyPair::es256(), KeyPair::ed25519());
    let stranger = KeyPair::rs256();
    let ada = claims("ada", json!({}));
    let public_rsa = std::fs::read_to_string(&rsa.public_path).expect("read");
    let auth = AuthConfig::empty()
        .with_public_key(&rsa.public_path)
        .with_public_key(&ec.public_path)
        .with_public_key(&ed.public_path);
    check_tokens(
        auth,
        &[
            rsa.sign(&ada, None),
            ec.sign(&ada, None),
            ed.sign(&ada, Some("any")),
        ],
        &[
            (
                "RS256 from a key the server does not know",
                stranger.sign(&ada, None),
            ),
            (
                "HS256 keyed with the RSA public key (algorithm confusion)",
                hs256(&public_rsa, &ada),
            ),
            ("HS256 without a secret", hs256(SECRET, &ada)),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_is_refreshed_and_picks_up_a_rotated_key() {
    let (old, new) = (KeyPair::rs256(), KeyPair::es256());
    let keyset = JwksServer::start(jwks(&[old.jwk("2026-old")])).await;
    let mut auth = AuthConfig::jwks(JwksSource::Url(keyset.url()), Duration::from_millis(200));
    auth.issuer = Some("https://idp.example/".into());
    let server = TestServer::start_with_access(
        vec![guarded("echo", "misbehave")],
        Some(auth),
        AdminConfig::default(),
    )
    .await;
    let ada = claims("ada", json!({ "iss": "https://idp.example/" }));
    let old_token = old.sign(&ada, Some("2026-old"));
    let new_token = new.sign(&ada, Some("2026-new"));
    let status = |token: String| {
        let addr = server.addr();
        async move {
            Client::connect_with_headers(addr, "/ws/r", &[("authorization", &bearer(&token))])
                .await
                .err()
                .unwrap_or(101)
        }
    };
    assert_eq!(
        status(old_token.clone()).await,
        101,
        "the published key verifies"
    );
    assert_eq!(
        status(new_token.clone()).await,
        401,
        "the next key is not published yet"
    );
    let mut wrong_issuer = ada.clone();
    wrong_issuer["iss"] = json!("https://evil.example/");
    assert_eq!(status(old.sign(&wrong_issuer, Some("2026-old"))).await, 401);

    // Rotation: both keys for a while, then only the new one.
    keyset.set(jwks(&[old.jwk("2026-old"), new.jwk("2026-new")]));
    eventually("the new key to verify", || {
        let check = status(new_token.clone());
        async move { (check.await == 101).then_some(()) }
    })
    .await;
    keyset.set(jwks(&[new.jwk("2026-new")]));
    eventually("the retired key to be refused", || {
        let check = status(old_token.clone());
        async move { (check.await == 401).then_some(()) }
    })
    .await;
    assert_eq!(status(new_token).await, 101);
    assert!(keyset.served() >= 3, "fetched {} times", keyset.served());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_file_is_read_again_on_schedule() {
    let (first, second) = (KeyPair::ed25519(), KeyPair::rs256());
    let path = std::env::temp_dir().join(format!("roomhost-e2e-jwks-{}.json", std::process::id()));
    std::fs::write(&path, jwks(&[first.jwk("a")])).expect("write");
    let auth = AuthConfig::jwks(JwksSource::File(path.clone()), Duration::from_millis(200));
    let server = TestServer::start_with_access(
        vec![guarded("echo", "misbehave")],
        Some(auth),
        AdminConfig::default(),
    )
    .await;
    let ada = claims("ada", json!({}));
    let bearer_first = bearer(&first.sign(&ada, Some("a")));
    assert!(
        upgrade(&server, "/ws/r", &[("authorization", &bearer_first)])
            .await
            .is_ok()
    );
    std::fs::write(&path, jwks(&[second.jwk("b")])).expect("rotate");
    let bearer_second = bearer(&second.sign(&ada, Some("b")));
    eventually("the rotated file to be read", || {
        let addr = server.addr();
        let header = bearer_second.clone();
        async move {
            Client::connect_with_headers(addr, "/ws/r", &[("authorization", &header)])
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    assert_eq!(
        upgrade(&server, "/ws/r", &[("authorization", &bearer_first)])
            .await
            .err(),
        Some(401)
    );
    server.stop().await;
}

async fn get(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request_with_headers(server.addr(), "GET", path, headers, b"")
        .await
        .expect("HTTP works")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_require_the_admin_token() {
    let server = TestServer::start_with_access(
        vec![ServiceSpec::new("echo", plugin("misbehave"))],
        None,
        AdminConfig {
            token: Some("admin-s3cret".into()),
            open: false,
        },
    )
    .await;
    for path in ["/status", "/rooms", "/rooms/echo/r"] {
        let refused = get(&server, path, &[]).await;
        assert_eq!(refused.status, 401, "{path} without a token");
        assert!(refused.head.contains("www-authenticate: bearer"), "{path}");
        let wrong = get(&server, path, &[("authorization", "Bearer guess")]).await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
    }
    let ok = get(
        &server,
        "/status",
        &[("authorization", "Bearer admin-s3cret")],
    )
    .await;
    assert_eq!(ok.status, 200);
    let ok = get(
        &server,
        "/rooms",
        &[("authorization", "Bearer admin-s3cret")],
    )
    .await;
    assert_eq!(ok.json().expect("JSON"), json!([]));
    // Clients of an open service are not affected.
    let mut client = server.connect("/ws/r").await;
    client.send_text("echo:hi").await;
    assert_eq!(client.recv_text().await, "hi");
    server.stop().await;
}

// ------------------------------------------------------------ collab

/// A y-protocols sync `update` frame carrying `update`.
fn update_frame(update: &[u8]) -> Vec<u8> {
    let mut frame = vec![0, 2];
    frame.extend(leb128(update.len()));
    frame.extend_from_slice(update);
    frame
}

/// A y-protocols awareness frame with one state.
fn awareness_frame(client_id: usize, clock: usize, state: &str) -> Vec<u8> {
    let mut update = leb128(1);
    update.extend(leb128(client_id));
    update.extend(leb128(clock));
    update.extend(leb128(state.len()));
    update.extend_from_slice(state.as_bytes());
    let mut frame = vec![1];
    frame.extend(leb128(update.len()));
    frame.extend(update);
    frame
}

/// Reads binary frames until one satisfies `found`.
async fn wait_for_frame(client: &mut Client, found: impl Fn(&[u8]) -> bool) {
    loop {
        match client.recv().await {
            Message::Binary(bytes) if found(&bytes) => return,
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_collab_client_reads_and_shows_presence_but_cannot_edit() {
    let collab = ServiceSpec::new("collab", plugin("collab"))
        .with_http_creates_rooms(true)
        .with_access(AccessPolicy {
            require_token: true,
            allowed_origins: vec!["https://app.example".into()],
            ..AccessPolicy::default()
        });
    let server = TestServer::start_with_access(
        vec![collab, ServiceSpec::new("echo", plugin("misbehave"))],
        Some(AuthConfig::new(SECRET)),
        AdminConfig::default(),
    )
    .await;
    let writer = bearer(&hs256(
        SECRET,
        &claims("ada", json!({ "rooms": { "doc-*": "write" } })),
    ));
    let reader = bearer(&hs256(
        SECRET,
        &claims("bob", json!({ "rooms": { "doc-*": "read" } })),
    ));
    let request =
        |method: &'static str, path: &'static str, token: Option<String>, body: &'static [u8]| {
            let addr = server.addr();
            async move {
                let mut headers = vec![("origin", "https://app.example".to_owned())];
                if let Some(token) = token {
                    headers.push(("authorization", token));
                }
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                http_request_with_headers(addr, method, path, &headers, body)
                    .await
                    .expect("HTTP works")
            }
        };
    let edit = br#"{"insert": "hello", "index": 0}"#;

    // HTTP: the same policy.
    assert_eq!(
        request("POST", "/rooms/collab/doc-1/text/t", None, edit)
            .await
            .status,
        401
    );
    let refused = request(
        "POST",
        "/rooms/collab/doc-1/text/t",
        Some(reader.clone()),
        edit,
    )
    .await;
    assert_eq!(
        refused.status, 403,
        "a read-only token may not edit over REST"
    );
    assert_eq!(
        request(
            "POST",
            "/rooms/collab/other/text/t",
            Some(writer.clone()),
            edit
        )
        .await
        .status,
        403,
        "a room the token does not open"
    );
    let written = request(
        "POST",
        "/rooms/collab/doc-1/text/t",
        Some(writer.clone()),
        edit,
    )
    .await;
    assert_eq!(
        written.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&written.body)
    );
    assert!(
        written
            .head
            .contains("access-control-allow-origin: https://app.example"),
        "CORS for an allowed origin: {}",
        written.head
    );
    let read = request("GET", "/rooms/collab/doc-1/doc", Some(reader.clone()), b"").await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json().expect("JSON"), json!({ "t": "hello" }));
    let evil = http_request_with_headers(
        server.addr(),
        "GET",
        "/rooms/collab/doc-1/doc",
        &[
            ("origin", "https://evil.example"),
            ("authorization", &writer),
        ],
        b"",
    )
    .await
    .expect("HTTP");
    assert_eq!(evil.status, 403, "an origin outside the allow-list");
    let preflight = request("OPTIONS", "/rooms/collab/doc-1/doc", None, b"").await;
    assert_eq!(preflight.status, 204);
    assert!(preflight.head.contains("access-control-allow-methods"));

    // A real update to try: another document's whole state.
    let source = request(
        "POST",
        "/rooms/collab/doc-src/text/t",
        Some(writer.clone()),
        br#"{"insert": "vandal", "index": 0}"#,
    )
    .await;
    assert_eq!(source.status, 200);
    let update = request(
        "GET",
        "/rooms/collab/doc-src/update",
        Some(writer.clone()),
        b"",
    )
    .await
    .body;

    let mut ada = upgrade(&server, "/ws/collab/doc-1", &[("authorization", &writer)])
        .await
        .expect("the writer connects");
    let mut bob = upgrade(&server, "/ws/collab/doc-1", &[("authorization", &reader)])
        .await
        .expect("the reader connects");
    bob.send_binary(&update_frame(&update)).await;
    bob.send_binary(&awareness_frame(77, 1, r#"{"user":"bob"}"#))
        .await;
    // Frames from one client are handled in order: once bob's awareness
    // reaches ada, his update has been dealt with.
    wait_for_frame(&mut ada, |frame| {
        frame.first() == Some(&1) && String::from_utf8_lossy(frame).contains("\"user\":\"bob\"")
    })
    .await;
    let doc = request("GET", "/rooms/collab/doc-1/doc", Some(reader.clone()), b"").await;
    assert_eq!(
        doc.json().expect("JSON"),
        json!({ "t": "hello" }),
        "the read-only update was dropped"
    );

    // The same frame from the writer is applied.
    ada.send_binary(&update_frame(&update)).await;
    eventually("the writer's update to apply", || {
        let doc = request("GET", "/rooms/collab/doc-1/doc", Some(reader.clone()), b"");
        async move {
            let doc = doc.await.json().ok()?;
            doc["t"].as_str()?.contains("vandal").then_some(())
        }
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_stay_within_the_rooms_the_token_opens() {
    let server = hs_server().await;
    let limited = token(json!({ "rooms": ["r1", "ok-*"] }));
    let mut client = upgrade(&server, "/ws/r1", &[("authorization", &bearer(&limited))])
        .await
        .expect("admitted");
    client.send_text("go:ok-1:x").await;
    assert_eq!(
        client.recv_text().await,
        "arrived:r1:x:",
        "a room the token opens"
    );
    client.send_text("go:r2:y").await;
    assert_eq!(
        client.recv_text().await,
        "arrived:r2:y:the token does not grant room \"r2\"",
        "refused like a rejecting room, and back where it was"
    );
    let (_, rooms) = server.get_json("/rooms").await;
    let ids: Vec<&str> = rooms
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|room| room["room"].as_str())
        .collect();
    assert!(
        !ids.contains(&"r2"),
        "the refused room was never created: {ids:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_makes_the_server_read_the_jwks_early() {
    let (old, new) = (KeyPair::ed25519(), KeyPair::ed25519());
    let keyset = JwksServer::start(jwks(&[old.jwk("old")])).await;
    // The schedule alone would not read the set again during this test.
    let auth = AuthConfig::jwks(JwksSource::Url(keyset.url()), Duration::from_secs(3600));
    let server = TestServer::start_with_access(
        vec![guarded("echo", "misbehave")],
        Some(auth),
        AdminConfig::default(),
    )
    .await;
    keyset.set(jwks(&[old.jwk("old"), new.jwk("new")]));
    let header = bearer(&new.sign(&claims("ada", json!({})), Some("new")));
    assert_eq!(
        upgrade(&server, "/ws/r", &[("authorization", &header)])
            .await
            .err(),
        Some(401),
        "refused at first: the server's set is older than the token"
    );
    // The early read waits out the minimum interval (10 s) since the last.
    let deadline = tokio::time::Instant::now() + roomhost_host::auth::jwks::MIN_REFETCH * 2;
    loop {
        if upgrade(&server, "/ws/r", &[("authorization", &header)])
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new key never verified"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(keyset.served(), 2, "one read at startup, one early read");
    server.stop().await;
}
