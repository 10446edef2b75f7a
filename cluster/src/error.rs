//! [`ClusterError`]: why a cluster operation (connecting, migrating, a
//! lease, a claim) failed.

use roomhost_host::storage::StorageError;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The database refused or failed (connection, query, transaction).
    #[error("cluster database: {}", message(.0))]
    Database(#[from] postgres::Error),
    /// The database answered something this node cannot use.
    #[error("cluster database answered unexpectedly: {0}")]
    Unexpected(String),
    /// The configuration is unusable.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// Another node with a live lease owns the room.
    #[error("room {service}/{room} is owned by node {node}, whose lease is live")]
    Owned {
        /// The room's service.
        service: String,
        /// The room's id.
        room: String,
        /// The owner.
        node: String,
    },
    /// This node's lease has lapsed (or the node has not joined): it owns
    /// nothing until it joins again.
    #[error("the lease of node {0} has lapsed: it owns no rooms until it joins again")]
    LeaseLost(String),
}

impl From<ClusterError> for StorageError {
    fn from(error: ClusterError) -> StorageError {
        match error {
            ClusterError::Owned { .. } | ClusterError::LeaseLost(_) => {
                StorageError::Fenced(error.to_string())
            }
            other => StorageError::Backend(other.to_string()),
        }
    }
}

/// A database error with the server's message: `postgres::Error` shows
/// only "db error" for errors the server reported.
pub fn message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            text
        }
        None => error.to_string(),
    }
}
