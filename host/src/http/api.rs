//! The JSON API: `/status`, `/rooms` and, on a cluster node, `/cluster`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::App;
use crate::room::RoomListing;

/// `GET /status`.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    version: &'static str,
    uptime_secs: u64,
    services: Vec<ServiceStatus>,
    rooms: usize,
    connections: usize,
    /// Threads of the async runtime that runs rooms and connections.
    workers: usize,
}

#[derive(Debug, Serialize)]
struct ServiceStatus {
    name: String,
    plugin: String,
    plugin_version: String,
    rooms: usize,
    lobby_clients: usize,
}

pub(crate) async fn status(State(app): State<Arc<App>>) -> Json<Status> {
    let rooms = app.rooms.list();
    let services = app
        .services
        .values()
        .map(|service| ServiceStatus {
            name: service.name().to_owned(),
            plugin: service.plugin().path().display().to_string(),
            plugin_version: service.plugin().version().to_owned(),
            rooms: rooms
                .iter()
                .filter(|room| room.service == service.name())
                .count(),
            lobby_clients: app.rooms.lobby_clients(service.name()),
        })
        .collect();
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: app.started.elapsed().as_secs(),
        services,
        rooms: rooms.len(),
        connections: app.open_connections(),
        workers: tokio::runtime::Handle::current().metrics().num_workers(),
    })
}

pub(crate) async fn rooms(State(app): State<Arc<App>>) -> Json<Vec<RoomListing>> {
    Json(app.rooms.list())
}

pub(crate) async fn room(
    State(app): State<Arc<App>>,
    Path((service, room)): Path<(String, String)>,
) -> Response {
    match app.rooms.get(&service, &room) {
        Some(listing) => Json(listing).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no live room {room:?} in service {service:?}"),
        ),
    }
}

/// `GET /cluster`: the cluster as its database sees it (every node, its
/// lease and its rooms), and which node answered; 404 on a server that is
/// not a cluster node. `/status` and `/rooms` describe the node asked.
pub(crate) async fn cluster(State(app): State<Arc<App>>) -> Response {
    let Some(placement) = app.rooms.placement().cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "this server is not a cluster node".into(),
        );
    };
    let this = placement.node_id().to_owned();
    match tokio::task::spawn_blocking(move || placement.nodes()).await {
        Ok(Ok(nodes)) => Json(serde_json::json!({ "node": this, "nodes": nodes })).into_response(),
        Ok(Err(failed)) => error(StatusCode::SERVICE_UNAVAILABLE, failed.to_string()),
        Err(failed) => error(StatusCode::INTERNAL_SERVER_ERROR, failed.to_string()),
    }
}

/// A JSON error body: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
