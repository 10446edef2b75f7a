//! [`PostgresBackend`]: the host's storage [`Backend`] on the cluster
//! database, with every write fenced.
//!
//! **The fencing rule.** A commit writes a room only under the epoch this
//! node holds it with ([`Claims`](crate::Claims), filled by
//! [`Leases::claim`]). In the commit's transaction the backend checks that
//! this node's lease is live and locks each room's ownership row
//! (`FOR SHARE`); if any room's row is missing or carries another epoch (a
//! newer owner claimed it), or the node holds no claim on it, the whole
//! transaction is rolled back and the commit fails with
//! [`StorageError::Fenced`]. The row lock orders the commit with any claim
//! of the same room: a claim waits for a commit in progress, and a commit
//! after the claim sees the new epoch. So a node that lost a room (paused,
//! partitioned, its lease lapsed) never writes over the new owner's state,
//! and the new owner, loading after its claim, sees every write the old
//! owner committed.
//!
//! A commit is one transaction for the whole group (the trait's contract:
//! all or nothing), so one fenced room fails its group.
//!
//! With `claim_on_load`, [`Backend::load`] first claims the room, so a node
//! whose host does not claim rooms itself still owns every room it runs
//! (the host loads a storage-using room when it starts).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use postgres::{IsolationLevel, Transaction};
use roomhost_host::storage::{
    Backend, EmbeddedBackend, RoomCommit, StorageError, StoredRoom, StoredRoomSummary,
};

use crate::Leases;

/// Stored rooms in PostgreSQL, written under this node's claims.
#[derive(Debug)]
pub struct PostgresBackend {
    leases: Arc<Leases>,
    claim_on_load: bool,
}

fn failed(error: postgres::Error) -> StorageError {
    StorageError::Backend(format!("PostgreSQL: {}", crate::error::message(&error)))
}

/// A read-only transaction that sees one consistent snapshot.
fn snapshot(client: &mut postgres::Client) -> Result<Transaction<'_>, StorageError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(failed)
}

/// A timer id as the database's signed bigint, bit for bit.
fn timer_id(id: u64) -> i64 {
    i64::from_be_bytes(id.to_be_bytes())
}

fn timer_id_back(id: i64) -> u64 {
    u64::from_be_bytes(id.to_be_bytes())
}

fn signed(value: u64, what: &str) -> Result<i64, StorageError> {
    i64::try_from(value).map_err(|_| StorageError::Backend(format!("{what} {value} is too large")))
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl PostgresBackend {
    /// A backend writing under `leases`' claims; with `claim_on_load`,
    /// loading a room claims it.
    pub fn new(leases: Arc<Leases>, claim_on_load: bool) -> PostgresBackend {
        PostgresBackend {
            leases,
            claim_on_load,
        }
    }

    /// The node's leases and claims.
    pub fn leases(&self) -> &Arc<Leases> {
        &self.leases
    }

    /// Refuses the transaction unless this node's lease is live and it
    /// holds every room in `commits` under the epoch the database has.
    fn check_fence(
        &self,
        txn: &mut Transaction<'_>,
        commits: &[RoomCommit],
    ) -> Result<(), StorageError> {
        let node = self.leases.node_id();
        let live: Option<bool> = txn
            .query_opt(
                "SELECT lease_until > now() FROM roomhost.nodes WHERE id = $1",
                &[&node],
            )
            .map_err(failed)?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(failed)?;
        if live != Some(true) {
            return Err(StorageError::Fenced(format!(
                "the lease of node {node} has lapsed"
            )));
        }
        let services: Vec<&str> = commits.iter().map(|c| &*c.service).collect();
        let rooms: Vec<&str> = commits.iter().map(|c| &*c.room).collect();
        let rows = txn
            .query(
                "SELECT service, room, node, epoch FROM roomhost.rooms
                 WHERE (service, room) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 FOR SHARE",
                &[&services, &rooms],
            )
            .map_err(failed)?;
        let mut owners: HashMap<(String, String), (String, i64)> = HashMap::new();
        for row in rows {
            owners.insert(
                (
                    row.try_get(0).map_err(failed)?,
                    row.try_get(1).map_err(failed)?,
                ),
                (
                    row.try_get(2).map_err(failed)?,
                    row.try_get(3).map_err(failed)?,
                ),
            );
        }
        for commit in commits {
            let (service, room) = (&*commit.service, &*commit.room);
            let Some(mine) = self.leases.claims().epoch(service, room) else {
                return Err(StorageError::Fenced(format!(
                    "node {node} holds no claim on room {service}/{room}"
                )));
            };
            match owners.get(&(service.to_owned(), room.to_owned())) {
                Some((_, epoch)) if *epoch == mine => {}
                Some((owner, epoch)) => {
                    return Err(StorageError::Fenced(format!(
                        "room {service}/{room} was claimed by node {owner} with epoch {epoch}, \
                         newer than this node's {mine}"
                    )));
                }
                None => {
                    return Err(StorageError::Fenced(format!(
                        "room {service}/{room} is no longer claimed (this node's epoch {mine})"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Applies one room's changes and keeps its summary in step.
    fn apply(txn: &mut Transaction<'_>, commit: &RoomCommit) -> Result<(), StorageError> {
        let (service, room) = (&*commit.service, &*commit.room);
        let summary = txn
            .query_opt(
                "SELECT entries, bytes, timers FROM roomhost.room_data
                 WHERE service = $1 AND room = $2 FOR UPDATE",
                &[&service, &room],
            )
            .map_err(failed)?;
        let (mut count, mut bytes, mut timers): (i64, i64, i64) = match summary {
            Some(row) => (
                row.try_get(0).map_err(failed)?,
                row.try_get(1).map_err(failed)?,
                row.try_get(2).map_err(failed)?,
            ),
            None => (0, 0, 0),
        };
        let put = txn
            .prepare(
                "WITH old AS (SELECT octet_length(value) AS len FROM roomhost.entries
                              WHERE service = $1 AND room = $2 AND key = $3),
                      up AS (INSERT INTO roomhost.entries (service, room, key, value)
                             VALUES ($1, $2, $3, $4)
                             ON CONFLICT (service, room, key) DO UPDATE SET value = EXCLUDED.value)
                 SELECT len FROM old",
            )
            .map_err(failed)?;
        let delete = txn
            .prepare(
                "DELETE FROM roomhost.entries WHERE service = $1 AND room = $2 AND key = $3
                 RETURNING octet_length(value)",
            )
            .map_err(failed)?;
        for (key, value) in &commit.changes.entries {
            let old = match value {
                Some(value) => txn.query_opt(&put, &[&service, &room, key, value]),
                None => txn.query_opt(&delete, &[&service, &room, key]),
            }
            .map_err(failed)?
            .map(|row| row.try_get::<_, i32>(0))
            .transpose()
            .map_err(failed)?;
            let key_bytes = signed(key.len() as u64, "a key of")?;
            if let Some(old) = old {
                count -= 1;
                bytes -= key_bytes + i64::from(old);
            }
            if let Some(value) = value {
                count += 1;
                bytes += key_bytes + signed(value.len() as u64, "a value of")?;
            }
        }
        for (id, due) in &commit.changes.timers {
            let id = timer_id(*id);
            let existed = match due {
                Some(due) => {
                    let due = signed(*due, "a timer due at")?;
                    let row = txn
                        .query_one(
                            "WITH old AS (SELECT 1 FROM roomhost.timers
                                          WHERE service = $1 AND room = $2 AND id = $3),
                                  up AS (INSERT INTO roomhost.timers (service, room, id, due_ms)
                                         VALUES ($1, $2, $3, $4)
                                         ON CONFLICT (service, room, id)
                                         DO UPDATE SET due_ms = EXCLUDED.due_ms)
                             SELECT count(*) FROM old",
                            &[&service, &room, &id, &due],
                        )
                        .map_err(failed)?;
                    row.try_get::<_, i64>(0).map_err(failed)? > 0
                }
                None => {
                    txn.execute(
                        "DELETE FROM roomhost.timers WHERE service = $1 AND room = $2 AND id = $3",
                        &[&service, &room, &id],
                    )
                    .map_err(failed)?
                        > 0
                }
            };
            timers = timers - i64::from(existed) + i64::from(due.is_some());
        }
        if count == 0 && timers == 0 {
            txn.execute(
                "DELETE FROM roomhost.room_data WHERE service = $1 AND room = $2",
                &[&service, &room],
            )
            .map_err(failed)?;
        } else {
            txn.execute(
                "INSERT INTO roomhost.room_data (service, room, entries, bytes, timers)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (service, room) DO UPDATE
                 SET entries = EXCLUDED.entries, bytes = EXCLUDED.bytes, timers = EXCLUDED.timers",
                &[&service, &room, &count, &bytes, &timers],
            )
            .map_err(failed)?;
        }
        Ok(())
    }

    /// Every stored room's data, read in one snapshot.
    fn everything(&self) -> Result<Vec<RoomCommit>, StorageError> {
        let mut conn = self.leases.conn()?;
        let mut txn = snapshot(&mut conn)?;
        let mut rooms: Vec<RoomCommit> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        let mut slot = |service: String, room: String| -> usize {
            *index
                .entry((service.clone(), room.clone()))
                .or_insert_with(|| {
                    rooms.push(RoomCommit {
                        service: service.into(),
                        room: room.into(),
                        changes: Default::default(),
                    });
                    rooms.len() - 1
                })
        };
        let mut found = Vec::new();
        for row in txn
            .query(
                "SELECT service, room, key, value FROM roomhost.entries",
                &[],
            )
            .map_err(failed)?
        {
            let at = slot(
                row.try_get(0).map_err(failed)?,
                row.try_get(1).map_err(failed)?,
            );
            found.push((
                at,
                Some((
                    row.try_get::<_, Vec<u8>>(2).map_err(failed)?,
                    row.try_get::<_, Vec<u8>>(3).map_err(failed)?,
                )),
                None,
            ));
        }
        for row in txn
            .query("SELECT service, room, id, due_ms FROM roomhost.timers", &[])
            .map_err(failed)?
        {
            let at = slot(
                row.try_get(0).map_err(failed)?,
                row.try_get(1).map_err(failed)?,
            );
            let id = timer_id_back(row.try_get(2).map_err(failed)?);
            let due = unsigned(row.try_get(3).map_err(failed)?);
            found.push((at, None, Some((id, due))));
        }
        txn.commit().map_err(failed)?;
        for (at, entry, timer) in found {
            if let Some((key, value)) = entry {
                rooms[at].changes.entries.insert(key, Some(value));
            }
            if let Some((id, due)) = timer {
                rooms[at].changes.timers.insert(id, Some(due));
            }
        }
        Ok(rooms)
    }
}

impl Backend for PostgresBackend {
    fn load(&self, service: &str, room: &str) -> Result<StoredRoom, StorageError> {
        if self.claim_on_load {
            self.leases.claim(service, room)?;
        }
        let mut conn = self.leases.conn()?;
        let mut txn = snapshot(&mut conn)?;
        let mut stored = StoredRoom::default();
        for row in txn
            .query(
                "SELECT key, value FROM roomhost.entries
                 WHERE service = $1 AND room = $2 ORDER BY key",
                &[&service, &room],
            )
            .map_err(failed)?
        {
            stored.entries.push((
                row.try_get(0).map_err(failed)?,
                row.try_get(1).map_err(failed)?,
            ));
        }
        for row in txn
            .query(
                "SELECT id, due_ms FROM roomhost.timers
                 WHERE service = $1 AND room = $2 ORDER BY id",
                &[&service, &room],
            )
            .map_err(failed)?
        {
            let id: i64 = row.try_get(0).map_err(failed)?;
            let due: i64 = row.try_get(1).map_err(failed)?;
            stored.timers.push((timer_id_back(id), unsigned(due)));
        }
        txn.commit().map_err(failed)?;
        Ok(stored)
    }

    /// From the per-room summary, without claiming the room: any node may
    /// ask (an HTTP request deciding whether a stored room may wake).
    fn has_data(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        let row = self
            .leases
            .conn()?
            .query_opt(
                "SELECT 1 FROM roomhost.room_data
                 WHERE service = $1 AND room = $2 AND (entries > 0 OR timers > 0)",
                &[&service, &room],
            )
            .map_err(failed)?;
        Ok(row.is_some())
    }

    fn commit(&self, commits: &[RoomCommit]) -> Result<(), StorageError> {
        if commits.is_empty() {
            return Ok(());
        }
        let mut conn = self.leases.conn()?;
        let mut txn = conn.transaction().map_err(failed)?;
        self.check_fence(&mut txn, commits)?;
        for commit in commits {
            Self::apply(&mut txn, commit)?;
        }
        // Durable when this returns: PostgreSQL flushes its WAL on commit
        // (with the default `synchronous_commit = on`).
        txn.commit().map_err(failed)
    }

    fn rooms(&self) -> Result<Vec<StoredRoomSummary>, StorageError> {
        let rows = self
            .leases
            .conn()?
            .query(
                "SELECT d.service, d.room, d.entries, d.bytes, d.timers,
                        (SELECT min(t.due_ms) FROM roomhost.timers t
                         WHERE t.service = d.service AND t.room = d.room)
                 FROM roomhost.room_data d ORDER BY d.service, d.room",
                &[],
            )
            .map_err(failed)?;
        rows.into_iter()
            .map(|row| {
                Ok(StoredRoomSummary {
                    service: row.try_get(0).map_err(failed)?,
                    room: row.try_get(1).map_err(failed)?,
                    entries: unsigned(row.try_get(2).map_err(failed)?),
                    bytes: unsigned(row.try_get(3).map_err(failed)?),
                    timers: unsigned(row.try_get(4).map_err(failed)?),
                    next_timer_ms: row
                        .try_get::<_, Option<i64>>(5)
                        .map_err(failed)?
                        .map(unsigned),
                })
            })
            .collect()
    }

    /// Refused while another node with a live lease owns the room.
    fn delete_room(&self, service: &str, room: &str) -> Result<bool, StorageError> {
        let node = self.leases.node_id();
        let mut conn = self.leases.conn()?;
        let mut txn = conn.transaction().map_err(failed)?;
        let owner = txn
            .query_opt(
                "SELECT r.node, EXISTS (SELECT 1 FROM roomhost.nodes n
                                        WHERE n.id = r.node AND n.lease_until > now())
                 FROM roomhost.rooms r WHERE r.service = $1 AND r.room = $2 FOR UPDATE",
                &[&service, &room],
            )
            .map_err(failed)?;
        if let Some(row) = owner {
            let (owner, live): (String, bool) = (
                row.try_get(0).map_err(failed)?,
                row.try_get(1).map_err(failed)?,
            );
            if live && owner != node {
                return Err(StorageError::Fenced(format!(
                    "room {service}/{room} is owned by node {owner}, whose lease is live"
                )));
            }
        }
        for table in ["entries", "timers"] {
            txn.execute(
                &format!("DELETE FROM roomhost.{table} WHERE service = $1 AND room = $2"),
                &[&service, &room],
            )
            .map_err(failed)?;
        }
        let existed = txn
            .execute(
                "DELETE FROM roomhost.room_data WHERE service = $1 AND room = $2",
                &[&service, &room],
            )
            .map_err(failed)?;
        txn.commit().map_err(failed)?;
        Ok(existed > 0)
    }

    /// Copies everything stored, read in one snapshot, into a new embedded
    /// (redb) store file `to`, which `roomhost serve --data-dir` can use.
    fn backup(&self, to: &Path) -> Result<u64, StorageError> {
        if to.exists() {
            return Err(StorageError::Backend(format!(
                "{} exists: a backup goes to a new file",
                to.display()
            )));
        }
        let rooms = self.everything()?;
        let staging = to.with_extension("backup-in-progress");
        let copied = (|| {
            let store = EmbeddedBackend::open(&staging)?;
            for chunk in rooms.chunks(256) {
                store.commit(chunk)?;
            }
            drop(store);
            std::fs::rename(staging.join(roomhost_host::storage::FILE_NAME), to)
                .map_err(|error| StorageError::Backend(format!("cannot move the backup: {error}")))
        })();
        let _ = std::fs::remove_dir_all(&staging);
        copied.map(|()| rooms.len() as u64)
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "{} (PostgreSQL, node {})",
            self.leases.target(),
            self.leases.node_id()
        )
    }
}
