//! The server: loads services, binds the listener, serves until told to stop,
//! then closes every client with 1001. Connections are accepted by
//! `http::Acceptor`, which bounds those that have not become WebSockets.

use crate::storage::{Backend, MemoryBackend};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{AdminAccess, AdminConfig, AdminGate};
use crate::auth::{AuthConfig, AuthError, TokenVerifier};
use crate::dev::{DevEvent, DevTap};
use crate::http::{self, App, Lingering};
use crate::limits::Limits;
use crate::placement::SharedPlacement;
use crate::room::{ReloadReport, Rooms};
use crate::service::{Service, ServiceSpec, is_valid_service_name};
use crate::wasm::{CompileCache, Plugin, PluginError, WasmEngine};

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The services to load (at least one).
    pub services: Vec<ServiceSpec>,
    /// Every bound the host enforces.
    pub limits: Limits,
    /// Where compiled plugins are cached; `None` compiles on every start.
    pub cache: Option<CompileCache>,
    /// How tokens are verified, for services that require one and for
    /// plugins (`auth.verify-token`); `None` turns verification off.
    pub auth: Option<AuthConfig>,
    /// Who may read the admin endpoints (`/status`, `/rooms`, dev).
    pub admin: AdminConfig,
    /// Dev mode: rooms report to this stream, and the server adds the dev
    /// dashboard at `/` (for non-WebSocket requests) and its event stream at
    /// `/_dev/events`. `None` in production.
    pub dev_tap: Option<DevTap>,
    /// Where rooms' stored data lives (the `storage` import): the CLI opens
    /// an [`EmbeddedBackend`](crate::storage::EmbeddedBackend) in the data
    /// directory; the default keeps it in memory, lost on exit.
    pub storage: Arc<dyn Backend>,
    /// Which node runs each room, when this server is one node of a
    /// cluster (the CLI's `--cluster`); `None` runs every room here.
    pub placement: Option<SharedPlacement>,
}

impl ServerConfig {
    /// A config with default limits and the default compile cache.
    pub fn new(listen: SocketAddr, services: Vec<ServiceSpec>) -> ServerConfig {
        ServerConfig {
            listen,
            services,
            limits: Limits::default(),
            cache: CompileCache::default_dir().map(CompileCache::new),
            auth: None,
            admin: AdminConfig::default(),
            dev_tap: None,
            storage: Arc::new(MemoryBackend::new()),
            placement: None,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// No service was given.
    #[error("no service to serve: give at least one plugin")]
    NoServices,
    /// A service name is not usable in URLs.
    #[error("invalid service name {0:?}: use 1 to 64 of a-z, 0-9, '-' and '_'")]
    InvalidServiceName(String),
    /// Two services share a name.
    #[error("two services are named {0:?}")]
    DuplicateService(String),
    /// The wasm engine could not be configured (e.g. limits too large for the
    /// address space).
    #[error("cannot create the wasm engine: {0:#}")]
    Engine(wasmtime::Error),
    /// A plugin failed to load.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A service's lobby failed to start (its `init` failed).
    #[error("the lobby of service {service:?} failed to start: {reason}")]
    Lobby {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// A limit is unusable (zero where a positive value is needed).
    #[error("invalid limit: {0}")]
    InvalidLimits(String),
    /// The token keys could not be loaded.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A service requires tokens but no key is configured.
    #[error(
        "service {0:?} requires a token, but no key is configured (give a JWT secret, a public key or a JWKS)"
    )]
    NoTokenKeys(String),
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// A bound, ready-to-run server.
///
/// ```no_run
/// use roomhost_host::{Server, ServerConfig, ServiceSpec};
///
/// # async fn run() -> Result<(), roomhost_host::ServerError> {
/// let config = ServerConfig::new(
///     "127.0.0.1:8080".parse().unwrap(),
///     vec![ServiceSpec::new("chat", "chat.wasm")],
/// );
/// let server = Server::bind(config).await?;
/// println!("listening on {}", server.local_addr());
/// server.run(roomhost_host::shutdown_signal()).await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

impl Server {
    /// Loads every service (compiling or reading the cache) and binds.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let ServerConfig {
            listen,
            services: specs,
            limits,
            cache,
            auth,
            admin,
            dev_tap,
            storage,
            placement,
        } = config;
        if specs.is_empty() {
            return Err(ServerError::NoServices);
        }
        limits.validate().map_err(ServerError::InvalidLimits)?;
        for (index, spec) in specs.iter().enumerate() {
            if !is_valid_service_name(&spec.name) {
                return Err(ServerError::InvalidServiceName(spec.name.clone()));
            }
            if specs[..index].iter().any(|other| other.name == spec.name) {
                return Err(ServerError::DuplicateService(spec.name.clone()));
            }
        }
        let verifier = match auth.as_ref().filter(|auth| auth.has_keys()) {
            Some(auth) => Some(TokenVerifier::load(auth).await?),
            None => None,
        };
        if verifier.is_none()
            && let Some(spec) = specs.iter().find(|spec| spec.access.require_token)
        {
            return Err(ServerError::NoTokenKeys(spec.name.clone()));
        }
        let engine = WasmEngine::new(&limits).map_err(ServerError::Engine)?;
        let mut services = BTreeMap::new();
        for spec in &specs {
            let service = Service::load(&engine, spec, cache.as_ref(), &limits).await?;
            tracing::info!(
                service = spec.name,
                plugin = %spec.plugin.display(),
                version = service.plugin().version(),
                cached = service.plugin().from_cache(),
                lobby = service.plugin().has_lobby(),
                "loaded plugin"
            );
            services.insert(spec.name.clone(), Arc::new(service));
        }

        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: listen,
                source,
            })?;
        let limits = Arc::new(limits);
        let admin = AdminGate::new(&admin, listener.local_addr().unwrap_or(listen));
        match admin.access() {
            AdminAccess::Off | AdminAccess::Opened => {
                tracing::warn!("admin endpoints (/status, /rooms): {}", admin.access());
            }
            access => tracing::info!("admin endpoints (/status, /rooms): {access}"),
        }
        for service in services.values() {
            let access = service.access();
            if access.require_token {
                let sources: Vec<_> = access
                    .token_sources
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                tracing::info!(
                    service = service.name(),
                    sources = sources.join(", "),
                    "connections and room requests require a token"
                );
            }
        }
        let shutdown = CancellationToken::new();
        if let Some(verifier) = &verifier {
            verifier.spawn_refresh(shutdown.clone());
        }
        tracing::info!(storage = storage.describe(), "rooms store their data here");
        let rooms = Rooms::new(
            engine,
            limits.clone(),
            verifier,
            dev_tap.clone(),
            storage,
            placement,
        );
        rooms.start_cluster_tasks(shutdown.clone());
        rooms.set_rooms_per_service(limits.rooms_per_service(services.len()));
        for service in services
            .values()
            .filter(|service| service.plugin().has_lobby())
        {
            rooms
                .start_lobby(service)
                .await
                .map_err(|error| ServerError::Lobby {
                    service: service.name().to_owned(),
                    reason: error.to_string(),
                })?;
        }
        rooms.wake_timed_rooms(services.values().cloned().collect());
        let first_client = rooms.first_client_id();
        let app = Arc::new(App {
            services,
            rooms,
            connection_slots: Arc::new(Semaphore::new(limits.max_connections)),
            http_slots: Semaphore::new(limits.max_http_requests),
            http_body_budget: http::body_budget(&limits),
            pending: Arc::default(),
            lingering: Arc::new(Lingering::new(limits.max_pending_connections)),
            limits,
            started: Instant::now(),
            next_client: AtomicU64::new(first_client),
            shutdown,
            connections: TaskTracker::new(),
            cache,
            dev_tap,
            admin,
            peers: http::Peers::new(),
        });
        Ok(Server { listener, app })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        // A bound TCP listener always has a local address.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Who may read the admin endpoints, as decided at startup.
    pub fn admin_access(&self) -> AdminAccess {
        self.app.admin.access()
    }

    /// A handle to the running server, for hot reload.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            app: self.app.clone(),
        }
    }

    /// The loaded services, by name.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.app.services.values().map(|service| service.as_ref())
    }

    /// Serves until `shutdown` resolves, then sends every client a 1001 close
    /// and waits (up to the shutdown grace) for them to go.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let app = self.app;
        let token = app.shutdown.clone();
        let grace = app.limits.shutdown_grace + std::time::Duration::from_secs(1);
        let http_connections = TaskTracker::new();
        let acceptor = http::Acceptor {
            app: app.clone(),
            router: http::router(app.clone()),
            tasks: http_connections.clone(),
        };
        tokio::select! {
            () = acceptor.run(self.listener, token.clone()) => {}
            () = shutdown => {}
        }
        tracing::info!("shutting down: closing every client with 1001");
        token.cancel();
        // HTTP connections finish the request in progress; a client that
        // never reads its response must not hold the process past the grace.
        http_connections.close();
        if tokio::time::timeout(grace, http_connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("HTTP connections did not finish within the shutdown grace");
        }
        app.connections.close();
        if tokio::time::timeout(grace, app.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within the shutdown grace");
        }
        Ok(())
    }
}

/// Why a hot reload did not happen. Rooms keep their old version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// No service has that name.
    #[error("no service named {0:?}")]
    NoSuchService(String),
    /// The new plugin failed to load.
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// A handle to a running [`Server`]: hot-reloads services while it serves.
///
/// ```no_run
/// use roomhost_host::{Server, ServerConfig, ServiceSpec};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ServerConfig::new(
///     "127.0.0.1:8080".parse()?,
///     vec![ServiceSpec::new("chat", "chat.wasm")],
/// );
/// let server = Server::bind(config).await?;
/// let handle = server.handle();
/// tokio::spawn(server.run(roomhost_host::shutdown_signal()));
/// // ... after rebuilding chat.wasm:
/// let report = handle.reload("chat", "chat.wasm".as_ref()).await?;
/// println!("{} rooms restored in {:?}", report.restored, report.elapsed);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServerHandle {
    app: Arc<App>,
}

impl ServerHandle {
    /// Loads the plugin at `path` and moves every live room of `service` onto
    /// it (see [`Rooms::reload`]); rooms created afterwards use it too.
    pub async fn reload(&self, service: &str, path: &Path) -> Result<ReloadReport, ReloadError> {
        let Some(target) = self.app.services.get(service).cloned() else {
            return Err(ReloadError::NoSuchService(service.to_owned()));
        };
        let engine = self.app.rooms.engine();
        let plugin =
            Plugin::load_described(engine, path, self.app.cache.as_ref(), &self.app.limits).await?;
        let lobby = plugin.has_lobby();
        // A version that lost its lobby ends the running one first (it is
        // not reloaded onto code that has none); one that gained a lobby
        // starts it after the rooms moved, as `serve` does.
        if !lobby {
            self.app.rooms.close_lobby(&target).await;
        }
        let report = self.app.rooms.reload(&target, plugin).await;
        if lobby && let Err(error) = self.app.rooms.start_lobby(&target).await {
            tracing::error!(service, %error, "the reloaded service's lobby failed to start");
        }
        if let Some(tap) = &self.app.dev_tap {
            tap.publish(DevEvent::reload(report.clone()));
        }
        Ok(report)
    }

    /// The room table: live rooms and their listings.
    pub fn rooms(&self) -> &Rooms {
        &self.app.rooms
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. Call it inside the tokio runtime
/// (it panics outside one): the handlers are installed when it is called,
/// not when the future is first polled: a signal sent once the caller has said it is up (the banner) is
/// never met by the default action, which would kill the process instead of
/// shutting it down.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async fn received(signal: Option<Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        async move {
            tokio::select! {
                () = received(interrupt) => {},
                () = received(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
