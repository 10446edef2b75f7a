//! Clients of other nodes of the cluster, for `send` by client id.
//!
//! On a cluster node every client id carries its node's number in its high
//! bits ([`NODE_BITS`]), so the node that holds a client is known from the
//! id alone. A room that sends to a client of another node gets a stand-in
//! [`ClientSender`] (one per remote client, at most `max_remote_clients`):
//! frames it queues go through the room's output gate like any others, then
//! a relay task posts them in order to the client's node
//! (`POST /_cluster/send/SERVICE/CLIENT` under the peer key), which queues
//! them for its client. A relay whose client is gone (404), whose node
//! cannot be reached, or that idles for [`RELAY_IDLE`] ends, and the next
//! send starts a new one. Where each node is comes from the live nodes the
//! cluster sync reads (`cluster_rooms`), never from a lookup per send: a
//! send to an id of no live node is dropped without touching the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Message as WsMessage;
use http_body_util::Full;
use hyper::body::Bytes;

use super::meta::lock;
use crate::client::{ClientId, ClientSender, Outbound, OutboundQueue};
use crate::peering::{self, PEER_CONNECT_TIMEOUT, PeerClient};
use crate::placement::SharedPlacement;

/// Low bits of a client id that count clients within a node; the bits above
/// are the node's number.
pub(crate) const NODE_BITS: u32 = 40;

/// Within the low bits, those from here up hold the node's run (how many
/// times it started, modulo 256), the rest count the run's clients.
pub(crate) const RUN_SHIFT: u32 = 32;

/// How long a relay waits for another frame before it ends.
const RELAY_IDLE: Duration = Duration::from_secs(30);

/// The header naming a relayed frame's kind (`text` or `binary`).
pub(crate) const FRAME_KIND_HEADER: &str = "x-roomhost-frame";

/// The node number client id `client` belongs to.
pub(crate) fn node_of(client: ClientId) -> u64 {
    client >> NODE_BITS
}

/// A remote client: its service and id.
type RemoteClient = (String, ClientId);

/// The stand-in senders of remote clients, with their relays.
pub(crate) struct RemoteClients {
    relays: Mutex<HashMap<RemoteClient, ClientSender>>,
    /// The live nodes' addresses by number, as the cluster sync last read.
    peers: Mutex<HashMap<u64, String>>,
    http: PeerClient,
    queue: usize,
    max: usize,
}

impl RemoteClients {
    /// Relays holding `queue` frames each, at most `max` at once.
    pub(crate) fn new(queue: usize, max: usize) -> RemoteClients {
        RemoteClients {
            relays: Mutex::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
            http: peering::http_client(),
            queue,
            max,
        }
    }

    /// Replaces the live nodes' addresses (the cluster sync's read).
    pub(crate) fn set_peers(&self, peers: Vec<(u64, String)>) {
        *lock(&self.peers) = peers.into_iter().collect();
    }

    /// The sender standing in for client `client` of `service` on another
    /// node, starting its relay when none runs; `None` when no live node
    /// has the client's number, or too many relays run.
    pub(crate) fn sender(
        self: &Arc<Self>,
        placement: &SharedPlacement,
        service: &str,
        client: ClientId,
    ) -> Option<ClientSender> {
        let address = lock(&self.peers).get(&node_of(client)).cloned()?;
        let key = (service.to_owned(), client);
        let mut relays = lock(&self.relays);
        if let Some(sender) = relays.get(&key) {
            return Some(sender.clone());
        }
        if relays.len() >= self.max {
            tracing::warn!(
                client,
                "too many remote clients being sent to: frame dropped"
            );
            return None;
        }
        let (sender, queue) = ClientSender::detached(client, self.queue);
        relays.insert(key.clone(), sender.clone());
        let relay = Relay {
            clients: self.clone(),
            placement: placement.clone(),
            url: format!("http://{address}/_cluster/send/{service}/{client}"),
            key,
        };
        tokio::spawn(relay.run(queue));
        Some(sender)
    }
}

/// Posts one remote client's frames to its node, in order.
struct Relay {
    clients: Arc<RemoteClients>,
    placement: SharedPlacement,
    url: String,
    key: RemoteClient,
}

impl Relay {
    async fn run(self, mut queue: OutboundQueue) {
        loop {
            let next = match tokio::time::timeout(RELAY_IDLE, queue.recv()).await {
                Ok(Some(out)) => out,
                Ok(None) => return self.end(),
                Err(_) => {
                    // Idle: stop taking new frames, then post what a room
                    // queued while the relay was deciding to end.
                    self.end();
                    while let Some(out) = queue.try_recv() {
                        if !self.post(out).await {
                            break;
                        }
                    }
                    return;
                }
            };
            if !self.post(next).await {
                // The client is gone or its node unreachable: what is
                // queued for it is dropped with the relay.
                return self.end();
            }
        }
    }

    /// Posts one frame; whether the node took it.
    async fn post(&self, out: Outbound) -> bool {
        let (kind, body) = match out {
            Outbound::Frame(WsMessage::Text(text)) => {
                ("text", Bytes::from(text.as_str().to_owned()))
            }
            Outbound::Frame(WsMessage::Binary(bytes)) => ("binary", bytes),
            // Only frames are relayed (`close` is for a room's members).
            _ => return true,
        };
        let mut request = hyper::Request::post(self.url.as_str());
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
            return false;
        };
        let sent =
            tokio::time::timeout(PEER_CONNECT_TIMEOUT, self.clients.http.request(request)).await;
        matches!(sent, Ok(Ok(response)) if response.status().is_success())
    }

    /// Forgets this relay's sender, so the next send starts afresh.
    fn end(&self) {
        lock(&self.clients.relays).remove(&self.key);
    }
}
