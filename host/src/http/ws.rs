//! WebSocket upgrades: validates the target, reserves a connection slot and
//! hands the socket to [`crate::connection`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tracing::Instrument;

use super::App;
use super::api::error;
use crate::connection::{self, Target};
use crate::service::Service;

pub(crate) async fn single_service(
    State(app): State<Arc<App>>,
    Path(room): Path<String>,
    OriginalUri(uri): OriginalUri,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(service) = app.single_service().cloned() else {
        let names: Vec<_> = app.services.keys().cloned().collect();
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "several services are loaded ({}): connect to /ws/{{service}}/{{room}}",
                names.join(", ")
            ),
        );
    };
    attach(app, service, room, uri, upgrade)
}

pub(crate) async fn named_service(
    State(app): State<Arc<App>>,
    Path((service, room)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(service) = app.services.get(&service).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no service named {service:?}"),
        );
    };
    attach(app, service, room, uri, upgrade)
}

fn attach(
    app: Arc<App>,
    service: Arc<Service>,
    room: String,
    uri: axum::http::Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    if room.is_empty() || room.len() > app.limits.max_room_id_bytes {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "a room id must be 1 to {} bytes",
                app.limits.max_room_id_bytes
            ),
        );
    }
    let Ok(slot) = app.connection_slots.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("connection limit reached ({})", app.limits.max_connections),
        );
    };
    let client = app.next_client.fetch_add(1, Ordering::Relaxed);
    let target = Target {
        service,
        room,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
    };
    let span = tracing::info_span!("client", client, service = %target.service.name(), room = %target.room);
    upgrade
        .max_message_size(app.limits.max_frame_bytes)
        .max_frame_size(app.limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let connection = connection::run(
                socket,
                client,
                target,
                app.rooms.clone(),
                app.limits.clone(),
                app.shutdown.clone(),
            );
            let tracked = app.connections.track_future(async move {
                connection.await;
                drop(slot);
            });
            tracked.instrument(span)
        })
}
