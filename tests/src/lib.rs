//! Support for roomhost's end-to-end tests: plugins built to wasm once per
//! test binary, a real server on an ephemeral port, and a WebSocket client
//! with timeouts on every wait so a broken server fails a test instead of
//! hanging it. [`webdriver`] drives headless Chromium for the dashboard's
//! browser test.

pub mod keys;
pub mod memory;
pub mod node;
pub mod raw;
pub mod webdriver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use roomhost_host::dev::DevTap;
use roomhost_host::storage::{Backend, EmbeddedBackend, MemoryBackend};
use roomhost_host::{
    AdminConfig, AuthConfig, CompileCache, Limits, Server, ServerConfig, ServerHandle, ServiceSpec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The crates built to wasm for the tests: shipped plugins and fixtures.
const PLUGIN_CRATES: &[&str] = &[
    "counter",
    "chat",
    "misbehave",
    "netplug",
    "old-contract",
    "resumable",
    "durable",
    "relay",
    "watch-party",
    "game-lobby",
    "fanout",
    "collab",
];

/// The TypeScript services in `plugins/` (built with `guest-sdk-js`),
/// each speaking the protocol of the Rust plugin named without `-ts`.
pub const JS_PLUGINS: &[&str] = &["counter-ts", "chat-ts"];

/// TypeScript fixtures in `tests/fixtures/`.
const JS_FIXTURES: &[&str] = &["lobby-ts", "durable-ts"];

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Target directory for wasm builds: separate from the one `cargo test`
/// holds locked while tests run.
pub fn plugin_target_dir() -> PathBuf {
    workspace_root().join("target").join("plugins")
}

/// The component built from plugin crate `name` (built on first use, once
/// per test binary).
pub fn plugin(name: &str) -> PathBuf {
    if JS_PLUGINS.contains(&name) || JS_FIXTURES.contains(&name) {
        return js_plugin(name);
    }
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| build_plugins().map_err(|error| format!("{error:#}")));
    if let Err(error) = built {
        panic!("building the test plugins failed: {error}");
    }
    plugin_target_dir()
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// A copy of plugin `name`'s component as if rebuilt after an edit that
/// changed nothing it runs: the same code plus a custom section naming
/// `tag`, so its version differs. Hot reload skips a room already on the
/// version it is given; tests reload onto one of these.
pub fn plugin_rebuilt(name: &str, tag: &str) -> PathBuf {
    let original = plugin(name);
    let mut bytes = std::fs::read(&original)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", original.display()));
    let section_name = b"roomhost-test-rebuild";
    let mut body = leb128(section_name.len());
    body.extend_from_slice(section_name);
    body.extend_from_slice(tag.as_bytes());
    bytes.push(0); // custom section
    bytes.extend(leb128(body.len()));
    bytes.extend(body);
    let dir = plugin_target_dir().join("rebuilt");
    std::fs::create_dir_all(&dir).expect("create the rebuilt plugins' directory");
    // One file per process: test binaries run at the same time.
    let path = dir.join(format!("{name}-{tag}-{}.wasm", std::process::id()));
    std::fs::write(&path, bytes).expect("write the rebuilt plugin");
    path
}

/// `value` as an unsigned LEB128 number, as wasm encodes sizes (and lib0,
/// Yjs's encoding, its var-uints).
pub fn leb128(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The component built from the TypeScript service `plugins/NAME` or
/// `tests/fixtures/NAME` (built on first use, once per test binary: `npm
/// ci` in `guest-sdk-js`, then `roomhost-js build` for each).
pub fn js_plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| build_js_plugins().map_err(|error| format!("{error:#}")));
    if let Err(error) = built {
        panic!("building the TypeScript test plugins failed: {error}");
    }
    js_plugin_path(name)
}

fn js_plugin_path(name: &str) -> PathBuf {
    plugin_target_dir()
        .join("js")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

fn build_js_plugins() -> anyhow::Result<()> {
    // Test binaries run at once (two `cargo test`s, a runner that gives each
    // test a process) would clobber each other's `npm ci`: one at a time.
    let out = plugin_target_dir().join("js");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let lock =
        std::fs::File::create(out.join(".build.lock")).context("cannot create the build lock")?;
    lock.lock().context("cannot take the build lock")?;
    let sdk = workspace_root().join("guest-sdk-js");
    node::npm_ci(&sdk).map_err(anyhow::Error::msg)?;
    let plugins = JS_PLUGINS.iter().map(|name| ("plugins", name));
    let fixtures = JS_FIXTURES.iter().map(|name| ("tests/fixtures", name));
    for (parent, name) in plugins.chain(fixtures) {
        let status = Command::new("node")
            .arg(sdk.join("bin").join("roomhost-js.mjs"))
            .arg("build")
            .arg(workspace_root().join(parent).join(name))
            .arg("--out")
            .arg(js_plugin_path(name))
            .status()
            .context("cannot run node")?;
        if !status.success() {
            bail!("roomhost-js build of {parent}/{name} failed ({status})");
        }
    }
    Ok(())
}

fn build_plugins() -> anyhow::Result<()> {
    ensure_wasm_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(plugin_target_dir());
    for name in PLUGIN_CRATES {
        command.args(["-p", name]);
    }
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "cargo build of the test plugins failed ({status}); is the wasm32-wasip2 target installed?"
        );
    }
    Ok(())
}

/// Adds the wasm target with rustup when it is missing, so the README's test
/// command works on a fresh machine without a separate setup step.
fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(installed) = installed else {
        // No rustup: trust the toolchain to have the target.
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup target add wasm32-wasip2` failed ({status})");
    }
    Ok(())
}

/// Limits for tests: small tables so many servers fit one test process.
pub fn test_limits() -> Limits {
    Limits {
        max_rooms: 64,
        max_connections: 256,
        ..Limits::default()
    }
}

/// A server running in this process on an ephemeral port.
pub struct TestServer {
    addr: SocketAddr,
    handle: ServerHandle,
    dev_tap: Option<DevTap>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves plugin crate `name` as the only service, under its own name.
    pub async fn single(name: &str) -> TestServer {
        Self::start(vec![ServiceSpec::new(name, plugin(name))], test_limits()).await
    }

    /// Serves `services` under `limits`.
    pub async fn start(services: Vec<ServiceSpec>, limits: Limits) -> TestServer {
        Self::start_config(services, limits, None, AdminConfig::default(), None).await
    }

    /// Serves `services` under `limits` in dev mode: the dashboard at `/`
    /// and the dev event stream, fed by [`TestServer::dev_tap`].
    pub async fn start_dev(services: Vec<ServiceSpec>, limits: Limits) -> TestServer {
        Self::start_config(
            services,
            limits,
            None,
            AdminConfig::default(),
            Some(DevTap::new()),
        )
        .await
    }

    /// Serves `services` under `limits` with token verification on.
    pub async fn start_with_auth(
        services: Vec<ServiceSpec>,
        limits: Limits,
        auth: AuthConfig,
    ) -> TestServer {
        Self::start_config(services, limits, Some(auth), AdminConfig::default(), None).await
    }

    /// Serves `services` with token verification (if `auth` is given) and
    /// the admin endpoints protected as `admin` says.
    pub async fn start_with_access(
        services: Vec<ServiceSpec>,
        auth: Option<AuthConfig>,
        admin: AdminConfig,
    ) -> TestServer {
        Self::start_config(services, test_limits(), auth, admin, None).await
    }

    /// Serves `services` with rooms' stored data in `storage` (hand the
    /// same backend to a second server to play a restart).
    pub async fn start_with_storage(
        services: Vec<ServiceSpec>,
        limits: Limits,
        storage: Arc<dyn Backend>,
    ) -> TestServer {
        let mut config = Self::config(services, limits, None, AdminConfig::default(), None);
        config.storage = storage;
        Self::start_from(config).await
    }

    /// Serves `services` with rooms' stored data in the embedded store in
    /// `dir`: start a second server on the same directory to play a restart
    /// (it waits for the server stopped before to let go of the store's
    /// file lock, which happens shortly after it stops).
    pub async fn start_with_store_in(
        services: Vec<ServiceSpec>,
        limits: Limits,
        dir: &Path,
    ) -> TestServer {
        let store = eventually("the store to be free", || async {
            EmbeddedBackend::open(dir).ok()
        })
        .await;
        Self::start_with_storage(services, limits, Arc::new(store)).await
    }

    async fn start_config(
        services: Vec<ServiceSpec>,
        limits: Limits,
        auth: Option<AuthConfig>,
        admin: AdminConfig,
        dev_tap: Option<DevTap>,
    ) -> TestServer {
        Self::start_from(Self::config(services, limits, auth, admin, dev_tap)).await
    }

    fn config(
        services: Vec<ServiceSpec>,
        limits: Limits,
        auth: Option<AuthConfig>,
        admin: AdminConfig,
        dev_tap: Option<DevTap>,
    ) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            services,
            limits,
            cache: Some(CompileCache::new(plugin_target_dir().join("compile-cache"))),
            auth,
            admin,
            dev_tap,
            storage: Arc::new(MemoryBackend::new()),
            placement: None,
        }
    }

    async fn start_from(config: ServerConfig) -> TestServer {
        let dev_tap = config.dev_tap.clone();
        let server = Server::bind(config).await.expect("server starts");
        let addr = server.local_addr();
        let handle = server.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        TestServer {
            addr,
            handle,
            dev_tap,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The running server's handle (hot reload, room table).
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    /// The dev event stream (servers from [`TestServer::start_dev`] only).
    pub fn dev_tap(&self) -> Option<&DevTap> {
        self.dev_tap.as_ref()
    }

    /// Connects a client to `path` (e.g. `/ws/room1`).
    pub async fn connect(&self, path: &str) -> Client {
        Client::connect(self.addr, path)
            .await
            .expect("client connects")
    }

    /// `GET path` as JSON.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        http_get_json(self.addr, path)
            .await
            .expect("HTTP GET works")
    }

    /// Shuts the server down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("server stops in time")
                .expect("server task does not panic");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What a client saw when its connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code, if the server sent a close frame.
    pub code: Option<u16>,
    /// The close reason.
    pub reason: String,
}

/// A WebSocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connects to `ws://addr{path}`.
    pub async fn connect(addr: SocketAddr, path: &str) -> anyhow::Result<Client> {
        let url = format!("ws://{addr}{path}");
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&url))
            .await
            .context("connect timed out")??;
        Ok(Client { ws })
    }

    /// Connects to `ws://addr{path}` with extra request `headers`; a
    /// refused handshake returns its HTTP status.
    pub async fn connect_with_headers(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let mut request = format!("ws://{addr}{path}")
            .into_client_request()
            .expect("a valid URL");
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let connected = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("the handshake ends in time");
        match connected {
            Ok((ws, _)) => Ok(Client { ws }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(error) => panic!("handshake failed without an HTTP answer: {error}"),
        }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send text");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .await
            .expect("send binary");
    }

    /// The next data frame (pings skipped), failing the test on close or timeout.
    pub async fn recv(&mut self) -> Message {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame arrives in time");
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => panic!("expected a frame, got close {frame:?}"),
                Some(Ok(message)) => return message,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The next text frame.
    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Message::Text(text) => text.to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// The next text frame parsed as JSON.
    pub async fn recv_json(&mut self) -> serde_json::Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{text:?} is not JSON: {error}"))
    }

    /// Asserts that no data frame arrives within `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Waits for the server to close the connection, skipping data frames.
    pub async fn closed(&mut self) -> Closed {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the connection closes in time");
            match next {
                Some(Ok(Message::Close(frame))) => {
                    return Closed {
                        code: frame.as_ref().map(|frame| u16::from(frame.code)),
                        reason: frame
                            .map(|frame| frame.reason.to_string())
                            .unwrap_or_default(),
                    };
                }
                Some(Ok(_)) => continue,
                None | Some(Err(tungstenite::Error::ConnectionClosed)) => {
                    return Closed {
                        code: None,
                        reason: String::new(),
                    };
                }
                Some(Err(error)) => {
                    return Closed {
                        code: None,
                        reason: error.to_string(),
                    };
                }
            }
        }
    }

    /// Closes the connection normally.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
        // Let the close handshake finish so the server sees a clean close.
        let _ = tokio::time::timeout(WAIT, async { while self.ws.next().await.is_some() {} }).await;
    }

    /// The underlying stream, for tests that need raw access.
    pub fn stream(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }
}

/// A minimal HTTP/1.1 GET returning the status and the JSON body.
pub async fn http_get_json(
    addr: SocketAddr,
    path: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let response = http_request(addr, "GET", path, b"").await?;
    let json = serde_json::from_slice(&response.body)
        .with_context(|| format!("body {:?}", String::from_utf8_lossy(&response.body)))?;
    Ok((response.status, json))
}

/// An HTTP response as [`http_request`] reads it.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The head (status line and headers), lower-cased.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("body {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// A minimal HTTP/1.1 request with a body, on a fresh connection.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    http_request_with_headers(addr, method, path, &[], body).await
}

/// [`http_request`] with extra request headers.
pub async fn http_request_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .context("HTTP response timed out")??;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8(response[..split].to_vec())?.to_ascii_lowercase();
    let body = &response[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status code")?
        .parse()?;
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse { status, head, body })
}

/// Decodes an HTTP/1.1 chunked body.
pub(crate) fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .context("bad chunk")?;
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end])?.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        let rest = &body[line_end + 2..];
        out.extend_from_slice(rest.get(..size).context("short chunk")?);
        body = rest.get(size + 2..).context("short chunk")?;
    }
}

/// Waits until `client` is a member of `room` of the `misbehave` fixture.
///
/// A finished handshake is not yet a member: the room admits a client after
/// the upgrade, so a test in which others must see this client (a
/// broadcast, a `left:` notice, a member count, a room that exists) first
/// has the room answer it.
pub async fn admitted(client: &mut Client, room: &str) {
    client.send_text("whoami").await;
    assert_eq!(client.recv_text().await, format!("room:{room}"));
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
