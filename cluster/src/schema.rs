//! The cluster's tables, in the `roomhost` schema of the database, created
//! and migrated by every node when it connects ([`migrate`]). Migrations
//! are numbered, applied in order once each, recorded in
//! `roomhost.migrations`, and serialised among nodes starting at once by a
//! transaction-scoped advisory lock: starting many nodes together is safe,
//! and connecting again changes nothing.
//!
//! Ownership: `nodes(id, address, lease_until, number)`, `rooms(service, room, node,
//! epoch, clients, info)` (the last two: the room's entry as its node last
//! published it for lobbies) and the sequence `epochs`. Storage, as the embedded backend has
//! it: `entries(service, room, key, value)`, `timers(service, room, id,
//! due_ms)` and `room_data(service, room, entries, bytes, timers)`, the
//! per-room summary every commit keeps in step. `secrets(name, value)`: the
//! peer key nodes authenticate forwarded requests with. Text columns use the "C"
//! collation so rooms list in byte order, as the embedded store lists them.

use postgres::Client;

use crate::ClusterError;

/// The advisory lock key migrations hold ("roomhost" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x726f_6f6d_686f_7374;

/// Each migration, in order; its number is its index plus one. Never edit
/// one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: ownership and storage.
    r#"
    CREATE SEQUENCE roomhost.epochs;
    CREATE TABLE roomhost.nodes (
        id text COLLATE "C" PRIMARY KEY,
        address text NOT NULL,
        lease_until timestamptz NOT NULL
    );
    CREATE TABLE roomhost.rooms (
        service text COLLATE "C" NOT NULL,
        room text COLLATE "C" NOT NULL,
        node text COLLATE "C" NOT NULL,
        epoch bigint NOT NULL,
        PRIMARY KEY (service, room)
    );
    CREATE INDEX rooms_by_node ON roomhost.rooms (node);
    CREATE TABLE roomhost.entries (
        service text COLLATE "C" NOT NULL,
        room text COLLATE "C" NOT NULL,
        key bytea NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (service, room, key)
    );
    CREATE TABLE roomhost.timers (
        service text COLLATE "C" NOT NULL,
        room text COLLATE "C" NOT NULL,
        id bigint NOT NULL,
        due_ms bigint NOT NULL,
        PRIMARY KEY (service, room, id)
    );
    CREATE TABLE roomhost.room_data (
        service text COLLATE "C" NOT NULL,
        room text COLLATE "C" NOT NULL,
        entries bigint NOT NULL,
        bytes bigint NOT NULL,
        timers bigint NOT NULL,
        PRIMARY KEY (service, room)
    );
    "#,
    // 2: the cluster's shared secrets (the key nodes present to each other
    // on forwarded requests), made once by the first node.
    r#"
    CREATE TABLE roomhost.secrets (
        name text COLLATE "C" PRIMARY KEY,
        value text NOT NULL
    );
    INSERT INTO roomhost.secrets (name, value) VALUES (
        'peer-key',
        replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
    );
    "#,
    // 3: each owned room's entry as lobbies list it, published by its node.
    r#"
    ALTER TABLE roomhost.rooms ADD COLUMN clients integer, ADD COLUMN info text;
    "#,
    // 4: each node's number, the high bits of its clients' ids, and how
    // many times it started (the next bits, so a restart's ids are new).
    r#"
    ALTER TABLE roomhost.nodes ADD COLUMN number integer GENERATED ALWAYS AS IDENTITY,
        ADD COLUMN runs bigint NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX nodes_by_number ON roomhost.nodes (number);
    "#,
];

/// The schema version this build expects.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Creates or migrates the tables; the version the database was at.
pub fn migrate(client: &mut Client) -> Result<i32, ClusterError> {
    let mut txn = client.transaction()?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    txn.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS roomhost;
         CREATE TABLE IF NOT EXISTS roomhost.migrations (
             version integer PRIMARY KEY,
             applied timestamptz NOT NULL DEFAULT now()
         );",
    )?;
    let row = txn.query_one(
        "SELECT coalesce(max(version), 0) FROM roomhost.migrations",
        &[],
    )?;
    let was: i32 = row.try_get(0)?;
    if was > VERSION {
        return Err(ClusterError::Unexpected(format!(
            "the database schema is at version {was}, newer than this build's {VERSION}: \
             upgrade this node"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(was.max(0) as usize) {
        let version = index as i32 + 1;
        txn.batch_execute(sql)?;
        txn.execute(
            "INSERT INTO roomhost.migrations (version) VALUES ($1)",
            &[&version],
        )?;
        tracing::info!(version, "cluster schema migrated");
    }
    txn.commit()?;
    Ok(was)
}
