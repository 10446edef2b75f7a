//! [`ClusterConfig`]: how a node reaches the cluster database, who it is,
//! and the bounds of its leases and connections. Every bound has a default.

use std::time::Duration;

/// A node lease lasts this long after each renewal unless configured.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// A node renews its lease this often unless configured: a third of the
/// lease, so two renewals in a row can fail before the lease lapses.
pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_millis(3_333);
/// Database connections a node keeps open at most unless configured: one
/// for the storage thread's commits, the rest shared by room loads, claims
/// and lease renewals.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// How long connecting to the database may take unless configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may run, and data sent may stay unacknowledged
/// by the database host, unless configured: past it the call fails (a
/// commit fails and its room is disposed) instead of hanging the storage
/// thread on a database that stopped answering.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a node joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The database, as a `postgres://user:password@host:port/db` URL or a
    /// `key=value` connection string. No TLS: the database is expected on a
    /// private network or loopback.
    pub url: String,
    /// This node's id, unique in the cluster and stable across restarts of
    /// the node (a restarted node claims its rooms again with new epochs).
    pub node_id: String,
    /// The address other nodes reach this node at (`host:port`); stored
    /// with the lease for routing, which is not built yet.
    pub address: String,
    /// How long a lease lasts after a renewal ([`DEFAULT_LEASE`]).
    pub lease: Duration,
    /// How often the lease is renewed ([`DEFAULT_RENEW_EVERY`]); must be
    /// shorter than `lease`.
    pub renew_every: Duration,
    /// Database connections at most ([`DEFAULT_POOL_SIZE`]).
    pub pool_size: usize,
    /// How long connecting may take ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// How long a statement may run, and sent data stay unacknowledged
    /// ([`DEFAULT_STATEMENT_TIMEOUT`]).
    pub statement_timeout: Duration,
}

impl ClusterConfig {
    /// A node `node_id` at `address` on database `url`, with the default
    /// bounds.
    pub fn new(
        url: impl Into<String>,
        node_id: impl Into<String>,
        address: impl Into<String>,
    ) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node_id: node_id.into(),
            address: address.into(),
            lease: DEFAULT_LEASE,
            renew_every: DEFAULT_RENEW_EVERY,
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    /// The same with lease length `lease`, renewed every `renew_every`.
    pub fn with_lease(mut self, lease: Duration, renew_every: Duration) -> ClusterConfig {
        self.lease = lease;
        self.renew_every = renew_every;
        self
    }

    /// Why the configuration is unusable, if it is.
    pub fn check(&self) -> Result<(), String> {
        if self.node_id.is_empty() {
            return Err("the node id is empty".into());
        }
        if self.lease < Duration::from_millis(100) {
            return Err(format!(
                "the lease ({:?}) is shorter than 100 ms",
                self.lease
            ));
        }
        if self.renew_every.is_zero() || self.renew_every >= self.lease {
            return Err(format!(
                "the renewal interval ({:?}) must be above zero and shorter than the lease ({:?})",
                self.renew_every, self.lease
            ));
        }
        if self.statement_timeout < Duration::from_millis(1) {
            return Err("the statement timeout is under 1 ms".into());
        }
        if self.pool_size == 0 {
            return Err("the pool size is 0".into());
        }
        Ok(())
    }
}
