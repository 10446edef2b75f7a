//! [`Leases`]: this node's lease and its claims on rooms.
//!
//! - **Lease.** `roomhost.nodes` holds each node's `lease_until`, always set
//!   from the database's clock (`now() + lease`), so nodes' clocks never
//!   have to agree. [`Leases::join`] takes a lease (and forgets every
//!   claim: a node that joins again claims its rooms again, with new
//!   epochs); [`Leases::renew`] extends it only while it is still live, so
//!   a lease that lapsed stays lapsed ([`ClusterError::LeaseLost`]) until
//!   the node joins again. [`Leases::keep_renewed`] renews on a thread.
//! - **Local validity.** [`Leases::lease_valid`] answers without the
//!   database: the lease counts from when the renewal was *sent*, so the
//!   local deadline is never later than the database's (assuming both
//!   clocks advance at the same rate; they need not agree on the time).
//!   [`Leases::check_lease`] asks the database.
//! - **Claims.** [`Leases::claim`] takes a room in one statement that
//!   succeeds only when no other node with a live lease owns it, and gives
//!   it a new epoch from the sequence `roomhost.epochs`; the epoch goes
//!   into [`Claims`], where the storage backend finds it. [`Leases::release`]
//!   gives a room up at once, so another node can claim it without waiting
//!   for the lease to lapse.

use std::str::FromStr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use roomhost_host::placement::NodeView;

use crate::pool::{Conn, Pool};
use crate::{Claims, ClusterConfig, ClusterError, schema};

/// A node's lease and claims.
#[derive(Debug)]
pub struct Leases {
    pool: Pool,
    config: ClusterConfig,
    /// Where the database is, without credentials, for logs.
    target: String,
    claims: Claims,
    /// When the lease lapses by this node's clock (`None`: no lease).
    valid_until: Mutex<Option<Instant>>,
    /// The address stored with the lease (the configured one until the
    /// server knows the port it bound).
    address: Mutex<String>,
    /// This node's number, given by the database when it first joined.
    number: std::sync::atomic::AtomicU64,
    /// How many times the node had started when this process joined.
    run: std::sync::atomic::AtomicU64,
    /// Bumped each time every claim is dropped (see [`Leases::generation`]).
    generation: std::sync::atomic::AtomicU64,
}

impl Leases {
    /// Connects to the database and migrates its schema. The node has no
    /// lease until [`Leases::join`].
    pub fn connect(config: ClusterConfig) -> Result<Leases, ClusterError> {
        config.check().map_err(ClusterError::Config)?;
        let mut pg = postgres::Config::from_str(&config.url)
            .map_err(|error| ClusterError::Config(format!("the database URL: {error}")))?;
        pg.connect_timeout(config.connect_timeout);
        pg.tcp_user_timeout(config.statement_timeout);
        let timeout = format!(
            "-c statement_timeout={}",
            config.statement_timeout.as_millis()
        );
        let options = match pg.get_options() {
            Some(given) => format!("{given} {timeout}"),
            None => timeout,
        };
        pg.options(&options);
        if pg.get_application_name().is_none() {
            pg.application_name(&format!("roomhost {}", config.node_id));
        }
        let target = describe(&pg);
        let pool = Pool::new(pg, config.pool_size);
        schema::migrate(&mut *pool.get()?)?;
        Ok(Leases {
            pool,
            address: Mutex::new(config.address.clone()),
            number: std::sync::atomic::AtomicU64::new(0),
            run: std::sync::atomic::AtomicU64::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            config,
            target,
            claims: Claims::default(),
            valid_until: Mutex::new(None),
        })
    }

    /// A pooled connection.
    pub(crate) fn conn(&self) -> Result<Conn<'_>, ClusterError> {
        Ok(self.pool.get()?)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// The configuration the node connected with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Where the database is (host, port, database; no credentials).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The rooms this node holds and their epochs.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn set_valid_until(&self, until: Option<Instant>) {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = until;
    }

    /// The address other nodes reach this node at.
    pub fn address(&self) -> String {
        self.address
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many times this node had started when this process joined.
    pub fn run(&self) -> u64 {
        self.run.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes each time every claim is dropped (joined, lease lost, left):
    /// rooms running from before that have no claim any more.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn clear_claims(&self) {
        self.claims.clear();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Every live node's number and address.
    pub fn peers(&self) -> Result<Vec<(u64, String)>, ClusterError> {
        let rows = self.conn()?.query(
            "SELECT number, address FROM roomhost.nodes WHERE lease_until > now()",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                let number: i32 = row.try_get(0)?;
                Ok((u64::try_from(number).unwrap_or_default(), row.try_get(1)?))
            })
            .collect()
    }

    /// This node's number in the cluster (0 before it joins).
    pub fn number(&self) -> u64 {
        self.number.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every node: its lease left (by the database's clock), the rooms it
    /// owns and their published clients.
    pub fn nodes(&self) -> Result<Vec<NodeView>, ClusterError> {
        let rows = self.conn()?.query(
            "SELECT n.id, n.number, n.address,
                    (extract(epoch FROM n.lease_until - now()) * 1000)::bigint,
                    count(r.room), coalesce(sum(r.clients), 0)::bigint
             FROM roomhost.nodes n LEFT JOIN roomhost.rooms r ON r.node = n.id
             GROUP BY n.id ORDER BY n.number",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok(NodeView {
                    id: row.try_get(0)?,
                    number: u64::try_from(row.try_get::<_, i32>(1)?).unwrap_or_default(),
                    address: row.try_get(2)?,
                    lease_left_ms: row.try_get(3)?,
                    rooms: u64::try_from(row.try_get::<_, i64>(4)?).unwrap_or_default(),
                    clients: u64::try_from(row.try_get::<_, i64>(5)?).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Stores a new address with the lease (a server that bound port 0
    /// learns its port after joining).
    pub fn set_address(&self, address: &str) -> Result<(), ClusterError> {
        address.clone_into(&mut self.address.lock().unwrap_or_else(PoisonError::into_inner));
        self.conn()?.execute(
            "UPDATE roomhost.nodes SET address = $2 WHERE id = $1",
            &[&self.config.node_id, &address],
        )?;
        Ok(())
    }

    /// The key nodes of this cluster present to each other.
    pub fn peer_key(&self) -> Result<String, ClusterError> {
        let row = self.conn()?.query_one(
            "SELECT value FROM roomhost.secrets WHERE name = 'peer-key'",
            &[],
        )?;
        Ok(row.try_get(0)?)
    }

    /// Takes a fresh lease (registering the node, or updating its address)
    /// and forgets every claim the node held.
    pub fn join(&self) -> Result<(), ClusterError> {
        self.clear_claims();
        self.set_valid_until(None);
        let sent = Instant::now();
        // The first join of this process counts a run; joining again after
        // a lapse does not (the process keeps its client ids).
        let first = self.number() == 0;
        let row = self.conn()?.query_one(
            "INSERT INTO roomhost.nodes (id, address, lease_until, runs)
             VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond', 1)
             ON CONFLICT (id) DO UPDATE
             SET address = EXCLUDED.address, lease_until = EXCLUDED.lease_until,
                 runs = roomhost.nodes.runs + CASE WHEN $4 THEN 1 ELSE 0 END
             RETURNING number, runs",
            &[
                &self.config.node_id,
                &self.address(),
                &self.lease_ms(),
                &first,
            ],
        )?;
        let number: i32 = row.try_get(0)?;
        let runs: i64 = row.try_get(1)?;
        if first {
            self.number.store(
                u64::try_from(number).unwrap_or_default(),
                std::sync::atomic::Ordering::Relaxed,
            );
            self.run.store(
                u64::try_from(runs).unwrap_or_default(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        self.set_valid_until(Some(sent + self.config.lease));
        tracing::info!(node = %self.config.node_id, database = %self.target, lease = ?self.config.lease, "joined the cluster");
        Ok(())
    }

    /// Extends a live lease by the lease length from now. A lease that has
    /// lapsed is not extended: every claim is forgotten and
    /// [`ClusterError::LeaseLost`] returned (join again to serve again).
    pub fn renew(&self) -> Result<(), ClusterError> {
        let sent = Instant::now();
        let renewed = self.conn()?.execute(
            "UPDATE roomhost.nodes SET lease_until = now() + $2::bigint * interval '1 millisecond'
             WHERE id = $1 AND lease_until > now()",
            &[&self.config.node_id, &self.lease_ms()],
        )?;
        if renewed == 0 {
            self.lost();
            return Err(ClusterError::LeaseLost(self.config.node_id.clone()));
        }
        self.set_valid_until(Some(sent + self.config.lease));
        Ok(())
    }

    fn lost(&self) {
        self.set_valid_until(None);
        self.clear_claims();
    }

    /// Whether the lease is still valid by this node's clock (no database
    /// round trip; errs on the side of "no").
    pub fn lease_valid(&self) -> bool {
        self.valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Whether the lease will still be valid `margin` from now, by this
    /// node's clock: a node that cannot say so stops serving rooms before
    /// the lease lapses.
    pub fn lease_valid_for(&self, margin: std::time::Duration) -> bool {
        self.valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() + margin < until)
    }

    /// Where room `room` of `service` runs: claimed for this node when no
    /// live node holds it ([`Leases::claim`]), or the owner and its
    /// address.
    pub fn locate(&self, service: &str, room: &str) -> Result<Location, ClusterError> {
        // Twice: the owner may release the room between the claim and the
        // lookup.
        for _ in 0..2 {
            match self.claim(service, room) {
                Ok(epoch) => return Ok(Location::Here { epoch }),
                Err(ClusterError::Owned { .. }) => {}
                Err(other) => return Err(other),
            }
            let owner = self.conn()?.query_opt(
                "SELECT n.id, n.address FROM roomhost.rooms r
                 JOIN roomhost.nodes n ON n.id = r.node
                 WHERE r.service = $1 AND r.room = $2",
                &[&service, &room],
            )?;
            if let Some(row) = owner {
                return Ok(Location::Elsewhere {
                    node: row.try_get(0)?,
                    address: row.try_get(1)?,
                });
            }
        }
        Err(ClusterError::Unexpected(format!(
            "room {service}/{room} changed owners twice while being located: retry"
        )))
    }

    /// Which live node owns room `room` of `service`, without claiming it:
    /// `None` when no node with a live lease does.
    pub fn live_owner(&self, service: &str, room: &str) -> Result<Option<Location>, ClusterError> {
        let row = self.conn()?.query_opt(
            "SELECT n.id, n.address, r.epoch FROM roomhost.rooms r
             JOIN roomhost.nodes n ON n.id = r.node
             WHERE r.service = $1 AND r.room = $2 AND n.lease_until > now()",
            &[&service, &room],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let node: String = row.try_get(0)?;
        if node == self.config.node_id {
            return Ok(Some(Location::Here {
                epoch: row.try_get(2)?,
            }));
        }
        Ok(Some(Location::Elsewhere {
            node,
            address: row.try_get(1)?,
        }))
    }

    /// Stores the lobby entries of rooms this node owns (service, room,
    /// clients, info); rows of rooms it no longer owns are left alone.
    pub fn publish(&self, entries: &[(String, String, i32, String)]) -> Result<(), ClusterError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut services = Vec::with_capacity(entries.len());
        let mut rooms = Vec::with_capacity(entries.len());
        let mut clients = Vec::with_capacity(entries.len());
        let mut infos = Vec::with_capacity(entries.len());
        for (service, room, count, info) in entries {
            services.push(service.as_str());
            rooms.push(room.as_str());
            clients.push(*count);
            infos.push(info.as_str());
        }
        self.conn()?.execute(
            "UPDATE roomhost.rooms r SET clients = u.clients, info = u.info
             FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[]) AS u(service, room, clients, info)
             WHERE r.service = u.service AND r.room = u.room AND r.node = $5",
            &[&services, &rooms, &clients, &infos, &self.config.node_id],
        )?;
        Ok(())
    }

    /// The published entries of the rooms of `services` that other nodes
    /// with a live lease own: service, room, clients, info.
    pub fn others(
        &self,
        services: &[String],
    ) -> Result<Vec<(String, String, i32, String)>, ClusterError> {
        let rows = self.conn()?.query(
            "SELECT r.service, r.room, r.clients, r.info FROM roomhost.rooms r
             JOIN roomhost.nodes n ON n.id = r.node
             WHERE r.node <> $1 AND n.lease_until > now() AND r.service = ANY($2)
               AND r.clients IS NOT NULL",
            &[&self.config.node_id, &services],
        )?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get::<_, Option<String>>(3)?
                        .unwrap_or_else(|| "null".into()),
                ))
            })
            .collect()
    }

    /// Forgets this node's claim on a room at once, returning its epoch;
    /// [`Leases::release_epoch`] then deletes the ownership row.
    pub fn forget(&self, service: &str, room: &str) -> Option<i64> {
        self.claims.remove(service, room)
    }

    /// Deletes the ownership row of a room this node held with `epoch`, if
    /// it still does (a newer claim, of this node or another, stays).
    pub fn release_epoch(
        &self,
        service: &str,
        room: &str,
        epoch: i64,
    ) -> Result<bool, ClusterError> {
        let deleted = self.conn()?.execute(
            "DELETE FROM roomhost.rooms
             WHERE service = $1 AND room = $2 AND node = $3 AND epoch = $4",
            &[&service, &room, &self.config.node_id, &epoch],
        )?;
        Ok(deleted == 1)
    }

    /// Whether the database holds this node's lease as live now.
    pub fn check_lease(&self) -> Result<bool, ClusterError> {
        let row = self.conn()?.query_opt(
            "SELECT lease_until > now() FROM roomhost.nodes WHERE id = $1",
            &[&self.config.node_id],
        )?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => false,
        })
    }

    /// Claims room `room` of `service` for this node: succeeds when no node
    /// owns it, when its owner's lease has lapsed, or when this node owns
    /// it; returns the epoch this node holds it with. A room this node
    /// already holds keeps its epoch; otherwise the epoch is new, higher
    /// than any before, and every write made under an older one is refused
    /// from then on. Fails with [`ClusterError::Owned`] when another node
    /// with a live lease owns the room, and [`ClusterError::LeaseLost`]
    /// when this node's own lease is not live.
    ///
    /// Load the room's stored data only after claiming it: every write of
    /// an older owner is then either in the database or refused.
    pub fn claim(&self, service: &str, room: &str) -> Result<i64, ClusterError> {
        if let Some(epoch) = self.claims.epoch(service, room) {
            return Ok(epoch);
        }
        let node = &self.config.node_id;
        let mut conn = self.conn()?;
        // One statement: the row lock ON CONFLICT takes serialises it with
        // other claims and with commits (which lock the row FOR SHARE).
        let claimed = conn.query_opt(
            "INSERT INTO roomhost.rooms AS r (service, room, node, epoch)
             SELECT $1, $2, $3, nextval('roomhost.epochs')
             WHERE EXISTS (SELECT 1 FROM roomhost.nodes WHERE id = $3 AND lease_until > now())
             ON CONFLICT (service, room) DO UPDATE
             SET node = EXCLUDED.node, epoch = EXCLUDED.epoch
             WHERE r.node = EXCLUDED.node OR NOT EXISTS (
                 SELECT 1 FROM roomhost.nodes n WHERE n.id = r.node AND n.lease_until > now())
             RETURNING r.epoch",
            &[&service, &room, node],
        )?;
        if let Some(row) = claimed {
            let epoch: i64 = row.try_get(0)?;
            self.claims.insert(service, room, epoch);
            tracing::debug!(service, room, epoch, "claimed");
            return Ok(epoch);
        }
        drop(conn);
        if !self.check_lease()? {
            self.lost();
            return Err(ClusterError::LeaseLost(node.clone()));
        }
        let owner = self.owner(service, room)?;
        Err(ClusterError::Owned {
            service: service.to_owned(),
            room: room.to_owned(),
            node: owner.map_or_else(|| "(none: retry)".to_owned(), |(node, _)| node),
        })
    }

    /// Which node owns a room and with which epoch, as the database says
    /// (whether or not that node's lease is live).
    pub fn owner(&self, service: &str, room: &str) -> Result<Option<(String, i64)>, ClusterError> {
        let row = self.conn()?.query_opt(
            "SELECT node, epoch FROM roomhost.rooms WHERE service = $1 AND room = $2",
            &[&service, &room],
        )?;
        row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .transpose()
    }

    /// Gives a room up: forgets the claim and deletes the ownership row if
    /// it is still this node's claim, so another node can claim it at once.
    /// Whether the database still held this node's claim.
    pub fn release(&self, service: &str, room: &str) -> Result<bool, ClusterError> {
        let Some(epoch) = self.forget(service, room) else {
            return Ok(false);
        };
        self.release_epoch(service, room, epoch)
    }

    /// Leaves the cluster: releases every room this node still owns and
    /// ends its lease now, so others can claim its rooms at once.
    pub fn leave(&self) -> Result<(), ClusterError> {
        self.clear_claims();
        self.set_valid_until(None);
        let mut conn = self.conn()?;
        let mut txn = conn.transaction()?;
        txn.execute(
            "DELETE FROM roomhost.rooms WHERE node = $1",
            &[&self.config.node_id],
        )?;
        txn.execute(
            "UPDATE roomhost.nodes SET lease_until = now() WHERE id = $1",
            &[&self.config.node_id],
        )?;
        txn.commit()?;
        tracing::info!(node = %self.config.node_id, "left the cluster");
        Ok(())
    }

    /// Renews the lease every `renew_every` on a thread until the returned
    /// [`Renewal`] is dropped. A lease found lapsed is taken again
    /// ([`Leases::join`]), without its claims: rooms still running on
    /// this node then have their writes refused until they are claimed
    /// again. A renewal that fails (database unreachable) is retried at the
    /// next tick; [`Leases::lease_valid`] turns false when the lease runs
    /// out meanwhile.
    pub fn keep_renewed(self: &Arc<Leases>) -> Result<Renewal, ClusterError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let leases = self.clone();
        let every = self.config.renew_every;
        let thread = std::thread::Builder::new()
            .name("roomhost-lease".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    match leases.renew() {
                        Ok(()) => {}
                        Err(ClusterError::LeaseLost(node)) => {
                            tracing::error!(%node, "the lease lapsed: its rooms are fenced; joining again");
                            if let Err(error) = leases.join() {
                                tracing::error!(%error, "cannot join the cluster again");
                            }
                        }
                        Err(error) => tracing::warn!(%error, "lease renewal failed"),
                    }
                }
            })
            .map_err(|error| {
                ClusterError::Config(format!("cannot start the lease thread: {error}"))
            })?;
        Ok(Renewal {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Where a room runs, as [`Leases::locate`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// This node holds it, with this epoch.
    Here {
        /// The fencing epoch of this node's claim.
        epoch: i64,
    },
    /// Another node with a live lease owns it.
    Elsewhere {
        /// The owner's id.
        node: String,
        /// The owner's address.
        address: String,
    },
}

/// Keeps a lease renewed; stops (and waits for the thread) when dropped.
#[derive(Debug)]
pub struct Renewal {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Host, port and database of a connection config, for logs.
fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres://{host}:{port}/{db}")
}
