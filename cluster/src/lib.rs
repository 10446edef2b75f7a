//! roomhost beyond one machine (issue 16), the foundation: PostgreSQL holds
//! the nodes of a cluster, which node owns which room, and the rooms'
//! stored data.
//!
//! - [`config`]: how a node reaches the database and its bounds (lease
//!   length, renewal interval, pool size), each with a default.
//! - [`schema`]: the tables, created and migrated by the node on connect.
//! - [`leases`]: node leases renewed on the database's clock, room claims
//!   with fencing epochs, release, and [`claims::Claims`], the epochs this
//!   node holds.
//! - [`placement`]: [`NodePlacement`], the host's room placement on the
//!   leases: claim a room or name its owner, release it when it ends, and
//!   stop serving before the lease can lapse.
//! - [`backend`]: [`PostgresBackend`], the host's storage
//!   [`Backend`](roomhost_host::storage::Backend) on PostgreSQL, whose
//!   writes are fenced by the epochs in [`claims::Claims`].
//! - `testing` (feature `testing`): a throwaway PostgreSQL server for tests.
//!
//! See DESIGN.md, "Beyond one machine", and docs/cluster.md.

pub mod backend;
pub mod claims;
pub mod config;
pub mod error;
pub mod leases;
pub mod placement;
mod pool;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::PostgresBackend;
pub use claims::Claims;
pub use config::ClusterConfig;
pub use error::ClusterError;
pub use leases::{Leases, Location, Renewal};
pub use placement::NodePlacement;

use std::sync::Arc;

/// Connects a node to the cluster database: migrates the schema, joins
/// (takes a lease) and returns the node's leases with a storage backend
/// fenced by them. The backend claims each room when the host loads it
/// (`claim_on_load`), which is how one node serves without the host
/// claiming rooms itself.
pub fn connect(
    config: ClusterConfig,
    claim_on_load: bool,
) -> Result<(Arc<Leases>, Arc<PostgresBackend>), ClusterError> {
    let leases = Arc::new(Leases::connect(config)?);
    leases.join()?;
    let backend = Arc::new(PostgresBackend::new(leases.clone(), claim_on_load));
    Ok((leases, backend))
}
