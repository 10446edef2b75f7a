//! The HTTP face of the host: WebSocket routes into rooms and the JSON API.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the lobby of the service that claimed the root (`serve-root`) |
//! | `GET /ws` | the lobby of the only service |
//! | `GET /ws/{room}` | join `room` of the only service; with several services, the lobby of service `{room}` |
//! | `GET /ws/{service}/{room}` | join `room` of `service` |
//! | `GET /status` | version, uptime, services, room and connection counts, worker threads |
//! | `GET /healthz` | 200 while the process is up |
//! | `GET /readyz` | 200 while plugins are loaded and connections accepted; 503 when shutting down |
//! | `GET /metrics` | Prometheus metrics (text format) |
//! | `GET /rooms` | every live room (of this node) |
//! | `GET /cluster` | a cluster node's view: every node, its lease, rooms and clients (404 elsewhere) |
//! | `GET /rooms/{service}/{room}` | one live room (404 if it is not live) |
//! | `GET /storage/rooms` | every room that stores data, live or not |
//! | `GET /storage/backup` | a consistent copy of the embedded store (redb file) |
//! | `POST /_cluster/send/{service}/{client}` | a frame from a room on another node of the cluster for a client here (nodes only, by the peer key) |
//! | `GET /` (dev mode, without an upgrade) | the dev dashboard |
//! | `GET /_dev/events`, `/_dev/history` (dev mode) | the dev event stream (SSE) and its recent build/reload events |
//! | `GET\|POST\|PUT\|PATCH\|DELETE /rooms/{service}/{room}/{path...}` | the room's own REST face (its `request` export) |
//! | `OPTIONS /rooms/{service}/{room}/{path...}` | CORS preflight, for the service's allowed origins |
//!
//! `/status`, `/rooms`, `/rooms/{service}/{room}`, `/cluster`, `/metrics`, `/storage/*`
//! and the dev endpoints are behind the admin gate ([`crate::admin`]); `/healthz` and
//! `/readyz` are always open. WebSocket upgrades and room requests pass
//! their service's access policy ([`crate::access`]) first.

mod accept;
mod api;
mod body;
mod dashboard;
mod forward;
mod health;
mod linger;
mod peer;
mod rest;
mod storage;
mod ws;

pub(crate) use accept::{Acceptor, PendingConnections};
pub(crate) use forward::Peers;
pub(crate) use linger::Lingering;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::Router;
use axum::middleware;
use axum::routing::get;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminGate};
use crate::dev::DevTap;
use crate::limits::Limits;
use crate::room::Rooms;
use crate::service::Service;
use crate::wasm::CompileCache;

/// State shared by every request handler.
pub(crate) struct App {
    pub(crate) services: BTreeMap<String, Arc<Service>>,
    pub(crate) rooms: Arc<Rooms>,
    pub(crate) limits: Arc<Limits>,
    pub(crate) started: Instant,
    pub(crate) next_client: AtomicU64,
    pub(crate) connection_slots: Arc<Semaphore>,
    /// HTTP requests to rooms in flight (`max_http_requests`).
    pub(crate) http_slots: Semaphore,
    /// Bytes of request bodies being read or handled (see `body`).
    pub(crate) http_body_budget: Semaphore,
    /// TCP connections that have not become WebSockets.
    pub(crate) pending: Arc<PendingConnections>,
    /// Sockets closing gracefully.
    pub(crate) lingering: Arc<Lingering>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) connections: TaskTracker,
    /// Where reloaded plugins' compiled code is cached.
    pub(crate) cache: Option<CompileCache>,
    /// Dev mode's event stream (and dashboard).
    pub(crate) dev_tap: Option<DevTap>,
    /// Who may read the admin endpoints.
    pub(crate) admin: AdminGate,
    /// Connections to the other nodes of a cluster (forwarded requests).
    pub(crate) peers: forward::Peers,
}

impl App {
    /// The service `/ws/{room}` addresses: the only one loaded.
    pub(crate) fn single_service(&self) -> Option<&Arc<Service>> {
        match self.services.len() {
            1 => self.services.values().next(),
            _ => None,
        }
    }

    /// The HTTP 400 for a URL room id longer than `max_room_id_bytes`.
    pub(crate) fn refuse_long_room_id(&self, room: &str) -> Option<axum::response::Response> {
        if room.len() <= self.limits.max_room_id_bytes {
            return None;
        }
        Some(api::error(
            axum::http::StatusCode::BAD_REQUEST,
            format!(
                "a room id must be 1 to {} bytes",
                self.limits.max_room_id_bytes
            ),
        ))
    }

    /// The HTTP 414 for a query longer than `max_query_bytes`.
    pub(crate) fn refuse_long_query(
        &self,
        uri: &axum::http::Uri,
    ) -> Option<axum::response::Response> {
        let length = uri.query().map_or(0, str::len);
        if length <= self.limits.max_query_bytes {
            return None;
        }
        Some(api::error(
            axum::http::StatusCode::URI_TOO_LONG,
            format!(
                "the query is {length} bytes; the limit is {} (max_query_bytes)",
                self.limits.max_query_bytes
            ),
        ))
    }

    /// Open WebSocket connections.
    pub(crate) fn open_connections(&self) -> usize {
        self.limits
            .max_connections
            .saturating_sub(self.connection_slots.available_permits())
    }
}

/// A JSON error answer (`{"error": message}`).
pub(crate) fn error_response(
    status: axum::http::StatusCode,
    message: String,
) -> axum::response::Response {
    api::error(status, message)
}

/// The byte budget of request bodies to rooms (see `body`).
pub(crate) fn body_budget(limits: &Limits) -> Semaphore {
    body::budget(limits.max_http_requests, limits.max_http_body_bytes)
}

/// The router for `app`.
pub(crate) fn router(app: Arc<App>) -> Router {
    let root = if app.dev_tap.is_some() {
        get(dashboard::root)
    } else {
        get(ws::root)
    };
    let admin = Router::new()
        .route("/status", get(api::status))
        .route("/metrics", get(health::metrics))
        .route("/rooms", get(api::rooms))
        .route("/cluster", get(api::cluster))
        .route("/rooms/{service}/{room}", get(api::room))
        .route("/storage/rooms", get(storage::rooms))
        .route("/storage/backup", get(storage::backup));
    let admin = if app.dev_tap.is_some() {
        admin
            .route("/_dev/events", get(dashboard::events))
            .route("/_dev/history", get(dashboard::history))
    } else {
        admin
    };
    let admin = admin.route_layer(middleware::from_fn_with_state(app.clone(), admin::gate));
    Router::new()
        .route("/", root)
        .route("/ws", get(ws::single_lobby))
        .route("/ws/{room}", get(ws::single_service))
        .route("/ws/{service}/{room}", get(ws::named_service))
        .route(
            "/_cluster/send/{service}/{client}",
            axum::routing::post(forward::deliver),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/rooms/{service}/{room}/{*path}",
            get(rest::room_request)
                .post(rest::room_request)
                .put(rest::room_request)
                .patch(rest::room_request)
                .delete(rest::room_request)
                .options(rest::preflight),
        )
        .merge(admin)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            health::count_status,
        ))
        .with_state(app)
}
