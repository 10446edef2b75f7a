//! Forwarding to the node that owns a room (cluster nodes only): any node
//! accepts any client, and a room another node owns is reached through an
//! internal connection to that node.
//!
//! - **WebSocket.** The upgrade is replayed to the owner first, with the
//!   client's headers and query: the owner applies the service's access
//!   policy and limits, and its refusal (status and body) is the client's
//!   answer. Once the owner accepts, the client's upgrade completes with the
//!   protocol the owner chose and frames are pumped both ways, close codes
//!   included, so the client cannot tell it went through a second node.
//!   The forwarding node keeps its own liveness checks on the client side
//!   (pings, `idle_timeout`): the owner's pings are answered by this node's
//!   socket, not by the client.
//! - **HTTP.** A room request is sent on to the owner with its method,
//!   path, query, headers and (already bounded) body; the owner's answer is
//!   passed back.
//!
//! Nodes trust each other through the cluster's peer key
//! (`peering::PEER_KEY_HEADER`): a request bearing it may name the client's
//! address, which the owner then counts room creations against, and it is
//! never forwarded again (a room that moved once more meanwhile gets 503,
//! and the client retries).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{self as axum_ws, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, interval_at, timeout};
use tokio_tungstenite::tungstenite::Message as UpMessage;

use super::App;
use super::api::error;
use crate::close;
use crate::peering::{
    self, CLIENT_ADDRESS_HEADER, DialError, HANDOFF_HEADER, HOP_HEADERS, PEER_KEY_HEADER,
    PeerClient, UpstreamSocket, close_frame, same_secret, to_client_close, to_client_message,
    to_owner_message,
};

/// The forwarding node's HTTP client (pooled connections to its peers).
pub(crate) struct Peers {
    client: PeerClient,
}

impl Peers {
    pub(crate) fn new() -> Peers {
        Peers {
            client: peering::http_client(),
        }
    }
}

/// Whether `headers` carry the cluster's peer key: the request came from
/// another node of this cluster.
pub(crate) fn from_peer(app: &App, headers: &HeaderMap) -> bool {
    let Some(placement) = app.rooms.placement() else {
        return false;
    };
    headers
        .get(PEER_KEY_HEADER)
        .is_some_and(|given| same_secret(given.as_bytes(), placement.peer_key().as_bytes()))
}

/// The client's address: the one a peer node names, for a forwarded
/// request, or the connection's own.
pub(crate) fn client_address(app: &App, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !from_peer(app, headers) {
        return peer;
    }
    headers
        .get(CLIENT_ADDRESS_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(peer)
}

/// The 503 a forwarded request gets when the room moved again.
pub(crate) fn moved_again() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the room is moving between nodes: try again".into(),
    )
}

/// The headers passed on to the owner: the client's own, minus the hop's,
/// plus the peer key and the client's address.
fn peer_headers(app: &App, headers: &HeaderMap, client: IpAddr) -> HeaderMap {
    let mut passed = HeaderMap::new();
    for (name, value) in headers {
        if HOP_HEADERS.contains(&name.as_str())
            || name == PEER_KEY_HEADER
            || name == CLIENT_ADDRESS_HEADER
            || name == HANDOFF_HEADER
        {
            continue;
        }
        passed.append(name.clone(), value.clone());
    }
    if let Some(placement) = app.rooms.placement() {
        passed.extend(peering::peer_headers(placement.peer_key(), client));
    }
    passed
}

/// The path and query of `uri`.
fn path_and_query(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |path| path.as_str())
}

/// A WebSocket upgrade for a room `node` owns, at `address`.
pub(crate) struct Upstream<'a> {
    pub(crate) node: &'a str,
    pub(crate) address: &'a str,
}

/// Opens the client's WebSocket on the owner and, when it accepts, pumps
/// the client's socket to it. `slot` (this node's connection slot) is held
/// until both sockets are done.
pub(crate) async fn websocket(
    app: Arc<App>,
    upstream: Upstream<'_>,
    (uri, headers, client): (&Uri, &HeaderMap, IpAddr),
    upgrade: WebSocketUpgrade,
    slot: OwnedSemaphorePermit,
) -> Response {
    let passed = peer_headers(&app, headers, client);
    let dialed = peering::dial(upstream.address, path_and_query(uri), passed, &app.limits).await;
    let (socket, response) = match dialed {
        Ok(connected) => connected,
        Err(DialError::Refused(refused)) => {
            // The owner refused the client (access, limits): its answer is
            // the client's.
            let (parts, body) = refused.into_parts();
            let mut answer = Response::new(Body::from(body.unwrap_or_default()));
            *answer.status_mut() = parts.status;
            for name in [
                header::CONTENT_TYPE,
                header::WWW_AUTHENTICATE,
                header::RETRY_AFTER,
            ] {
                if let Some(value) = parts.headers.get(&name) {
                    answer.headers_mut().insert(name, value.clone());
                }
            }
            return answer;
        }
        Err(failed) => return unreachable_owner(upstream.node, &failed.to_string()),
    };
    let limits = &app.limits;
    app.rooms.metrics().connection_forwarded();
    let protocol = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let upgrade = match protocol {
        Some(protocol) => upgrade.protocols([protocol]),
        None => upgrade,
    };
    let in_flight = app.connections.token();
    let shutdown = app.shutdown.child_token();
    let ping_interval = limits.ping_interval;
    let idle = limits.idle_timeout;
    upgrade
        .read_buffer_size(crate::connection::READ_BUFFER_BYTES)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |client| {
            app.connections.track_future(async move {
                pump(client, socket, (ping_interval, idle), shutdown).await;
                drop(slot);
                drop(in_flight);
            })
        })
}

/// Frames a forwarding pump writes to the client per flush at most.
const MAX_BATCH_FRAMES: usize = 256;

/// The 502 for an owner that cannot be reached (it may be dying: the client
/// retries, and once its lease lapses another node takes the room).
fn unreachable_owner(node: &str, why: &str) -> Response {
    let mut answer = error(
        StatusCode::BAD_GATEWAY,
        format!("the node that owns this room ({node}) cannot be reached ({why}): try again"),
    );
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

/// Pumps frames between the client and the owner until either side closes,
/// passing each close frame (code and reason) on.
async fn pump(
    client: WebSocket,
    upstream: UpstreamSocket,
    (ping_interval, idle): (Duration, Duration),
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_owner, mut from_owner) = upstream.split();
    let mut ping = interval_at(Instant::now() + ping_interval, ping_interval);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                let _ = to_client.send(close_frame(close::GOING_AWAY, "server shutting down")).await;
                let _ = to_owner.close().await;
                return;
            }
            _ = ping.tick() => {
                if heard.elapsed() >= idle {
                    let _ = to_client.send(close_frame(close::GOING_AWAY, "idle timeout")).await;
                    let _ = to_owner.close().await;
                    return;
                }
                if to_client.send(axum_ws::Message::Ping(Bytes::new())).await.is_err() {
                    let _ = to_owner.close().await;
                    return;
                }
            }
            from = from_client.next() => {
                heard = Instant::now();
                let Some(Ok(message)) = from else {
                    // The client's socket broke: the owner hears it left.
                    let _ = to_owner.close().await;
                    return;
                };
                let closing = matches!(message, axum_ws::Message::Close(_));
                if let Some(message) = to_owner_message(message)
                    && to_owner.send(message).await.is_err()
                {
                    return;
                }
                if closing {
                    // Wait (briefly) for the owner's reply to the close.
                    let _ = timeout(Duration::from_secs(1), async {
                        while let Some(Ok(message)) = from_owner.next().await {
                            if let UpMessage::Close(frame) = message {
                                let _ = to_client.send(axum_ws::Message::Close(frame.map(to_client_close))).await;
                                return;
                            }
                        }
                    })
                    .await;
                    return;
                }
            }
            from = from_owner.next() => {
                let Some(Ok(mut message)) = from else {
                    let _ = to_client.send(close_frame(close::SERVICE_RESTART, "the room's node went away")).await;
                    return;
                };
                // What the owner sent meanwhile goes out in the same write
                // (one flush per batch, as the host's own writer does).
                let mut batched = 0;
                loop {
                    let closing = matches!(message, UpMessage::Close(_));
                    if let Some(frame) = to_client_message(message)
                        && to_client.feed(frame).await.is_err()
                    {
                        let _ = to_owner.close().await;
                        return;
                    }
                    batched += 1;
                    if closing {
                        let _ = to_client.flush().await;
                        return;
                    }
                    if batched >= MAX_BATCH_FRAMES {
                        break;
                    }
                    match from_owner.next().now_or_never() {
                        Some(Some(Ok(next))) => message = next,
                        None => break,
                        // The owner's side ended: what came before it goes
                        // out, then the client hears why.
                        Some(None | Some(Err(_))) => {
                            let _ = to_client.feed(close_frame(close::SERVICE_RESTART, "the room's node went away")).await;
                            let _ = to_client.flush().await;
                            return;
                        }
                    }
                }
                if to_client.flush().await.is_err() {
                    let _ = to_owner.close().await;
                    return;
                }
            }
        }
    }
}

/// Sends a room request on to its owner and passes the answer back, its
/// body bounded by `max_http_body_bytes` like a room's own.
pub(crate) async fn request(
    app: &App,
    upstream: Upstream<'_>,
    (method, uri, headers, client): (Method, &Uri, &HeaderMap, IpAddr),
    body: Bytes,
) -> Response {
    let url = format!("http://{}{}", upstream.address, path_and_query(uri));
    let mut request = hyper::Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = match url.parse() {
        Ok(uri) => uri,
        Err(refused) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("cannot address node {}: {refused}", upstream.node),
            );
        }
    };
    *request.headers_mut() = peer_headers(app, headers, client);
    let limit = app.limits.max_http_body_bytes;
    let exchange = async {
        let response = app.peers.client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, limit).collect().await;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, body))
    };
    match timeout(app.limits.http_timeout, exchange).await {
        Ok(Ok((parts, Ok(body)))) => {
            let mut answer = Response::new(Body::from(body.to_bytes()));
            *answer.status_mut() = parts.status;
            for (name, value) in &parts.headers {
                if !HOP_HEADERS.contains(&name.as_str()) {
                    answer.headers_mut().append(name.clone(), value.clone());
                }
            }
            answer
        }
        Ok(Ok((_, Err(_)))) => error(
            StatusCode::BAD_GATEWAY,
            format!(
                "node {}'s answer broke off or passed {limit} bytes",
                upstream.node
            ),
        ),
        Ok(Err(failed)) => unreachable_owner(upstream.node, &failed.to_string()),
        Err(_) => unreachable_owner(upstream.node, "no answer within http_timeout"),
    }
    .into_response()
}

/// `POST /_cluster/send/{service}/{client}`: a frame a room on another node
/// sent to a client connected here (peer nodes only: 403 otherwise). 204
/// when the client took it, 404 when it is not here.
pub(crate) async fn deliver(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    axum::extract::Path((service, client)): axum::extract::Path<(String, u64)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !from_peer(&app, &headers) {
        return error(
            StatusCode::FORBIDDEN,
            "for the nodes of this cluster only".into(),
        );
    }
    let limit = app.limits.max_plugin_frame_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a frame is at most {limit} bytes (max_plugin_frame_bytes)"),
        );
    };
    let kind = headers
        .get(crate::room::FRAME_KIND_HEADER)
        .map(HeaderValue::as_bytes);
    let frame = match kind {
        Some(b"text") => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => axum_ws::Message::Text(text.into()),
            Err(_) => return error(StatusCode::BAD_REQUEST, "a text frame must be UTF-8".into()),
        },
        _ => axum_ws::Message::Binary(bytes),
    };
    if app.rooms.deliver(&service, client, frame) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no client {client} of {service:?} here"),
        )
    }
}
