//! WebSocket upgrades: validates the handshake and the target, admits the
//! client under its service's access policy (origin, token, room; 401/403
//! before the upgrade), reserves a connection slot and hands the socket to
//! [`crate::connection`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::{FutureExt, StreamExt};
use tracing::Instrument;

use super::App;
use super::api::error;
use super::forward;
use super::peer::Peer;
use crate::access::{self, Access, Admission, TokenSource};
use crate::connection::{self, Target};
use crate::contain::panic_message;
use crate::peering;
use crate::placement::Place;
use crate::room::Arrival;
use crate::room::LOBBY;
use crate::service::Service;

pub(crate) async fn root(
    State(app): State<Arc<App>>,
    OriginalUri(uri): OriginalUri,
    peer: Peer,
    headers: HeaderMap,
    ValidUpgrade(upgrade): ValidUpgrade,
) -> Response {
    let service = app
        .rooms
        .root_service()
        .and_then(|name| app.services.get(&*name).cloned());
    let Some(service) = service else {
        return error(
            StatusCode::NOT_FOUND,
            "no service serves the root: connect to /ws/{service} or /ws/{service}/{room}".into(),
        );
    };
    attach(app, service, LOBBY.into(), (uri, peer, &headers), upgrade).await
}

pub(crate) async fn single_lobby(
    State(app): State<Arc<App>>,
    OriginalUri(uri): OriginalUri,
    peer: Peer,
    headers: HeaderMap,
    ValidUpgrade(upgrade): ValidUpgrade,
) -> Response {
    match app.single_service().cloned() {
        Some(service) => attach(app, service, LOBBY.into(), (uri, peer, &headers), upgrade).await,
        None => several_services(&app),
    }
}

/// `/ws/{x}`: room `x` of the only service, or the lobby of service `x`.
pub(crate) async fn single_service(
    State(app): State<Arc<App>>,
    Path(room): Path<String>,
    OriginalUri(uri): OriginalUri,
    peer: Peer,
    headers: HeaderMap,
    ValidUpgrade(upgrade): ValidUpgrade,
) -> Response {
    if let Some(service) = app.single_service().cloned() {
        return attach(app, service, room, (uri, peer, &headers), upgrade).await;
    }
    match app.services.get(&room).cloned() {
        Some(service) => attach(app, service, LOBBY.into(), (uri, peer, &headers), upgrade).await,
        None => several_services(&app),
    }
}

fn several_services(app: &App) -> Response {
    let names: Vec<_> = app.services.keys().cloned().collect();
    error(
        StatusCode::NOT_FOUND,
        format!(
            "several services are loaded ({}): connect to /ws/{{service}} or /ws/{{service}}/{{room}}",
            names.join(", ")
        ),
    )
}

pub(crate) async fn named_service(
    State(app): State<Arc<App>>,
    Path((service, room)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    peer: Peer,
    headers: HeaderMap,
    ValidUpgrade(upgrade): ValidUpgrade,
) -> Response {
    let Some(service) = app.services.get(&service).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no service named {service:?}"),
        );
    };
    attach(app, service, room, (uri, peer, &headers), upgrade).await
}

/// The checks of an upgrade's target before any room is touched: the
/// refusal's metrics label and response when one fails, `None` otherwise.
fn admit(
    app: &App,
    service: &Service,
    room: &str,
    uri: &axum::http::Uri,
) -> Option<(&'static str, Response)> {
    if room == LOBBY && !service.plugin().has_lobby() {
        let refused = error(
            StatusCode::NOT_FOUND,
            format!(
                "service {:?} has no lobby: connect to a room, /ws/{}/{{room}}",
                service.name(),
                service.name()
            ),
        );
        return Some(("no_lobby", refused));
    }
    if let Some(refused) = app.refuse_long_room_id(room) {
        return Some(("room_id_too_long", refused));
    }
    app.refuse_long_query(uri)
        .map(|refused| ("query_too_long", refused))
}

async fn attach(
    app: Arc<App>,
    service: Arc<Service>,
    room: String,
    (uri, Peer(peer), headers): (axum::http::Uri, Peer, &HeaderMap),
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Some((reason, refused)) = admit(&app, &service, &room, &uri) {
        app.rooms.metrics().connection_refused(reason);
        return refused;
    }
    let address = forward::client_address(&app, peer, headers);
    // A cluster node runs the room only if it holds it: a room another node
    // runs gets the upgrade there (and the owner decides on it). Only asked
    // here, not claimed: the join claims it, after admission, so a refused
    // upgrade leaves no claim behind.
    if let Some(placement) = app.rooms.placement() {
        if !placement.serving() {
            app.rooms.metrics().connection_refused("unplaced");
            let refused = crate::placement::PlacementError::NotServing;
            return error(StatusCode::SERVICE_UNAVAILABLE, refused.to_string());
        }
        if let Some(Place::Elsewhere {
            node,
            address: owner,
        }) = app.rooms.owner(service.name(), &room).await
        {
            if forward::from_peer(&app, headers) {
                app.rooms.metrics().connection_refused("moved");
                return forward::moved_again();
            }
            let Ok(slot) = app.connection_slots.clone().try_acquire_owned() else {
                return connection_limit(&app);
            };
            let upstream = forward::Upstream {
                node: &node,
                address: &owner,
            };
            return forward::websocket(
                app.clone(),
                upstream,
                (&uri, headers, address),
                upgrade,
                slot,
            )
            .await;
        }
    }
    let policy = service.access();
    let query = uri.query().unwrap_or_default();
    // A client transferred here from a room on another node was admitted
    // there; its grant comes with it, under the peer key.
    let arrival = forward::from_peer(&app, headers)
        .then(|| headers.get(peering::HANDOFF_HEADER)?.to_str().ok())
        .flatten()
        .and_then(Arrival::decode);
    let admitted = match &arrival {
        Some(arrival) => Ok(arrival.grant.clone().map(|grant| {
            let access = grant.access(&room).unwrap_or(Access::Write);
            (grant, access)
        })),
        None => policy.admit(
            app.rooms.auth(),
            headers,
            query,
            &room,
            Admission::WebSocket,
        ),
    };
    let grant = match admitted {
        Ok(grant) => grant,
        Err(refused) => {
            tracing::debug!(service = service.name(), %refused, "upgrade refused");
            app.rooms.metrics().connection_refused("access");
            return error(refused.status(), refused.to_string());
        }
    };
    // A token sent as a protocol entry is not a protocol: answer with the
    // first entry that is one (browsers fail a handshake whose offered
    // protocols get no answer).
    let came_by_protocol = grant.is_some()
        && policy
            .find_token(headers, query, true)
            .is_some_and(|found| *found.source == TokenSource::Protocol);
    let upgrade = match came_by_protocol
        .then(|| {
            access::protocols(headers)
                .find(|entry| !entry.starts_with(access::PROTOCOL_PREFIX))
                .map(str::to_owned)
        })
        .flatten()
    {
        Some(protocol) => upgrade.protocols([protocol]),
        None => upgrade,
    };
    let Ok(slot) = app.connection_slots.clone().try_acquire_owned() else {
        return connection_limit(&app);
    };
    let client = app.next_client.fetch_add(1, Ordering::Relaxed);
    let resume = query
        .split('&')
        .find_map(|pair| {
            pair.strip_prefix(connection::RESUME_PARAM)?
                .strip_prefix('=')
        })
        .map(str::to_owned);
    let query = policy.strip_token_params(query);
    let target = Target {
        service,
        room,
        path: uri.path().to_owned(),
        query,
        address,
        resume,
        grant: grant.map(|(grant, _)| grant),
        handoff: arrival.as_ref().map(Arrival::handoff),
        hops: arrival.as_ref().map_or(0, |arrival| arrival.hops),
    };
    let span = tracing::info_span!("client", client, service = %target.service.name());
    // Held from here, so shutdown also waits for a connection whose upgrade
    // is still completing (it then gets its 1001 like the others).
    let in_flight = app.connections.token();
    upgrade
        // tungstenite's default read buffer is 128 KiB per connection, all of
        // it resident: an idle connection cost ~128 KiB of RSS (issue 7).
        // tungstenite zero-fills it to its capacity before each read, so
        // all of it is resident even for a client that never sends
        // anything. 1 KiB holds typical frames; a larger frame grows the
        // buffer to its size (tungstenite reserves the frame's length from
        // its header) but is read in steps of this size: a 60 KB frame
        // takes ~58 `recv` calls instead of ~15 (issue 19, BENCHMARKS.md:
        // no measurable CPU difference at 200 such frames/s), for 3 KiB
        // less per idle connection.
        .read_buffer_size(connection::READ_BUFFER_BYTES)
        // The writer buffers the frames queued for the client and flushes
        // once per batch (`connection::write_loop`); the buffer goes to the
        // socket early only past `write_batch_bytes`. What the socket does
        // not take stays in a buffer capped at one frame plus
        // `max_write_buffer_bytes` (pongs, the close frame).
        .write_buffer_size(write_batch_bytes(&app.limits))
        .max_write_buffer_size(write_buffer_cap(&app.limits))
        .max_message_size(app.limits.max_frame_bytes)
        .max_frame_size(app.limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let rooms = app.rooms.clone();
            let limits = app.limits.clone();
            // A child, not a clone: a clone shares the server's token node,
            // whose mutex every connection's writer would take on every poll
            // (measured: issue 19); a child has its own and is cancelled
            // with the server's.
            let shutdown = app.shutdown.child_token();
            // The connection's future is made inside this block, not moved
            // into it: a future captured by an async block is stored twice
            // (the capture and the awaited copy), which made every
            // connection's task 3.6 KiB larger for its whole life (issue 19).
            // Split and boxed out here for the same reason (see
            // `connection::run`): the block keeps what it captures.
            let halves = socket.split();
            let target = Box::new(target);
            let tracked = app.connections.track_future(async move {
                let connection =
                    connection::run(halves, client, target, rooms.clone(), limits, shutdown);
                // A panic here is a host bug: the client is lost to its room
                // like a dropped connection, and the slot is freed.
                if let Err(panic) = AssertUnwindSafe(connection).catch_unwind().await {
                    tracing::error!(panic = %panic_message(panic.as_ref()), "connection task panicked");
                    rooms.client_lost(client).await;
                }
                drop(slot);
                drop(in_flight);
            });
            tracked.instrument(span)
        })
}

/// The 503 for a connection past `max_connections`.
fn connection_limit(app: &App) -> Response {
    app.rooms.metrics().connection_refused("connection_limit");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("connection limit reached ({})", app.limits.max_connections),
    )
}

/// Bytes a writer's batch collects before it goes to the socket, at most:
/// enough for ~200 small frames per `write` call, small enough that the
/// buffer a busy connection keeps stays modest. Never more than
/// `max_write_buffer_bytes`, so a pending batch cannot make a frame look like
/// unread output.
const WRITE_BATCH_BYTES: usize = 16 * 1024;

fn write_batch_bytes(limits: &crate::Limits) -> usize {
    WRITE_BATCH_BYTES.min(limits.max_write_buffer_bytes)
}

/// Largest WebSocket frame header (2 bytes, 8 of length, 4 of mask).
const FRAME_HEADER_BYTES: usize = 14;

/// The write buffer's cap: the largest frame the host writes (a plugin's,
/// `max_plugin_frame_bytes`) plus what a client may leave unread
/// (tungstenite refuses a frame that would pass it).
fn write_buffer_cap(limits: &crate::Limits) -> usize {
    limits
        .max_plugin_frame_bytes
        .saturating_add(FRAME_HEADER_BYTES)
        .saturating_add(limits.max_write_buffer_bytes)
}

/// A WebSocket upgrade whose `Sec-WebSocket-Key` is what RFC 6455 requires:
/// 16 bytes, base64-encoded. Anything else gets 400 (axum checks only that
/// the header is there).
pub(crate) struct ValidUpgrade(WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for ValidUpgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .map(|key| key.as_bytes())
            .unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD.decode(key);
        if !decoded.is_ok_and(|nonce| nonce.len() == 16) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key must be 16 bytes, base64-encoded".into(),
            ));
        }
        Ok(ValidUpgrade(upgrade))
    }
}
