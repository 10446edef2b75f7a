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
//! ([`PEER_KEY_HEADER`]): a request bearing it may name the client's address
//! ([`CLIENT_ADDRESS_HEADER`]), which the owner then counts room creations
//! against, and it is never forwarded again (a room that moved once more
//! meanwhile gets 503, and the client retries).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{self as axum_ws, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, interval_at, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as UpMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::App;
use super::api::error;
use crate::close;

/// The header a node presents the cluster's peer key in.
pub(crate) const PEER_KEY_HEADER: &str = "x-roomhost-peer-key";
/// The header a node names the client's address in (trusted only with the
/// peer key).
pub(crate) const CLIENT_ADDRESS_HEADER: &str = "x-roomhost-client-address";

/// Headers that belong to one hop (or to the WebSocket handshake, which the
/// forwarding node makes anew) and are not passed on.
const HOP_HEADERS: [&str; 12] = [
    "host",
    "connection",
    "upgrade",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
];

/// How long a node waits for the owner to answer a forwarded upgrade or
/// request before telling the client to try again.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The forwarding node's HTTP client (pooled connections to its peers).
pub(crate) struct Peers {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Peers {
    pub(crate) fn new() -> Peers {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(PEER_CONNECT_TIMEOUT));
        Peers {
            client: Client::builder(TokioExecutor::new()).build(connector),
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

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
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
        {
            continue;
        }
        passed.append(name.clone(), value.clone());
    }
    if let Some(placement) = app.rooms.placement()
        && let Ok(key) = HeaderValue::from_str(placement.peer_key())
    {
        passed.insert(HeaderName::from_static(PEER_KEY_HEADER), key);
    }
    if let Ok(address) = HeaderValue::from_str(&client.to_string()) {
        passed.insert(HeaderName::from_static(CLIENT_ADDRESS_HEADER), address);
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
    let url = format!("ws://{}{}", upstream.address, path_and_query(uri));
    let mut request = match url.as_str().into_client_request() {
        Ok(request) => request,
        Err(refused) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("cannot address node {}: {refused}", upstream.node),
            );
        }
    };
    request
        .headers_mut()
        .extend(peer_headers(&app, headers, client));
    let limits = &app.limits;
    let config = WebSocketConfig::default()
        // Frames from the owner are the room's (up to
        // `max_plugin_frame_bytes`); the client's were checked on the way in.
        .max_message_size(Some(
            limits.max_plugin_frame_bytes.max(limits.max_frame_bytes),
        ))
        .max_frame_size(Some(
            limits.max_plugin_frame_bytes.max(limits.max_frame_bytes),
        ))
        .read_buffer_size(super::ws::READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let connected = timeout(
        PEER_CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await;
    let (socket, response) = match connected {
        Ok(Ok(connected)) => connected,
        Ok(Err(tungstenite::Error::Http(refused))) => {
            // The owner refused the client (access, limits): its answer is
            // the client's.
            let (parts, body) = refused.into_parts();
            let mut answer = Response::new(Body::from(body.unwrap_or_default()));
            *answer.status_mut() = parts.status;
            if let Some(kind) = parts.headers.get(header::CONTENT_TYPE) {
                answer
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, kind.clone());
            }
            if let Some(challenge) = parts.headers.get(header::WWW_AUTHENTICATE) {
                answer
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge.clone());
            }
            return answer;
        }
        Ok(Err(failed)) => return unreachable_owner(upstream.node, &failed.to_string()),
        Err(_) => return unreachable_owner(upstream.node, "no answer"),
    };
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
        .read_buffer_size(super::ws::READ_BUFFER_BYTES)
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

type UpstreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
                let Some(Ok(message)) = from else {
                    let _ = to_client.send(close_frame(close::SERVICE_RESTART, "the room's node went away")).await;
                    return;
                };
                let closing = matches!(message, UpMessage::Close(_));
                if let Some(message) = to_client_message(message)
                    && to_client.send(message).await.is_err()
                {
                    let _ = to_owner.close().await;
                    return;
                }
                if closing {
                    return;
                }
            }
        }
    }
}

fn close_frame(code: u16, reason: &str) -> axum_ws::Message {
    axum_ws::Message::Close(Some(axum_ws::CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// A client's frame as the owner gets it (pings and pongs stay on their
/// hop: each side answers its own).
fn to_owner_message(message: axum_ws::Message) -> Option<UpMessage> {
    Some(match message {
        axum_ws::Message::Text(text) => UpMessage::text(text.as_str()),
        axum_ws::Message::Binary(bytes) => UpMessage::Binary(bytes),
        axum_ws::Message::Close(frame) => {
            UpMessage::Close(frame.map(|frame| tungstenite::protocol::CloseFrame {
                code: frame.code.into(),
                reason: frame.reason.as_str().into(),
            }))
        }
        axum_ws::Message::Ping(_) | axum_ws::Message::Pong(_) => return None,
    })
}

fn to_client_close(frame: tungstenite::protocol::CloseFrame) -> axum_ws::CloseFrame {
    axum_ws::CloseFrame {
        code: frame.code.into(),
        reason: frame.reason.as_str().into(),
    }
}

/// An owner's frame as the client gets it.
fn to_client_message(message: UpMessage) -> Option<axum_ws::Message> {
    Some(match message {
        UpMessage::Text(text) => axum_ws::Message::Text(text.as_str().into()),
        UpMessage::Binary(bytes) => axum_ws::Message::Binary(bytes),
        UpMessage::Close(frame) => axum_ws::Message::Close(frame.map(to_client_close)),
        UpMessage::Ping(_) | UpMessage::Pong(_) | UpMessage::Frame(_) => return None,
    })
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
