//! A room another node of the cluster runs, as a connection on this node
//! sees it once its room transferred the client there.
//!
//! The client keeps its socket to this node (no reconnect): the connection
//! opens a WebSocket to the owner carrying the client's hand-off and grant
//! under the cluster's peer key, and a link task stands in for the room.
//! Frames the client sends go to the owner; frames and the close the owner
//! sends go into the client's queue, so the connection's writer, liveness
//! checks and limits stay as they are. The owner treats the link as the
//! client: its `connect` sees the hand-off, and a transfer the owner's room
//! orders later is the owner's to carry out.
//!
//! One difference from a transfer within a node: a room elsewhere that
//! rejects the transferred client closes it with the rejection (the owner
//! decides after the link is open), instead of sending it back.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::SystemTime;

use axum::extract::ws::Message as WsMessage;
use axum::http::{HeaderName, HeaderValue};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as UpMessage;

use super::meta::{RoomHandle, RoomKey, RoomMeta};
use super::{ConnectRequest, RoomEvent};
use crate::access::Grant;
use crate::client::ClientSender;
use crate::close;
use crate::limits::Limits;
use crate::peering::{self, HANDOFF_HEADER, UpstreamSocket};
use crate::wasm::{GuestHandoff, GuestMessage};

/// A transferred client's hand-off and grant, as the owner receives them
/// (JSON, then base64, in [`HANDOFF_HEADER`]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Arrival {
    /// The room the client comes from.
    from_room: Option<String>,
    /// The hand-off bytes, base64.
    data: String,
    /// The client's token grant, verified by the node it connected to.
    pub(crate) grant: Option<Grant>,
    /// Links between the client's socket and this room, this one included.
    #[serde(default)]
    pub(crate) hops: u8,
}

impl Arrival {
    /// Reads an arrival from its header value; `None` if malformed.
    pub(crate) fn decode(value: &str) -> Option<Arrival> {
        let json = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// The hand-off the owner's room sees.
    pub(crate) fn handoff(&self) -> GuestHandoff {
        GuestHandoff {
            from_room: self.from_room.clone(),
            data: base64::engine::general_purpose::STANDARD
                .decode(&self.data)
                .unwrap_or_default(),
            rejected: None,
        }
    }

    fn encode(&self) -> Option<HeaderValue> {
        let json = serde_json::to_vec(self).ok()?;
        HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json)).ok()
    }
}

/// Where the client goes.
pub(crate) struct Destination<'a> {
    pub(crate) service: &'a str,
    pub(crate) room: &'a str,
    pub(crate) node: &'a str,
    pub(crate) address: &'a str,
}

/// Links a client may cross at most: a room that keeps moving it between
/// nodes cannot grow its chain without bound.
pub(crate) const MAX_LINK_HOPS: u8 = 3;

/// Opens the client's link to `to` and returns the handle that stands in
/// for the room there. `hops`: the links the client's socket already
/// crosses to reach this node.
pub(crate) async fn join(
    to: Destination<'_>,
    (request, grant, hops): (&ConnectRequest, Option<&Grant>, u8),
    peer_key: &str,
    limits: &Limits,
) -> Result<RoomHandle, String> {
    if hops >= MAX_LINK_HOPS {
        return Err(format!(
            "room {} is on node {}, and the client already crosses {hops} links",
            to.room, to.node
        ));
    }
    let handoff = request.handoff.as_ref();
    let arrival = Arrival {
        from_room: handoff.and_then(|handoff| handoff.from_room.clone()),
        data: base64::engine::general_purpose::STANDARD.encode(
            handoff
                .map(|handoff| handoff.data.as_slice())
                .unwrap_or_default(),
        ),
        grant: grant.cloned(),
        hops: hops + 1,
    };
    let client = request
        .address
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let mut headers = peering::peer_headers(peer_key, client);
    let encoded = arrival
        .encode()
        .ok_or_else(|| "the hand-off cannot be passed to another node".to_owned())?;
    headers.insert(HeaderName::from_static(HANDOFF_HEADER), encoded);
    let path = format!(
        "/ws/{}/{}{}{}",
        path_segment(to.service),
        path_segment(to.room),
        if request.query.is_empty() { "" } else { "?" },
        request.query
    );
    let (socket, _) = peering::dial(to.address, &path, headers, limits)
        .await
        .map_err(|failed| format!("room {} is on node {} ({failed})", to.room, to.node))?;
    let (inbox, events) = mpsc::channel(limits.room_inbox.max(1));
    let meta = Arc::new(RoomMeta {
        key: RoomKey::new(to.service, to.room),
        created_ms: crate::wasm::unix_millis(SystemTime::now()),
        plugin_version: Mutex::new(String::new()),
        clients: AtomicUsize::new(1),
        cpu_nanos: AtomicU64::new(0),
        storage_bytes: AtomicUsize::new(0),
        info: Mutex::new(serde_json::Value::Null),
        failure: Mutex::new(None),
    });
    tokio::spawn(link(socket, request.sender.clone(), events));
    Ok(RoomHandle { inbox, meta })
}

/// A path segment with everything but unreserved characters
/// percent-encoded (room ids may hold `/`, `?`, spaces).
fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Carries the client's frames to the owner and the owner's to the client
/// until either side ends.
async fn link(socket: UpstreamSocket, client: ClientSender, mut events: mpsc::Receiver<RoomEvent>) {
    let (mut to_owner, mut from_owner) = socket.split();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else {
                    let _ = to_owner.close().await;
                    return;
                };
                match event {
                    RoomEvent::Frame { message, .. } => {
                        let frame = match message {
                            GuestMessage::Text(text) => UpMessage::text(text),
                            GuestMessage::Binary(bytes) => UpMessage::binary(bytes),
                        };
                        if to_owner.send(frame).await.is_err() {
                            client.close(close::SERVICE_RESTART, "the room's node went away");
                            return;
                        }
                    }
                    RoomEvent::Disconnect { .. } => {
                        let _ = to_owner.close().await;
                        return;
                    }
                    // The client moves on (a transfer ordered here cannot
                    // come: the owner orders them); nothing is held here.
                    RoomEvent::Depart { reply, .. } => {
                        let _ = reply.send(Vec::new());
                        let _ = to_owner.close().await;
                        return;
                    }
                    RoomEvent::Close { code, reason } => {
                        client.close(code, &reason);
                        let _ = to_owner.close().await;
                        return;
                    }
                    RoomEvent::Resume { reply, .. } => {
                        let _ = reply.send(Err("the room is on another node".into()));
                    }
                    // Only a room in the table gets these; the link is not.
                    _ => {}
                }
            }
            frame = from_owner.next() => {
                match frame {
                    Some(Ok(UpMessage::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|frame| (u16::from(frame.code), frame.reason.to_string()))
                            .unwrap_or((close::NORMAL, String::new()));
                        client.close(code, &reason);
                        return;
                    }
                    Some(Ok(message)) => {
                        if let Some(frame) = peering::to_client_message(message)
                            && matches!(frame, WsMessage::Text(_) | WsMessage::Binary(_))
                            && client.send(frame).is_err()
                        {
                            // The client's queue refused it (slow consumer):
                            // the client is being closed.
                            let _ = to_owner.close().await;
                            return;
                        }
                    }
                    None | Some(Err(_)) => {
                        client.close(close::SERVICE_RESTART, "the room's node went away");
                        return;
                    }
                }
            }
        }
    }
}
