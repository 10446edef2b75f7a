//! `roomhost serve --cluster URL`: rooms' stored data in PostgreSQL, this
//! server one node of a cluster (issue 16, first step). The node joins
//! (takes a lease), keeps its lease renewed on a thread, claims each
//! storage-using room when the room loads, and writes only rooms it holds
//! (fencing). Every room runs on the node that claimed it: a client or
//! request for a room another node owns is forwarded there (the host's
//! placement, [`NodePlacement`]). When the server stops it leaves: its
//! rooms are released and its lease ended, so another node can take them
//! at once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use roomhost_cluster::{ClusterConfig, Leases, NodePlacement, PostgresBackend, Renewal};

/// Cluster flags of `serve`.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Cluster")]
pub(crate) struct ClusterArgs {
    /// Store rooms in PostgreSQL (postgres://user:password@host:port/db, no TLS) as one
    /// node of a cluster, instead of the data directory. The tables are created on
    /// connect. See docs/cluster.md.
    #[arg(
        long,
        value_name = "URL",
        env = "ROOMHOST_CLUSTER",
        conflicts_with_all = ["data_dir", "no_storage"]
    )]
    cluster: Option<String>,
    /// This node's id, unique in the cluster and the same across its restarts
    /// [default: the host name].
    #[arg(
        long,
        value_name = "ID",
        env = "ROOMHOST_NODE_ID",
        requires = "cluster"
    )]
    node_id: Option<String>,
    /// The address other nodes reach this node at, stored with its lease
    /// [default: the listen address].
    #[arg(long, value_name = "HOST:PORT", requires = "cluster")]
    advertise: Option<String>,
    /// How long the node's lease lasts after each renewal [default: 10000].
    #[arg(long, value_name = "MS", requires = "cluster")]
    lease_ms: Option<u64>,
    /// How often the lease is renewed; below the lease [default: a third of it].
    #[arg(long, value_name = "MS", requires = "cluster")]
    renew_ms: Option<u64>,
}

/// A joined node: its storage backend, and its lease kept renewed while
/// this lives.
pub(crate) struct Node {
    pub(crate) leases: Arc<Leases>,
    pub(crate) backend: Arc<PostgresBackend>,
    pub(crate) placement: Arc<NodePlacement>,
    /// Whether `--advertise` was given (otherwise the bound address is).
    advertised: bool,
    renewal: Option<Renewal>,
}

impl ClusterArgs {
    /// These flags, each one not given taken from the `[cluster]` table of
    /// `roomhost.toml`.
    pub(crate) fn or_file(&self, file: Option<&crate::config_file::ClusterFile>) -> ClusterArgs {
        let Some(file) = file else {
            return self.clone();
        };
        ClusterArgs {
            cluster: self.cluster.clone().or_else(|| file.url.clone()),
            node_id: self.node_id.clone().or_else(|| file.node_id.clone()),
            advertise: self.advertise.clone().or_else(|| file.advertise.clone()),
            lease_ms: self.lease_ms.or(file.lease_ms),
            renew_ms: self.renew_ms.or(file.renew_ms),
        }
    }

    /// Whether `--cluster` is given.
    pub(crate) fn enabled(&self) -> bool {
        self.cluster.is_some()
    }

    /// Joins the cluster when `--cluster` is given (before the async
    /// runtime starts: the PostgreSQL client blocks).
    pub(crate) fn join(&self, listen: &str) -> anyhow::Result<Option<Node>> {
        let Some(url) = &self.cluster else {
            return Ok(None);
        };
        let node_id = match &self.node_id {
            Some(id) => id.clone(),
            None => host_name(),
        };
        let mut config = ClusterConfig::new(
            url.clone(),
            node_id,
            self.advertise.clone().unwrap_or_else(|| listen.to_owned()),
        );
        if let Some(ms) = self.lease_ms {
            config.lease = Duration::from_millis(ms);
            config.renew_every = config.lease / 3;
        }
        if let Some(ms) = self.renew_ms {
            config.renew_every = Duration::from_millis(ms);
        }
        let (leases, backend) =
            roomhost_cluster::connect(config, true).context("cannot join the cluster")?;
        let placement = Arc::new(
            NodePlacement::new(leases.clone()).context("cannot read the cluster's peer key")?,
        );
        let renewal = leases.keep_renewed()?;
        Ok(Some(Node {
            leases,
            backend,
            placement,
            advertised: self.advertise.is_some(),
            renewal: Some(renewal),
        }))
    }
}

impl Node {
    /// Stores the address the server bound as this node's, unless
    /// `--advertise` named one (blocking: call off the async runtime).
    pub(crate) fn bound(&self, address: std::net::SocketAddr) -> anyhow::Result<()> {
        if self.advertised {
            return Ok(());
        }
        if address.ip().is_unspecified() {
            tracing::warn!(%address, "listening on every interface without --advertise: other nodes will try this node at its own address; give --advertise HOST:PORT on a multi-machine cluster");
        }
        self.leases
            .set_address(&address.to_string())
            .context("cannot store this node's address")
    }

    /// Leaves the cluster: stops renewing, releases every room, ends the
    /// lease.
    pub(crate) fn leave(mut self) {
        drop(self.renewal.take());
        if let Err(error) = self.leases.leave() {
            tracing::warn!(%error, "cannot leave the cluster: its rooms wait for the lease to lapse");
        }
    }
}

/// The machine's host name, or "roomhost".
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "roomhost".to_owned())
}
