//! Rooms' REST face: `GET|POST|DELETE /rooms/{service}/{room}/{path...}` is
//! handed to the room's `request` export and its answer sent back. Bodies
//! are bounded by `max_http_body_bytes`, headers by `max_http_headers`,
//! requests in flight by `max_http_requests` and the wait by `http_timeout`.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::App;
use super::api::error;
use crate::room::JoinError;
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
    let Ok(_slot) = app.http_slots.try_acquire() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many HTTP requests in flight (max_http_requests = {})",
                app.limits.max_http_requests
            ),
        );
    };
    let max_headers = app.limits.max_http_headers;
    if headers.len() > max_headers {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("more than {max_headers} headers (max_http_headers)"),
        );
    }
    let limit = app.limits.max_http_body_bytes;
    let Ok(body) = to_bytes(body, limit).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds {limit} bytes (max_http_body_bytes)"),
        );
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
        body: body.to_vec(),
    };
    let timeout = app.limits.http_timeout;
    let answer = tokio::time::timeout(timeout, app.rooms.request(&service, &room, request));
    match answer.await {
        Ok(Ok(response)) => into_response(response, limit, max_headers),
        Ok(Err(JoinError::RoomLimit(max))) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("room limit reached ({max} rooms)"),
        ),
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
