//! The JSON API: `/status` and `/rooms`.

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

/// A JSON error body: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
