//! Contract 0.4 against a real server: `init` that refuses to start,
//! rejections with their own close codes, services without a lobby,
//! transfers asked for during `connect`, per-client state kept across a hot
//! reload, `PUT`/`PATCH` reaching a room, and components built for the
//! previous contract refused with a rebuild hint.

use roomhost_e2e::{
    TestServer, http_request, plugin, plugin_rebuilt, plugin_target_dir, test_limits,
};
use roomhost_host::{CompileCache, PluginError, Server, ServerConfig, ServerError, ServiceSpec};
use serde_json::json;

/// A config for [`Server::bind`] with `services` on an ephemeral port.
fn config(services: Vec<ServiceSpec>) -> ServerConfig {
    ServerConfig {
        limits: test_limits(),
        cache: Some(CompileCache::new(plugin_target_dir().join("compile-cache"))),
        ..ServerConfig::new(([127, 0, 0, 1], 0).into(), services)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_init_fails_closes_its_client_with_1011_and_the_reason() {
    let server = TestServer::start(
        vec![
            ServiceSpec::new("misbehave", plugin("misbehave"))
                .with_config(json!({ "fail_room_init": "no tables left" })),
        ],
        test_limits(),
    )
    .await;
    let mut client = server.connect("/ws/misbehave/table").await;
    let closed = client.closed().await;
    assert_eq!(closed.code, Some(1011), "{closed:?}");
    assert!(closed.reason.contains("no tables left"), "{closed:?}");
    // Nothing is left behind: the room is not listed.
    let (status, _) = server.get_json("/rooms/misbehave/table").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lobby_whose_init_fails_stops_the_server_with_the_reason() {
    let services = vec![
        ServiceSpec::new("misbehave", plugin("misbehave"))
            .with_config(json!({ "fail_init": "bad config: max_players is 0" })),
    ];
    let Err(error) = Server::bind(config(services)).await else {
        panic!("the server started with a failing lobby");
    };
    assert!(matches!(error, ServerError::Lobby { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("bad config: max_players is 0"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_carries_the_plugins_close_code() {
    let server = TestServer::single("misbehave").await;
    let mut coded = server
        .connect("/ws/r?reject=members%20only&reject-code=4403")
        .await;
    let closed = coded.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (Some(4403), "members only")
    );
    // Without a code (or with one outside 4000..=4999) it is 1008.
    let mut plain = server.connect("/ws/r?reject=no&reject-code=1011").await;
    assert_eq!(plain.closed().await.code, Some(1008));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_a_lobby_answers_404_at_its_root() {
    // counter declares no lobby; misbehave does.
    let server = TestServer::start(
        vec![
            ServiceSpec::new("counter", plugin("counter")),
            ServiceSpec::new("misbehave", plugin("misbehave")),
        ],
        test_limits(),
    )
    .await;
    let url = format!("ws://{}/ws/counter", server.addr());
    let refused = tokio_tungstenite::connect_async(&url).await.err();
    let Some(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("the upgrade was not refused with an HTTP error: {refused:?}");
    };
    assert_eq!(response.status(), 404);
    let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
    assert!(body.contains("has no lobby"), "{body}");
    // No lobby instance was started for it: only misbehave's is running.
    assert_eq!(server.handle().rooms().len(), 1, "only misbehave's lobby");
    // Rooms work as before.
    let mut client = server.connect("/ws/counter/tally").await;
    assert_eq!(client.recv_json().await["count"], 0);
    // The service with a lobby still has it.
    let mut lobby_client = server.connect("/ws/misbehave").await;
    lobby_client.send_text("whoami").await;
    assert_eq!(lobby_client.recv_text().await, "lobby");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_asked_for_during_connect_runs_once_the_client_is_in() {
    let server = TestServer::single("misbehave").await;
    let mut client = server.connect("/ws/first?transfer-now=second").await;
    assert_eq!(client.recv_text().await, "transfer-now:ok");
    // It arrives in the target with the source named, no extra round trip.
    assert_eq!(client.recv_text().await, "arrived:first::");
    client.send_text("whoami").await;
    assert_eq!(client.recv_text().await, "room:second");
    // A rejected connect drops the transfer: the target never appears.
    let mut refused = server
        .connect("/ws/third?transfer-now=fourth&reject=no")
        .await;
    assert_eq!(refused.recv_text().await, "transfer-now:ok");
    assert_eq!(refused.closed().await.code, Some(1008));
    let (status, _) = server.get_json("/rooms/misbehave/fourth").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_state_and_info_are_the_hosts_and_survive_a_reload() {
    let server = TestServer::single("misbehave").await;
    let mut ada = server.connect("/ws/club?name=ada").await;
    let mut bob = server.connect("/ws/club?name=bob").await;
    ada.send_text(r#"state-set:{"score":3}"#).await;
    assert_eq!(ada.recv_text().await, "state-ok");
    let big = format!(r#"state-set:"{}""#, "x".repeat(5000));
    bob.send_text(&big).await;
    let refused = bob.recv_text().await;
    assert!(refused.contains("4096"), "{refused}");

    bob.send_text("clients").await;
    let before = bob.recv_text().await;
    assert!(
        before.contains(r#"={"score":3}"#) && before.ends_with("=-"),
        "{before}"
    );

    let report = server
        .handle()
        .reload("misbehave", &plugin_rebuilt("misbehave", "state"))
        .await
        .expect("reload");
    assert!(report.kept_old.is_empty(), "{report:?}");
    bob.send_text("clients").await;
    assert_eq!(
        bob.recv_text().await,
        before,
        "state kept across the reload"
    );
    let ada_id = before
        .trim_start_matches("clients:")
        .split('=')
        .next()
        .unwrap_or_default()
        .to_owned();
    bob.send_text(&format!("whois:{ada_id}")).await;
    assert_eq!(bob.recv_text().await, "whois:name=ada");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_patch_reach_the_room() {
    let server = TestServer::single("misbehave").await;
    let mut member = server.connect("/ws/notes").await;
    // A round trip: the room is live before the requests (they do not
    // create rooms).
    member.send_text("whoami").await;
    assert_eq!(member.recv_text().await, "room:notes");
    for method in ["PUT", "PATCH"] {
        let response = http_request(
            server.addr(),
            method,
            "/rooms/misbehave/notes/method",
            b"hi",
        )
        .await
        .expect("request");
        assert_eq!(response.status, 200, "{method}: {}", response.head);
        assert_eq!(response.body, format!("{method}:hi").as_bytes());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_for_contract_0_3_is_refused_with_a_rebuild_hint() {
    let services = vec![ServiceSpec::new("old", plugin("old-contract"))];
    let Err(error) = Server::bind(config(services)).await else {
        panic!("a 0.3.0 component was served");
    };
    assert!(
        matches!(
            &error,
            ServerError::Plugin(PluginError::OldContract { version, .. }) if version == "0.3.0"
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("roomhost:room@0.3.0")
            && message.contains("roomhost:room@0.4.0")
            && message.contains("rebuild"),
        "{message}"
    );
}
