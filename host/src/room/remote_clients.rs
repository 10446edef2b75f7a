//! Clients of other nodes of the cluster, for `send` by client id.
//!
//! On a cluster node every client id carries its node's number in its high
//! bits ([`NODE_BITS`]), so the node that holds a client is known from the
//! id alone. A room that sends to a client of another node gets a stand-in
//! [`ClientSender`] (one per remote client, at most [`MAX_REMOTE_CLIENTS`]):
//! frames it queues go through the room's output gate like any others, then
//! a relay task posts them in order to the client's node
//! (`POST /_cluster/send/SERVICE/CLIENT` under the peer key), which queues
//! them for its client. A relay whose client is gone (404), whose node
//! cannot be reached, or that idles for [`RELAY_IDLE`] ends, and the next
//! send starts a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Message as WsMessage;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::meta::lock;
use crate::client::{ClientId, ClientSender, Outbound, OutboundQueue};
use crate::peering::{self, PEER_CONNECT_TIMEOUT};
use crate::placement::SharedPlacement;

/// Low bits of a client id that count clients within a node; the bits above
/// are the node's number.
pub(crate) const NODE_BITS: u32 = 40;

/// Remote clients a node relays to at once; a send to one more is dropped
/// (and logged) until a relay ends.
pub(crate) const MAX_REMOTE_CLIENTS: usize = 4096;

/// How long a relay waits for another frame before it ends.
const RELAY_IDLE: Duration = Duration::from_secs(30);

/// The header naming a relayed frame's kind (`text` or `binary`).
pub(crate) const FRAME_KIND_HEADER: &str = "x-roomhost-frame";

/// The node number client id `client` belongs to.
pub(crate) fn node_of(client: ClientId) -> u64 {
    client >> NODE_BITS
}

/// The stand-in senders of remote clients, with their relays.
pub(crate) struct RemoteClients {
    relays: Mutex<HashMap<ClientId, ClientSender>>,
    http: Client<HttpConnector, Full<Bytes>>,
    queue: usize,
}

impl RemoteClients {
    pub(crate) fn new(queue: usize) -> RemoteClients {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(PEER_CONNECT_TIMEOUT));
        RemoteClients {
            relays: Mutex::new(HashMap::new()),
            http: Client::builder(TokioExecutor::new()).build(connector),
            queue,
        }
    }

    /// The sender standing in for client `client` of `service` on another
    /// node, starting its relay when none runs; `None` when too many do.
    pub(crate) fn sender(
        self: &Arc<Self>,
        placement: &SharedPlacement,
        service: &str,
        client: ClientId,
    ) -> Option<ClientSender> {
        let mut relays = lock(&self.relays);
        if let Some(sender) = relays.get(&client) {
            return Some(sender.clone());
        }
        if relays.len() >= MAX_REMOTE_CLIENTS {
            tracing::warn!(
                client,
                "too many remote clients being sent to: frame dropped"
            );
            return None;
        }
        let (sender, queue) = ClientSender::detached(client, self.queue);
        relays.insert(client, sender.clone());
        let relay = Relay {
            clients: self.clone(),
            placement: placement.clone(),
            service: service.to_owned(),
            client,
        };
        tokio::spawn(relay.run(queue));
        Some(sender)
    }
}

/// Posts one remote client's frames to its node, in order.
struct Relay {
    clients: Arc<RemoteClients>,
    placement: SharedPlacement,
    service: String,
    client: ClientId,
}

impl Relay {
    async fn run(self, mut queue: OutboundQueue) {
        let number = node_of(self.client);
        let lookup = self.placement.clone();
        let address = tokio::task::spawn_blocking(move || lookup.node_address(number)).await;
        let address = match address {
            Ok(Ok(Some(address))) => address,
            _ => {
                tracing::debug!(client = self.client, "no live node holds this client");
                return self.end();
            }
        };
        let url = format!(
            "http://{address}/_cluster/send/{}/{}",
            self.service, self.client
        );
        while let Ok(Some(out)) = tokio::time::timeout(RELAY_IDLE, queue.recv()).await {
            let (kind, body) = match out {
                Outbound::Frame(WsMessage::Text(text)) => {
                    ("text", Bytes::from(text.as_str().to_owned()))
                }
                Outbound::Frame(WsMessage::Binary(bytes)) => ("binary", bytes),
                // Only frames are relayed (`close` is for a room's members).
                _ => continue,
            };
            let mut request = hyper::Request::post(url.as_str());
            for (name, value) in &peering::peer_headers(
                self.placement.peer_key(),
                std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            ) {
                request = request.header(name, value);
            }
            let Ok(request) = request
                .header(FRAME_KIND_HEADER, kind)
                .body(Full::new(body))
            else {
                break;
            };
            let sent =
                tokio::time::timeout(PEER_CONNECT_TIMEOUT, self.clients.http.request(request))
                    .await;
            match sent {
                Ok(Ok(response)) if response.status().is_success() => {}
                _ => break,
            }
        }
        self.end();
    }

    /// Forgets this relay's sender, so the next send starts afresh.
    fn end(&self) {
        lock(&self.clients.relays).remove(&self.client);
    }
}
