//! Connections between the nodes of a cluster: the headers a node presents
//! to a peer (the cluster's peer key, the client's address, a transferred
//! client's hand-off), dialing the WebSocket of a room another node owns,
//! and frames as they cross from one side's WebSocket types to the other's.
//! Used by `http::forward` (a client's connection to a room elsewhere) and
//! `room::remote` (a client transferred to a room elsewhere).

use std::time::Duration;

use axum::extract::ws as axum_ws;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as UpMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::limits::Limits;

/// A WebSocket to a peer node.
pub(crate) type UpstreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The handshake answer of a peer.
pub(crate) type UpstreamResponse = tungstenite::handshake::client::Response;

/// The header a transferred client's hand-off travels in (JSON; trusted
/// only with the peer key).
pub(crate) const HANDOFF_HEADER: &str = "x-roomhost-handoff";

/// The header a node presents the cluster's peer key in.
pub(crate) const PEER_KEY_HEADER: &str = "x-roomhost-peer-key";
/// The header a node names the client's address in (trusted only with the
/// peer key).
pub(crate) const CLIENT_ADDRESS_HEADER: &str = "x-roomhost-client-address";

/// Headers that belong to one hop (or to the WebSocket handshake, which the
/// forwarding node makes anew) and are not passed on.
pub(crate) const HOP_HEADERS: [&str; 12] = [
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
pub(crate) const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Compares secrets in time independent of where they differ.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

pub(crate) fn close_frame(code: u16, reason: &str) -> axum_ws::Message {
    axum_ws::Message::Close(Some(axum_ws::CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// A client's frame as the owner gets it (pings and pongs stay on their
/// hop: each side answers its own).
pub(crate) fn to_owner_message(message: axum_ws::Message) -> Option<UpMessage> {
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

pub(crate) fn to_client_close(frame: tungstenite::protocol::CloseFrame) -> axum_ws::CloseFrame {
    axum_ws::CloseFrame {
        code: frame.code.into(),
        reason: frame.reason.as_str().into(),
    }
}

/// An owner's frame as the client gets it.
pub(crate) fn to_client_message(message: UpMessage) -> Option<axum_ws::Message> {
    Some(match message {
        UpMessage::Text(text) => axum_ws::Message::Text(text.as_str().into()),
        UpMessage::Binary(bytes) => axum_ws::Message::Binary(bytes),
        UpMessage::Close(frame) => axum_ws::Message::Close(frame.map(to_client_close)),
        UpMessage::Ping(_) | UpMessage::Pong(_) | UpMessage::Frame(_) => return None,
    })
}

/// Why a peer's WebSocket could not be opened.
#[derive(Debug)]
pub(crate) enum DialError {
    /// The peer answered the upgrade with an HTTP refusal.
    Refused(http_response::Refusal),
    /// The address, the connection or the handshake failed.
    Failed(String),
    /// No answer within [`PEER_CONNECT_TIMEOUT`].
    TimedOut,
}

/// A peer's HTTP refusal of an upgrade.
pub(crate) mod http_response {
    /// Status, headers and body of the refusal.
    pub(crate) type Refusal = axum::http::Response<Option<Vec<u8>>>;
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Refused(refusal) => write!(f, "refused with HTTP {}", refusal.status()),
            DialError::Failed(why) => f.write_str(why),
            DialError::TimedOut => f.write_str("no answer"),
        }
    }
}

/// Opens `ws://{address}{path_and_query}` on a peer node with `headers`,
/// frames bounded as `limits` bound the host's own.
pub(crate) async fn dial(
    address: &str,
    path_and_query: &str,
    headers: HeaderMap,
    limits: &Limits,
) -> Result<(UpstreamSocket, UpstreamResponse), DialError> {
    let url = format!("ws://{address}{path_and_query}");
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|refused| DialError::Failed(refused.to_string()))?;
    request.headers_mut().extend(headers);
    // Frames from the owner are the room's (up to `max_plugin_frame_bytes`),
    // frames to it the client's (up to `max_frame_bytes`).
    let largest = limits.max_plugin_frame_bytes.max(limits.max_frame_bytes);
    let config = WebSocketConfig::default()
        .max_message_size(Some(largest))
        .max_frame_size(Some(largest))
        .read_buffer_size(crate::connection::READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let connected = timeout(
        PEER_CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, Some(config), true),
    )
    .await;
    match connected {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(tungstenite::Error::Http(refusal))) => Err(DialError::Refused(*refusal)),
        Ok(Err(failed)) => Err(DialError::Failed(failed.to_string())),
        Err(_) => Err(DialError::TimedOut),
    }
}

/// HTTP client for requests to peer nodes (forwarded room requests,
/// relayed sends): pooled connections, no Nagle, a bounded connect.
pub(crate) type PeerClient = Client<HttpConnector, Full<Bytes>>;

/// A [`PeerClient`].
pub(crate) fn http_client() -> PeerClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(PEER_CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Headers for a peer: the peer key and the client's address.
pub(crate) fn peer_headers(peer_key: &str, client: std::net::IpAddr) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(key) = HeaderValue::from_str(peer_key) {
        headers.insert(HeaderName::from_static(PEER_KEY_HEADER), key);
    }
    if let Ok(address) = HeaderValue::from_str(&client.to_string()) {
        headers.insert(HeaderName::from_static(CLIENT_ADDRESS_HEADER), address);
    }
    headers
}
