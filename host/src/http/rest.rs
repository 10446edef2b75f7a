//! Rooms' REST face: `GET|POST|PUT|PATCH|DELETE /rooms/{service}/{room}/{path...}` is
//! handed to the room's `request` export and its answer sent back. Bodies
//! are bounded by `max_http_body_bytes` and `http_body_timeout`, queries by
//! `max_query_bytes`, headers by `max_http_headers`, requests in flight by
//! `max_http_requests` and the wait by `http_timeout`. A request creates its
//! room only where the service allows it.
//!
//! Before any of that, the service's access policy applies: an `Origin`
//! outside its allow-list gets 403, and where tokens are required a request
//! without a valid one gets 401, a token that does not open the room 403,
//! and a read-only token anything but `GET`/`HEAD` 403. Allowed origins get
//! CORS headers, and `OPTIONS` answers their preflight.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::App;
use super::api::error;
use super::body::{self, BodyError};
use super::forward;
use super::peer::Peer;
use crate::access::{AccessPolicy, Admission};
use crate::placement::Place;
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
    let address = forward::client_address(&app, address, &headers);
    if let Some(refused) = app.refuse_long_room_id(&room) {
        return refused;
    }
    if let Some(refused) = app.refuse_long_query(&uri) {
        return refused;
    }
    let policy = service.access();
    let cors = cors_origin(policy, &headers);
    let admitted = policy.admit(
        app.rooms.auth(),
        &headers,
        uri.query().unwrap_or_default(),
        &room,
        Admission::Http(&method),
    );
    if let Err(refused) = admitted {
        tracing::debug!(service = service.name(), %refused, "room request refused");
        let mut response = error(refused.status(), refused.to_string());
        if refused.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        return with_cors(response, cors);
    }
    let response = answer(
        &app,
        &service,
        (room, rest),
        (uri, address),
        method,
        headers,
        body,
    )
    .await;
    with_cors(response, cors)
}

/// Everything after admission: limits, the body, the room's answer.
async fn answer(
    app: &App,
    service: &Arc<crate::service::Service>,
    (room, rest): (String, String),
    (uri, address): (axum::http::Uri, std::net::IpAddr),
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let max_headers = app.limits.max_http_headers;
    if headers.len() > max_headers {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("more than {max_headers} headers (max_http_headers)"),
        );
    }
    let live = app.rooms.is_live(service.name(), &room);
    // On a cluster node, a room another node runs answers there.
    let elsewhere = match app.rooms.placement() {
        Some(_) if !live => match app.rooms.owner(service.name(), &room).await {
            Some(Place::Elsewhere { node, address }) => Some((node, address)),
            _ => None,
        },
        _ => None,
    };
    // A room that is not live is started for a request when the service
    // lets requests create rooms, or when the room stored data: it wakes
    // from storage as it would for a client.
    let create = elsewhere.is_some()
        || live
        || service.http_creates_rooms()
        || app.rooms.stores_data(service, &room).await;
    if !create {
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
    let forwarded = (method.clone(), &uri, &headers, address);
    if let Some((node, owner)) = elsewhere {
        return forward_to(app, (&node, &owner), forwarded, body.bytes.clone()).await;
    }
    let request = GuestHttpRequest {
        method: method.as_str().to_owned(),
        path: format!("/{rest}"),
        query: service
            .access()
            .strip_token_params(uri.query().unwrap_or_default()),
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
        .request(service, &room, request, create, Some(address));
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
        Ok(Err(JoinError::Elsewhere {
            node,
            address: owner,
        })) => forward_to(app, (&node, &owner), forwarded, body.bytes.clone()).await,
        Ok(Err(refused @ JoinError::Unplaced(_))) => {
            error(StatusCode::SERVICE_UNAVAILABLE, refused.to_string())
        }
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

/// Sends a request on to the node that runs its room, unless another node
/// sent it here already (the room moved meanwhile: 503, retry).
async fn forward_to(
    app: &App,
    (node, address): (&str, &str),
    request: (Method, &axum::http::Uri, &HeaderMap, std::net::IpAddr),
    body: hyper::body::Bytes,
) -> Response {
    if forward::from_peer(app, request.2) {
        return forward::moved_again();
    }
    forward::request(app, forward::Upstream { node, address }, request, body).await
}

/// `OPTIONS /rooms/{service}/{room}/{path...}`: the CORS preflight. An
/// allowed origin learns the methods and headers it may use; any other
/// request gets 403.
pub(crate) async fn preflight(
    State(app): State<Arc<App>>,
    Path((service, _room, _rest)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(service) = app.services.get(&service) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no service named {service:?}"),
        );
    };
    let policy = service.access();
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .unwrap_or_default();
    if !policy.origin_allowed(origin) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "origin {origin:?} may not call service {:?} (allowed_origins)",
                service.name()
            ),
        );
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let answer = response.headers_mut();
    answer.insert(
        axum::http::header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    answer.insert(
        axum::http::header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    answer.insert(
        axum::http::header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    with_cors(response, cors_origin(policy, &headers))
}

/// The request's `Origin` if the policy allows it (and lists any).
fn cors_origin(policy: &AccessPolicy, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(axum::http::header::ORIGIN)?;
    let allowed = !policy.allowed_origins.is_empty()
        && policy.origin_allowed(origin.to_str().unwrap_or_default());
    allowed.then(|| origin.clone())
}

/// Adds `Access-Control-Allow-Origin` for an allowed browser origin.
fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    if let Some(origin) = origin {
        let answer = response.headers_mut();
        answer.insert(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        answer.append(axum::http::header::VARY, HeaderValue::from_static("Origin"));
    }
    response
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
