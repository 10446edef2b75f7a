//! Rooms' REST face: `GET|POST|PUT|PATCH|DELETE /rooms/{service}/{room}/{path...}` is
//! handed to the room's `request` export and its answer sent back. Bodies
//! are bounded by `max_http_body_bytes` and `http_body_timeout`, queries by
//! `max_query_bytes`, headers by `max_http_headers`, requests in flight by
//! `max_http_requests` and the wait by `http_timeout`. A request creates its
//! room only where the service allows it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::App;
use super::api::error;
use super::body::{self, BodyError};
use super::peer::Peer;
use crate::room::JoinError;
use crate::wasm::ServiceDirectory as _;
use crate::wasm::{GuestHttpRequest, GuestHttpResponse};

/// Headers the host sets itself; a plugin's values for them are ignored.
const RESERVED_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "keep-alive",
];

pub(crate) async fn room_request(
    State(app): State<Arc<App>>,
    Path((service, room, rest)): Path<(String, String, String)>,
    OriginalUri(uri): OriginalUri,
    Peer(address): Peer,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(service) = app.services.get(&service).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no service named {service:?}"),
        );
    };
    if let Some(refused) = app.refuse_long_room_id(&room) {
        return refused;
    }
    if let Some(refused) = app.refuse_long_query(&uri) {
        return refused;
    }
    let max_headers = app.limits.max_http_headers;
    if headers.len() > max_headers {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("more than {max_headers} headers (max_http_headers)"),
        );
    }
    let create = service.http_creates_rooms();
    if !create && !app.rooms.is_live(service.name(), &room) {
        return no_live_room(service.name(), &room);
    }
    let limit = app.limits.max_http_body_bytes;
    let body = match body::read(
        body,
        &headers,
        limit,
        app.limits.http_body_timeout,
        &app.http_body_budget,
    )
    .await
    {
        Ok(body) => body,
        Err(refused) => return error(body_error_status(&refused), refused.to_string()),
    };
    let request = GuestHttpRequest {
        method: method.as_str().to_owned(),
        path: format!("/{rest}"),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.bytes.to_vec(),
    };
    // The timeout covers the wait for a slot (first come, first served) and
    // for the room's answer.
    let timeout = app.limits.http_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let Ok(Ok(_slot)) = tokio::time::timeout_at(deadline, app.http_slots.acquire()).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many HTTP requests in flight (max_http_requests = {}) for {} ms (http_timeout)",
                app.limits.max_http_requests,
                timeout.as_millis()
            ),
        );
    };
    let answer = app
        .rooms
        .request(&service, &room, request, create, Some(address));
    match tokio::time::timeout_at(deadline, answer).await {
        Ok(Ok(response)) => into_response(response, limit, max_headers),
        Ok(Err(JoinError::RoomLimit(max))) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("room limit reached ({max} rooms)"),
        ),
        Ok(Err(refused @ JoinError::CreationRate(_))) => {
            error(StatusCode::TOO_MANY_REQUESTS, refused.to_string())
        }
        Ok(Err(JoinError::NoSuchRoom(_))) => no_live_room(service.name(), &room),
        Ok(Err(failure)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the room failed: {failure}"),
        ),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the room did not answer within {} ms (http_timeout)",
                timeout.as_millis()
            ),
        ),
    }
}

/// The 404 for a room that is not live, in a service whose HTTP requests do
/// not create rooms.
fn no_live_room(service: &str, room: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no live room {room:?} in service {service:?} (its HTTP requests do not create rooms)"
        ),
    )
}

fn body_error_status(error: &BodyError) -> StatusCode {
    match error {
        BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
        BodyError::Failed(_) => StatusCode::BAD_REQUEST,
    }
}

/// Checks a plugin's answer and turns it into an HTTP response.
fn into_response(response: GuestHttpResponse, limit: usize, max_headers: usize) -> Response {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the room answered an invalid status {}", response.status),
        );
    };
    if response.body.len() > limit {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the room's answer is {} bytes; the limit is {limit} (max_http_body_bytes)",
                response.body.len()
            ),
        );
    }
    if response.headers.len() > max_headers {
        tracing::warn!(
            count = response.headers.len(),
            max_headers,
            "room answered more headers than max_http_headers; the rest are dropped"
        );
    }
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers.into_iter().take(max_headers) {
        let parsed = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        );
        match parsed {
            (Ok(name), Ok(value)) if !RESERVED_HEADERS.contains(&name.as_str()) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(header = %name, "room answered an unusable header; dropped"),
        }
    }
    (status, headers, response.body).into_response()
}
