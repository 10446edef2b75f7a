//! A service: one plugin under a name, with its configuration and its
//! access policy.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use crate::access::AccessPolicy;
use crate::limits::Limits;
use crate::wasm::{CompileCache, Plugin, PluginError, WasmEngine};

/// What to load: a service name, its plugin file and its configuration.
///
/// ```
/// use roomhost_host::ServiceSpec;
///
/// let spec = ServiceSpec::new("chat", "plugins/chat.wasm")
///     .with_config(serde_json::json!({ "typing_timeout_ms": 2000 }));
/// assert_eq!(spec.name, "chat");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The service name used in URLs (`/ws/{service}/{room}`).
    pub name: String,
    /// The plugin component (`.wasm`).
    pub plugin: PathBuf,
    /// The configuration handed to every room's `init` (as JSON text).
    pub config: serde_json::Value,
    /// Whether an HTTP request to a room that is not live creates it. Off by
    /// default: such a request gets 404, so anonymous requests cannot fill
    /// the room table. Services whose REST face creates documents opt in.
    pub http_creates_rooms: bool,
    /// Who may connect and call rooms over HTTP (token, rooms, origins).
    /// Open by default.
    pub access: AccessPolicy,
    /// Keeps a snapshot-based service durable without storage code: the
    /// host saves each room's `snapshot` at most this often after it
    /// changed, and when the room ends, and a room that
    /// starts again restores from it. Off (`None`) by default. Weaker than
    /// the `storage` interface: what changed since the last save is lost in
    /// a crash, and output is not held for it.
    pub durable_snapshots: Option<std::time::Duration>,
    /// Native code to run instead of `plugin` (the benchmark baseline; see
    /// [`ServiceSpec::native`]).
    #[cfg(feature = "native-baseline")]
    pub native: Option<crate::native::NativeCode>,
}

impl ServiceSpec {
    /// A service with no configuration (`null`).
    pub fn new(name: impl Into<String>, plugin: impl Into<PathBuf>) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            plugin: plugin.into(),
            config: serde_json::Value::Null,
            http_creates_rooms: false,
            access: AccessPolicy::default(),
            durable_snapshots: None,
            #[cfg(feature = "native-baseline")]
            native: None,
        }
    }

    /// A service whose rooms run `factory`'s native code through the same
    /// actor, room table and client queues as wasm rooms: the comparison
    /// baseline for benchmarks. Not sandboxed; never hot-reloads.
    #[cfg(feature = "native-baseline")]
    pub fn native(name: impl Into<String>, factory: crate::native::NativeFactory) -> ServiceSpec {
        let name = name.into();
        ServiceSpec {
            plugin: PathBuf::from(format!("native:{name}")),
            name,
            config: serde_json::Value::Null,
            http_creates_rooms: false,
            access: AccessPolicy::default(),
            durable_snapshots: None,
            native: Some(crate::native::NativeCode(factory)),
        }
    }

    /// Sets the configuration.
    pub fn with_config(mut self, config: serde_json::Value) -> ServiceSpec {
        self.config = config;
        self
    }

    /// Lets HTTP requests create rooms that are not live (see
    /// [`ServiceSpec::http_creates_rooms`]).
    pub fn with_http_creates_rooms(mut self, creates: bool) -> ServiceSpec {
        self.http_creates_rooms = creates;
        self
    }

    /// Saves rooms' snapshots at most every `every` (see
    /// [`ServiceSpec::durable_snapshots`]).
    pub fn with_durable_snapshots(mut self, every: std::time::Duration) -> ServiceSpec {
        self.durable_snapshots = Some(every);
        self
    }

    /// Sets the access policy (see [`AccessPolicy`]).
    pub fn with_access(mut self, access: AccessPolicy) -> ServiceSpec {
        self.access = access;
        self
    }
}

/// Whether `name` may name a service: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
pub fn is_valid_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A loaded service. Its plugin can be replaced while it runs (hot reload):
/// rooms created afterwards use the new one.
pub struct Service {
    name: Arc<str>,
    plugin: RwLock<Arc<Plugin>>,
    config: String,
    http_creates_rooms: bool,
    access: AccessPolicy,
    durable_snapshots: Option<std::time::Duration>,
    /// Held for the length of a hot reload.
    reload: tokio::sync::Mutex<()>,
}

impl Service {
    /// Loads `spec`'s plugin (compiling it on a blocking thread) and asks
    /// it what it is.
    pub async fn load(
        engine: &WasmEngine,
        spec: &ServiceSpec,
        cache: Option<&CompileCache>,
        limits: &Limits,
    ) -> Result<Service, PluginError> {
        #[cfg(feature = "native-baseline")]
        if let Some(native) = &spec.native {
            return Ok(Service {
                name: spec.name.as_str().into(),
                plugin: RwLock::new(Arc::new(Plugin::native(&spec.name, native.0.clone()))),
                config: spec.config.to_string(),
                http_creates_rooms: spec.http_creates_rooms,
                access: spec.access.clone(),
                durable_snapshots: spec.durable_snapshots,
                reload: tokio::sync::Mutex::new(()),
            });
        }
        Ok(Service {
            name: spec.name.as_str().into(),
            plugin: RwLock::new(Arc::new(
                Plugin::load_described(engine, &spec.plugin, cache, limits).await?,
            )),
            config: spec.config.to_string(),
            http_creates_rooms: spec.http_creates_rooms,
            access: spec.access.clone(),
            durable_snapshots: spec.durable_snapshots,
            reload: tokio::sync::Mutex::new(()),
        })
    }

    /// How often rooms' snapshots are saved, if the service is made durable
    /// by snapshots.
    pub fn durable_snapshots(&self) -> Option<std::time::Duration> {
        self.durable_snapshots
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The current plugin.
    pub fn plugin(&self) -> Arc<Plugin> {
        self.plugin
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `plugin` the one new rooms start with.
    pub(crate) fn replace_plugin(&self, plugin: Arc<Plugin>) {
        *self.plugin.write().unwrap_or_else(PoisonError::into_inner) = plugin;
    }

    /// Waits until no other reload of this service runs; the reload holds
    /// the guard until it is done.
    pub(crate) async fn reloading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reload.lock().await
    }

    /// The configuration as JSON text.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// Whether an HTTP request may create a room that is not live.
    pub fn http_creates_rooms(&self) -> bool {
        self.http_creates_rooms
    }

    /// Who may connect and call rooms over HTTP.
    pub fn access(&self) -> &AccessPolicy {
        &self.access
    }
}
