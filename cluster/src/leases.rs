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

    /// Takes a fresh lease (registering the node, or updating its address)
    /// and forgets every claim the node held.
    pub fn join(&self) -> Result<(), ClusterError> {
        self.claims.clear();
        self.set_valid_until(None);
        let sent = Instant::now();
        self.conn()?.execute(
            "INSERT INTO roomhost.nodes (id, address, lease_until)
             VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE
             SET address = EXCLUDED.address, lease_until = EXCLUDED.lease_until",
            &[&self.config.node_id, &self.config.address, &self.lease_ms()],
        )?;
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
        self.claims.clear();
    }

    /// Whether the lease is still valid by this node's clock (no database
    /// round trip; errs on the side of "no").
    pub fn lease_valid(&self) -> bool {
        self.valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
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
        let Some(epoch) = self.claims.remove(service, room) else {
            return Ok(false);
        };
        let deleted = self.conn()?.execute(
            "DELETE FROM roomhost.rooms
             WHERE service = $1 AND room = $2 AND node = $3 AND epoch = $4",
            &[&service, &room, &self.config.node_id, &epoch],
        )?;
        Ok(deleted == 1)
    }

    /// Leaves the cluster: releases every room this node still owns and
    /// ends its lease now, so others can claim its rooms at once.
    pub fn leave(&self) -> Result<(), ClusterError> {
        self.claims.clear();
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
