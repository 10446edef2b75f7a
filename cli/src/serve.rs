//! `roomhost serve`: turn flags and `roomhost.toml` into a server and run it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use roomhost_host::access::TokenSource;
use roomhost_host::auth::{DEFAULT_JWKS_REFRESH, DEFAULT_LEEWAY};
use roomhost_host::{
    AdminConfig, AuthConfig, CompileCache, JwksSource, Limits, Server, ServerConfig, ServiceSpec,
};

use crate::build::build_plugin;
use crate::config_file::{AuthFile, ConfigFile};

/// Arguments of `roomhost serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// A plugin to serve: PATH or NAME=PATH, where PATH is a .wasm component or
    /// a plugin crate directory (built first). Repeat for several services; the
    /// name defaults to the file or crate name.
    #[arg(long = "plugin", short = 'p', value_name = "[NAME=]PATH")]
    plugins: Vec<String>,
    /// A service's configuration as JSON: NAME=JSON, or just JSON when there is
    /// one service. Passed to every room's `init`.
    #[arg(long = "config", value_name = "[NAME=]JSON")]
    configs: Vec<String>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, short = 'l', value_name = "ADDR", env = "ROOMHOST_LISTEN")]
    listen: Option<SocketAddr>,
    /// A roomhost.toml to read (default: ./roomhost.toml if it exists).
    #[arg(long = "file", short = 'f', value_name = "PATH")]
    file: Option<PathBuf>,
    /// Where compiled plugins are cached (default: ~/.cache/roomhost).
    #[arg(long, value_name = "DIR", env = "ROOMHOST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile plugins on every start instead of using the cache.
    #[arg(long)]
    no_cache: bool,
    /// Threads that run rooms and connections (default: the CPU cores this
    /// process may use). On a machine shared with other busy processes, fewer
    /// threads than cores cost less CPU per frame; with one, a room's long
    /// calls take turns with other rooms on that one thread (BENCHMARKS.md,
    /// "Worker threads").
    #[arg(long, value_name = "N", env = "ROOMHOST_WORKERS")]
    workers: Option<usize>,
    /// Let HTTP requests to rooms of service NAME create rooms that are not
    /// live (otherwise 404). Repeat for several services.
    #[arg(long = "http-creates-rooms", value_name = "NAME")]
    http_creates_rooms: Vec<String>,
    #[command(flatten)]
    pub(crate) log: crate::logging::LogArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    data: crate::storage::DataArgs,
    #[command(flatten)]
    cluster: crate::cluster::ClusterArgs,
}

/// Token verification, for services that require a token and for plugins
/// (`auth.verify-token`).
#[derive(Args)]
#[command(next_help_heading = "Token verification")]
pub(crate) struct AuthArgs {
    /// HS256 secret for verifying client tokens. Prefer the environment
    /// variable: flags show up in `ps`. Never logged.
    #[arg(
        long,
        value_name = "SECRET",
        env = "ROOMHOST_JWT_SECRET",
        hide_env_values = true
    )]
    jwt_secret: Option<String>,
    /// A PEM public key (RSA, EC P-256/P-384 or Ed25519) that signs tokens;
    /// repeat for several. [toml: auth.public_keys]
    #[arg(long = "jwt-public-key", value_name = "PEM")]
    jwt_public_keys: Vec<PathBuf>,
    /// A JSON Web Key Set, as a file or an http(s) URL; keys are chosen by
    /// `kid`. [toml: auth.jwks]
    #[arg(long, value_name = "FILE|URL", env = "ROOMHOST_JWKS")]
    jwks: Option<String>,
    /// How often the JWKS is read again; a token with an unknown `kid` also
    /// triggers a read, at most every 10 s [default: 300]. [toml: auth.jwks_refresh_secs]
    #[arg(long, value_name = "SECS")]
    jwks_refresh_secs: Option<u64>,
    /// Required `aud` claim (default: not checked). [toml: auth.audience]
    #[arg(long, value_name = "AUD", env = "ROOMHOST_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Required `iss` claim (default: not checked). [toml: auth.issuer]
    #[arg(long, value_name = "ISS", env = "ROOMHOST_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf` [default: 60]. [toml: auth.leeway_secs]
    #[arg(long, value_name = "SECS")]
    jwt_leeway_secs: Option<u64>,
}

impl AuthArgs {
    /// The verification config from the flags over `file`'s `[auth]`;
    /// `None` when no key is given.
    pub(crate) fn config(&self, file: Option<&AuthFile>) -> anyhow::Result<Option<AuthConfig>> {
        let file = file.cloned().unwrap_or_default();
        if self.jwt_secret.as_deref() == Some("") {
            bail!("--jwt-secret is empty: give a secret or leave it unset to turn auth off");
        }
        let mut public_keys = file.public_keys;
        public_keys.extend(self.jwt_public_keys.iter().cloned());
        let jwks =
            self.jwks
                .clone()
                .or(file.jwks)
                .map(|source| match source.parse::<JwksSource>() {
                    Ok(source) => source,
                    Err(never) => match never {},
                });
        let config = AuthConfig {
            secret: self.jwt_secret.clone(),
            public_keys,
            jwks,
            jwks_refresh: self
                .jwks_refresh_secs
                .or(file.jwks_refresh_secs)
                .map_or(DEFAULT_JWKS_REFRESH, Duration::from_secs),
            audience: self.jwt_audience.clone().or(file.audience),
            issuer: self.jwt_issuer.clone().or(file.issuer),
            leeway: self
                .jwt_leeway_secs
                .or(file.leeway_secs)
                .map_or(DEFAULT_LEEWAY, Duration::from_secs),
        };
        Ok(config.has_keys().then_some(config))
    }
}

/// Who may read `/status`, `/rooms` and the dev endpoints.
#[derive(Args)]
#[command(next_help_heading = "Admin endpoints")]
pub(crate) struct AdminArgs {
    /// Token the admin endpoints require (`Authorization: Bearer TOKEN`).
    /// Without one they are open on a loopback address and off elsewhere.
    /// Prefer the environment variable. Never logged.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ROOMHOST_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Serve the admin endpoints without a token on a non-loopback address
    /// (anyone who reaches the port sees every room). [toml: open_admin]
    #[arg(long)]
    open_admin: bool,
}

impl AdminArgs {
    pub(crate) fn config(&self, open_in_file: bool) -> anyhow::Result<AdminConfig> {
        if self.admin_token.as_deref() == Some("") {
            bail!("--admin-token is empty: give a token or leave it unset");
        }
        Ok(AdminConfig {
            token: self.admin_token.clone(),
            open: self.open_admin || open_in_file,
        })
    }
}

/// Per-service access policy flags (each overrides the service's
/// `[services.NAME.access]` table).
#[derive(Args)]
#[command(next_help_heading = "Access control")]
// These comments are `--help` text, where `query[:PARAM]` and a bare URL are
// meant literally.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]
pub(crate) struct AccessArgs {
    /// Require a valid token to connect to service NAME and call its rooms
    /// over HTTP (401/403 otherwise). Repeat for several services.
    /// [toml: services.NAME.access.require_token]
    #[arg(long = "require-token", value_name = "NAME")]
    require_token: Vec<String>,
    /// Where service NAME looks for tokens, in order: header
    /// (Authorization: Bearer), protocol (a `bearer.TOKEN` WebSocket
    /// protocol entry), query[:PARAM] (default PARAM access_token)
    /// [default: header,protocol,query]. [toml: services.NAME.access.token_sources]
    #[arg(long = "token-sources", value_name = "NAME=SRC,...")]
    token_sources: Vec<String>,
    /// The claim listing the rooms a token of service NAME opens (an array
    /// of patterns, or an object of pattern to "read"/"write") [default: rooms].
    /// [toml: services.NAME.access.rooms_claim]
    #[arg(long = "rooms-claim", value_name = "NAME=CLAIM")]
    rooms_claim: Vec<String>,
    /// A browser origin allowed to open WebSockets to service NAME and call
    /// its rooms (CORS), e.g. NAME=https://app.example; repeat for several
    /// [default: any origin, no CORS]. [toml: services.NAME.access.allowed_origins]
    #[arg(long = "allowed-origin", value_name = "NAME=ORIGIN")]
    allowed_origins: Vec<String>,
}

impl AccessArgs {
    pub(crate) fn apply(&self, services: &mut [ServiceSpec]) -> anyhow::Result<()> {
        for name in &self.require_token {
            service_named(services, name, "--require-token")?
                .access
                .require_token = true;
        }
        for flag in &self.token_sources {
            let (name, sources) = name_value(flag, "--token-sources")?;
            let sources = sources
                .split(',')
                .map(|source| source.trim().parse::<TokenSource>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| anyhow::anyhow!("--token-sources {flag:?}: {error}"))?;
            if sources.is_empty() {
                bail!("--token-sources {flag:?} names no source");
            }
            service_named(services, name, "--token-sources")?
                .access
                .token_sources = sources;
        }
        for flag in &self.rooms_claim {
            let (name, claim) = name_value(flag, "--rooms-claim")?;
            service_named(services, name, "--rooms-claim")?
                .access
                .rooms_claim = claim.to_owned();
        }
        let mut cleared = Vec::new();
        for flag in &self.allowed_origins {
            let (name, origin) = name_value(flag, "--allowed-origin")?;
            let service = service_named(services, name, "--allowed-origin")?;
            // The flags replace the file's list.
            if !cleared.contains(&name) {
                service.access.allowed_origins.clear();
                cleared.push(name);
            }
            service.access.allowed_origins.push(origin.to_owned());
        }
        Ok(())
    }
}

/// `NAME=VALUE` of a per-service flag.
fn name_value<'a>(flag: &'a str, what: &str) -> anyhow::Result<(&'a str, &'a str)> {
    flag.split_once('=')
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .with_context(|| format!("{what} {flag:?}: expected NAME=VALUE"))
}

/// The service called `name`, for flag `what`.
fn service_named<'a>(
    services: &'a mut [ServiceSpec],
    name: &str,
    what: &str,
) -> anyhow::Result<&'a mut ServiceSpec> {
    services
        .iter_mut()
        .find(|service| service.name == name)
        .with_context(|| format!("{what} names {name:?}, which is not a service"))
}

/// Overrides for [`Limits`]; each defaults to the file's value, then the
/// built-in default.
#[derive(Args)]
#[command(next_help_heading = "Limits")]
pub(crate) struct LimitArgs {
    /// Live rooms per process [default: 10000].
    #[arg(long, value_name = "N")]
    max_rooms: Option<usize>,
    /// Live rooms of one service [default: an equal share of --max-rooms].
    #[arg(long, value_name = "N")]
    max_rooms_per_service: Option<usize>,
    /// Rooms one client address may create per minute; beyond it 1013 / HTTP 429 [default: 600].
    #[arg(long, value_name = "N")]
    room_creations_per_minute: Option<usize>,
    /// Open connections per process [default: 20000].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// TCP connections not yet upgraded to WebSocket; the oldest is closed for a new one [default: 1024].
    #[arg(long, value_name = "N")]
    max_pending_connections: Option<usize>,
    /// Time to send an HTTP request's head, and a keep-alive connection's idle time [default: 5000].
    #[arg(long, value_name = "MS")]
    http_header_timeout_ms: Option<u64>,
    /// Events queued per room [default: 1024].
    #[arg(long, value_name = "N")]
    room_inbox: Option<usize>,
    /// Frames queued per client before it is closed as a slow consumer (1008) [default: 256].
    #[arg(long, value_name = "N")]
    client_queue: Option<usize>,
    /// Bytes queued per client before it is closed as a slow consumer (1008) [default: 33554432].
    #[arg(long, value_name = "BYTES")]
    client_queue_bytes: Option<usize>,
    /// Largest message a client may send; a larger one closes it with 1009 [default: 65536].
    #[arg(long, value_name = "BYTES")]
    max_frame_bytes: Option<usize>,
    /// Largest frame a plugin may send; send/broadcast of a larger one fail in the plugin [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    max_plugin_frame_bytes: Option<usize>,
    /// Output buffered for a client that does not read, beyond one frame; more closes it (1008) [default: 65536].
    #[arg(long, value_name = "BYTES")]
    max_write_buffer_bytes: Option<usize>,
    /// Pings a client may send per second; more close it (1008) [default: 16].
    #[arg(long, value_name = "N")]
    max_pings_per_sec: Option<usize>,
    /// Longest query string of a WebSocket URL or room request; longer gets 414 [default: 4096].
    #[arg(long, value_name = "BYTES")]
    max_query_bytes: Option<usize>,
    /// CPU time a plugin callback may use before its room is disposed (1011) [default: 100].
    #[arg(long, value_name = "MS")]
    call_deadline_ms: Option<u64>,
    /// Lines per second a room may log (stdout, stderr, host.log); more are dropped and counted [default: 100].
    #[arg(long, value_name = "N")]
    plugin_log_lines: Option<u32>,
    /// Linear memory per room [default: 64].
    #[arg(long, value_name = "MIB")]
    room_memory_mib: Option<usize>,
    /// Pending timers per room [default: 1024].
    #[arg(long, value_name = "N")]
    max_timers_per_room: Option<usize>,
    /// Size of a room's set-info JSON [default: 4096].
    #[arg(long, value_name = "BYTES")]
    max_info_bytes: Option<usize>,
    /// State a plugin may attach to one client (set-client-state) [default: 4096].
    #[arg(long, value_name = "BYTES")]
    max_client_state_bytes: Option<usize>,
    /// Longest reconnection grace period a plugin may ask for [default: 300000].
    #[arg(long, value_name = "MS")]
    max_reconnect_grace_ms: Option<u64>,
    /// Longest key a room may store [default: 2048].
    #[arg(long, value_name = "BYTES")]
    max_storage_key_bytes: Option<usize>,
    /// Largest value a room may store [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_storage_value_bytes: Option<usize>,
    /// Most a room may store, keys plus values [default: 33554432].
    #[arg(long, value_name = "BYTES")]
    max_room_storage_bytes: Option<usize>,
    /// Output one event of a storage-using room may send before its commit is durable [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    max_held_output_bytes: Option<usize>,
    /// Clients of other cluster nodes this node's rooms may be sending to at once [default: 4096].
    #[arg(long, value_name = "N")]
    max_remote_clients: Option<usize>,
    /// Frames kept for a client waiting to reconnect [default: 256].
    #[arg(long, value_name = "N")]
    max_replay_frames: Option<usize>,
    /// Bytes of frames kept for a client waiting to reconnect [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_replay_bytes: Option<usize>,
    /// Largest HTTP request or response body of a room's REST face (413 beyond) [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_http_body_bytes: Option<usize>,
    /// HTTP requests to rooms handled at once; more get 503 [default: 256].
    #[arg(long, value_name = "N")]
    max_http_requests: Option<usize>,
    /// Headers of an HTTP request to a room; more get 431 [default: 100].
    #[arg(long, value_name = "N")]
    max_http_headers: Option<usize>,
    /// How long an HTTP request waits for its room before 503 [default: 30000].
    #[arg(long, value_name = "MS")]
    http_timeout_ms: Option<u64>,
    /// How long a request to a room may take to send its body before 408 [default: 10000].
    #[arg(long, value_name = "MS")]
    http_body_timeout_ms: Option<u64>,
    /// Interval between pings to each client [default: 20000].
    #[arg(long, value_name = "MS")]
    ping_interval_ms: Option<u64>,
    /// Close clients silent for this long with 1001 [default: 60000].
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// How long shutdown waits for clients' 1001 acknowledgements, and a closed socket drains the client's input [default: 2000].
    #[arg(long, value_name = "MS")]
    shutdown_grace_ms: Option<u64>,
}

impl LimitArgs {
    pub(crate) fn apply(&self, limits: &mut Limits) {
        let ms = Duration::from_millis;
        if let Some(value) = self.max_rooms {
            limits.max_rooms = value;
        }
        if let Some(value) = self.max_rooms_per_service {
            limits.max_rooms_per_service = Some(value);
        }
        if let Some(value) = self.room_creations_per_minute {
            limits.room_creations_per_minute = value;
        }
        if let Some(value) = self.max_connections {
            limits.max_connections = value;
        }
        if let Some(value) = self.max_pending_connections {
            limits.max_pending_connections = value;
        }
        if let Some(value) = self.http_header_timeout_ms {
            limits.http_header_timeout = ms(value);
        }
        if let Some(value) = self.room_inbox {
            limits.room_inbox = value;
        }
        if let Some(value) = self.client_queue {
            limits.client_queue = value;
        }
        if let Some(value) = self.client_queue_bytes {
            limits.client_queue_bytes = value;
        }
        if let Some(value) = self.max_frame_bytes {
            limits.max_frame_bytes = value;
        }
        if let Some(value) = self.max_write_buffer_bytes {
            limits.max_write_buffer_bytes = value;
        }
        if let Some(value) = self.max_pings_per_sec {
            limits.max_pings_per_sec = value;
        }
        if let Some(value) = self.max_query_bytes {
            limits.max_query_bytes = value;
        }
        if let Some(value) = self.max_plugin_frame_bytes {
            limits.max_plugin_frame_bytes = value;
        }
        if let Some(value) = self.call_deadline_ms {
            limits.call_deadline = ms(value);
        }
        if let Some(value) = self.plugin_log_lines {
            limits.plugin_log_lines = value;
        }
        if let Some(value) = self.room_memory_mib {
            limits.room_memory_bytes = value.saturating_mul(1024 * 1024);
        }
        if let Some(value) = self.max_timers_per_room {
            limits.max_timers_per_room = value;
        }
        if let Some(value) = self.max_info_bytes {
            limits.max_info_bytes = value;
        }
        if let Some(value) = self.max_client_state_bytes {
            limits.max_client_state_bytes = value;
        }
        if let Some(value) = self.max_reconnect_grace_ms {
            limits.max_reconnect_grace = ms(value);
        }
        if let Some(value) = self.max_storage_key_bytes {
            limits.max_storage_key_bytes = value;
        }
        if let Some(value) = self.max_storage_value_bytes {
            limits.max_storage_value_bytes = value;
        }
        if let Some(value) = self.max_room_storage_bytes {
            limits.max_room_storage_bytes = value;
        }
        if let Some(value) = self.max_held_output_bytes {
            limits.max_held_output_bytes = value;
        }
        if let Some(value) = self.max_remote_clients {
            limits.max_remote_clients = value;
        }
        if let Some(value) = self.max_replay_frames {
            limits.max_replay_frames = value;
        }
        if let Some(value) = self.max_replay_bytes {
            limits.max_replay_bytes = value;
        }
        if let Some(value) = self.max_http_body_bytes {
            limits.max_http_body_bytes = value;
        }
        if let Some(value) = self.max_http_requests {
            limits.max_http_requests = value;
        }
        if let Some(value) = self.max_http_headers {
            limits.max_http_headers = value;
        }
        if let Some(value) = self.http_timeout_ms {
            limits.http_timeout = ms(value);
        }
        if let Some(value) = self.http_body_timeout_ms {
            limits.http_body_timeout = ms(value);
        }
        if let Some(value) = self.ping_interval_ms {
            limits.ping_interval = ms(value);
        }
        if let Some(value) = self.idle_timeout_ms {
            limits.idle_timeout = ms(value);
        }
        if let Some(value) = self.shutdown_grace_ms {
            limits.shutdown_grace = ms(value);
        }
    }
}

/// Where `serve` and `dev` listen unless told otherwise.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_FILE: &str = "roomhost.toml";

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::logging::init(&args.log);
    let Settings {
        mut config,
        cluster,
        workers,
    } = settings(&args)?;
    // Joined before the runtime starts: the PostgreSQL client blocks.
    let node = cluster.join(&config.listen.to_string())?;
    if let Some(node) = &node {
        config.storage = node.backend.clone();
        config.placement = Some(node.placement.clone());
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    let runtime = builder.build().context("cannot start the async runtime")?;
    let served = runtime.block_on(async {
        let server = Server::bind(config).await?;
        if let Some(node) = &node {
            let bound = server.local_addr();
            tokio::task::block_in_place(|| node.bound(bound))?;
        }
        // Listening for signals before the banner says the server is up.
        let shutdown = roomhost_host::shutdown_signal();
        print_banner(&server);
        server.run(shutdown).await?;
        anyhow::Ok(())
    });
    drop(runtime);
    if let Some(node) = node {
        node.leave();
    }
    served?;
    println!("roomhost stopped");
    Ok(())
}

/// What a bound server tells its user: the address (first line, which
/// scripts wait for: "listening on http://ADDR"), each service's URL and
/// plugin, and the JSON endpoints.
pub(crate) fn print_banner(server: &Server) {
    let addr = server.local_addr();
    println!(
        "roomhost {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    let single = server.services().count() == 1;
    for service in server.services() {
        let url = if single {
            format!("ws://{addr}/ws/{{room}}")
        } else {
            format!("ws://{addr}/ws/{}/{{room}}", service.name())
        };
        let origin = if service.plugin().from_cache() {
            "from cache"
        } else {
            "compiled"
        };
        println!(
            "  service {:<12} {url}  (plugin {} {}, {origin})",
            service.name(),
            service.plugin().path().display(),
            service.plugin().version(),
        );
    }
    println!("  status: http://{addr}/status  rooms: http://{addr}/rooms");
    println!("  admin endpoints: {}", server.admin_access());
    for service in server.services() {
        if service.access().require_token {
            println!(
                "  service {:<12} requires a token (401/403 before the upgrade)",
                service.name()
            );
        }
    }
}

/// What `serve` starts with: the flags merged over `roomhost.toml` (if any).
struct Settings {
    config: ServerConfig,
    /// The cluster settings (flags over the file's `[cluster]`).
    cluster: crate::cluster::ClusterArgs,
    /// The async runtime's worker threads; `None`: one per CPU core this
    /// process may use.
    workers: Option<usize>,
}

/// The most worker threads `--workers` or `workers` may ask for: more than
/// any machine's cores, small enough that a typo cannot start a million
/// threads.
const MAX_WORKERS: usize = 1024;

/// Merges `roomhost.toml` (if any) with the flags; flags win.
fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    let (file, file_dir) = match &args.file {
        Some(path) => (ConfigFile::load(path)?, path.parent().map(Path::to_owned)),
        None if args.plugins.is_empty() && Path::new(DEFAULT_FILE).is_file() => {
            (ConfigFile::load(Path::new(DEFAULT_FILE))?, None)
        }
        None => (ConfigFile::default(), None),
    };
    // Checked before any plugin is built, which can take a while.
    let (workers, source) = match args.workers {
        Some(workers) => (Some(workers), "--workers (or ROOMHOST_WORKERS)"),
        None => (file.workers, "workers in the configuration file"),
    };
    if let Some(workers) = workers
        && !(1..=MAX_WORKERS).contains(&workers)
    {
        bail!("{source} must be from 1 to {MAX_WORKERS}, not {workers}");
    }
    // Next to the roomhost.toml read, else in the working directory.
    let default_data_dir = file.data_dir.clone().unwrap_or_else(|| {
        file_dir
            .unwrap_or_default()
            .join(crate::storage::DEFAULT_DATA_DIR)
    });

    let mut services = Vec::new();
    for (name, entry) in &file.services {
        let plugin = resolve_plugin(&entry.plugin)?;
        let mut service = ServiceSpec::new(name.clone(), plugin)
            .with_config(entry.config_json()?)
            .with_http_creates_rooms(entry.http_creates_rooms)
            .with_access(entry.access.clone().unwrap_or_default());
        if let Some(every) = entry.durable_snapshots_ms {
            if every == 0 {
                bail!("services.{name}.durable_snapshots_ms must be greater than 0");
            }
            service = service.with_durable_snapshots(Duration::from_millis(every));
        }
        services.push(service);
    }
    for plugin in &args.plugins {
        let (name, path) = match plugin.split_once('=') {
            Some((name, path)) => (name.to_owned(), PathBuf::from(path)),
            None => (
                default_service_name(Path::new(plugin))?,
                PathBuf::from(plugin),
            ),
        };
        services.retain(|existing| existing.name != name);
        services.push(ServiceSpec::new(name, resolve_plugin(&path)?));
    }
    if services.is_empty() {
        bail!(
            "nothing to serve: pass --plugin PATH or write a {DEFAULT_FILE} (see `roomhost serve --help`)"
        );
    }
    for config in &args.configs {
        apply_config_flag(&mut services, config)?;
    }
    for name in &args.http_creates_rooms {
        let service = services
            .iter_mut()
            .find(|service| &service.name == name)
            .with_context(|| {
                format!("--http-creates-rooms names {name:?}, which is not a service")
            })?;
        service.http_creates_rooms = true;
    }
    args.access.apply(&mut services)?;

    let mut limits = file.limits.unwrap_or_default();
    args.limits.apply(&mut limits);
    let cache = if args.no_cache {
        None
    } else {
        args.cache_dir
            .clone()
            .or(file.cache_dir)
            .or_else(CompileCache::default_dir)
            .map(CompileCache::new)
    };
    let listen = match args.listen.or(file.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let cluster = args.cluster.or_file(file.cluster.as_ref());
    if cluster.enabled() && (args.data.is_set() || file.data_dir.is_some()) {
        bail!(
            "a cluster node stores rooms in the cluster's database: drop --data-dir/--no-storage or data_dir"
        );
    }
    let config = ServerConfig {
        listen,
        services,
        limits,
        cache,
        auth: args.auth.config(file.auth.as_ref())?,
        admin: args.admin.config(file.open_admin)?,
        dev_tap: None,
        // A cluster node's storage is set once it has joined.
        storage: if cluster.enabled() {
            std::sync::Arc::new(roomhost_host::storage::MemoryBackend::new())
        } else {
            args.data.open(&default_data_dir)?
        },
        // Set with the storage, once the node has joined.
        placement: None,
    };
    Ok(Settings {
        config,
        cluster,
        workers,
    })
}

/// A `.wasm` file is used as is; a crate directory is built first.
fn resolve_plugin(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_dir() {
        return build_plugin(path, None);
    }
    if !path.is_file() {
        bail!("plugin {} does not exist", path.display());
    }
    Ok(path.to_owned())
}

/// `plugins/chat` or `chat.wasm` → `chat`.
pub(crate) fn default_service_name(path: &Path) -> anyhow::Result<String> {
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .with_context(|| {
            format!(
                "cannot derive a service name from {}: use NAME=PATH",
                path.display()
            )
        })?;
    Ok(stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect())
}

/// `--config NAME=JSON`, or `--config JSON` with a single service.
pub(crate) fn apply_config_flag(services: &mut [ServiceSpec], flag: &str) -> anyhow::Result<()> {
    let parsed_whole = serde_json::from_str::<serde_json::Value>(flag);
    let (target, json) = match (parsed_whole, flag.split_once('=')) {
        (Ok(value), _) => (None, value),
        (Err(_), Some((name, json))) => {
            let value = serde_json::from_str(json)
                .with_context(|| format!("--config for {name:?} is not valid JSON"))?;
            (Some(name), value)
        }
        (Err(error), None) => bail!("--config {flag:?} is neither JSON nor NAME=JSON: {error}"),
    };
    let service = match target {
        Some(name) => services
            .iter_mut()
            .find(|service| service.name == name)
            .with_context(|| format!("--config names {name:?}, which is not a service"))?,
        None => match services {
            [only] => only,
            _ => bail!("several services are loaded: write --config NAME=JSON"),
        },
    };
    service.config = json;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// The issue 13 limits as both the flags and `roomhost.toml` tests set
    /// them.
    pub(crate) fn hostile_network_limits() -> Limits {
        Limits {
            max_rooms_per_service: Some(100),
            room_creations_per_minute: 30,
            max_pending_connections: 500,
            http_header_timeout: Duration::from_secs(2),
            http_body_timeout: Duration::from_secs(3),
            max_write_buffer_bytes: 8192,
            max_pings_per_sec: 4,
            max_query_bytes: 1024,
            ..Limits::default()
        }
    }

    #[test]
    fn hostile_network_flags_set_their_limits() {
        let cli = Cli::try_parse_from([
            "serve",
            "--max-rooms-per-service=100",
            "--room-creations-per-minute=30",
            "--max-pending-connections=500",
            "--http-header-timeout-ms=2000",
            "--http-body-timeout-ms=3000",
            "--max-write-buffer-bytes=8192",
            "--max-pings-per-sec=4",
            "--max-query-bytes=1024",
            "--http-creates-rooms=docs",
        ])
        .unwrap();
        let mut limits = Limits::default();
        cli.serve.limits.apply(&mut limits);
        assert_eq!(limits, hostile_network_limits());
        assert_eq!(cli.serve.http_creates_rooms, ["docs"]);
    }

    #[test]
    fn access_flags_set_each_services_policy() {
        let cli = Cli::try_parse_from([
            "serve",
            "--require-token=docs",
            "--token-sources=docs=header,query:t",
            "--rooms-claim=docs=perms",
            "--allowed-origin=docs=https://a.example",
            "--allowed-origin=docs=https://b.example",
            "--jwt-audience=my-app",
            "--jwks=keys.json",
        ])
        .unwrap();
        let mut services = vec![
            ServiceSpec::new("docs", "x.wasm"),
            ServiceSpec::new("chat", "y.wasm"),
        ];
        cli.serve.access.apply(&mut services).unwrap();
        let access = &services[0].access;
        assert!(access.require_token);
        assert_eq!(
            access.token_sources,
            [TokenSource::Header, TokenSource::Query("t".into())]
        );
        assert_eq!(access.rooms_claim, "perms");
        assert_eq!(
            access.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert!(!services[1].access.require_token);
        let auth = cli.serve.auth.config(None).unwrap().unwrap();
        assert_eq!(auth.audience.as_deref(), Some("my-app"));
        assert_eq!(auth.issuer, None, "no issuer unless given");
        assert_eq!(auth.jwks, Some(JwksSource::File("keys.json".into())));
        let bad = Cli::try_parse_from(["serve", "--require-token=nope"]).unwrap();
        assert!(bad.serve.access.apply(&mut services).is_err());
    }
}
