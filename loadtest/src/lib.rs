//! `roomhost-loadtest`: a WebSocket load generator for rooms that broadcast.
//!
//! [`run`] opens `rooms × clients_per_room` connections to `{url}/{prefix}{i}`, has every
//! client send frames that carry their send time, sender and sequence, and measures at every
//! receiver how long each frame took to arrive. At a fixed rate the send time is the one the
//! client's schedule set, not the moment the frame went out (as wrk2 does), so a client held
//! back by a slow server or a busy core shows the wait as latency rather than hiding it
//! (coordinated omission); sends skipped because a client fell over a second behind count
//! as lost. It assumes the room broadcasts every frame to
//! all of its clients, the sender included; frames that are not loadtest frames (greetings,
//! replies) are counted as "other frames" and otherwise ignored. The [`Report`] gives
//! connections, send and delivery rates, expected against actual deliveries, latency
//! percentiles, errors by kind and server closes by code.
//!
//! Every run is bounded: connections, phase lengths, payload size and rate are capped (see
//! [`config`]), and only loopback targets are accepted unless
//! [`allow_remote`](LoadConfig::allow_remote) is set.
//!
//! ```no_run
//! use std::time::Duration;
//! use roomhost_loadtest::{LoadConfig, run};
//!
//! # async fn example() -> Result<(), roomhost_loadtest::LoadError> {
//! let config = LoadConfig {
//!     url: "ws://127.0.0.1:8080/ws/fanout".into(),
//!     rooms: 50,
//!     clients_per_room: 10,
//!     rate: 20.0,
//!     duration: Duration::from_secs(10),
//!     ..LoadConfig::default()
//! };
//! let report = run(config, |progress| eprintln!("{progress}")).await?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! Modules: [`config`] (scenario and bounds), `client` (one simulated client), `stats`
//! (histogram and counters), [`report`] (progress and final report), [`payload`] (the frame
//! format), `timeline` (time base and phases), `os_limits` (open-files limit).

#![warn(missing_docs)]

mod client;
pub mod config;
mod cpu;
mod os_limits;
pub mod payload;
pub mod report;
mod stats;
mod timeline;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::sleep_until;
use url::Host;

pub use config::{ConfigError, LoadConfig, Plan};
pub use os_limits::{FileLimit, raise_open_files_limit};
pub use report::{LatencyOrigin, Progress, Report};
pub use stats::Histogram;
pub use timeline::Phase;

use client::Shared;
use cpu::CpuWindow;
use timeline::Timeline;

/// How often the progress callback is called.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// After the stop signal, how long clients get to finish their close handshakes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the drain checks whether every expected delivery has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Why a run could not start. Failures during the run (refused connections, closes, protocol
/// errors) do not stop it: they are counted in the [`Report`].
#[derive(Debug, Error)]
pub enum LoadError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The target host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// [`run`] was polled outside a Tokio runtime.
    #[error("roomhost_loadtest::run needs a Tokio runtime (multi-threaded for real load)")]
    NoRuntime,
}

/// Runs the scenario in `config` and returns its report.
///
/// Raises the process's open-files limit to its hard limit first (see
/// [`raise_open_files_limit`]), then spawns one task per client on the current Tokio runtime
/// (use a multi-threaded one). `progress` is called about once a second
/// ([`PROGRESS_INTERVAL`]) with a snapshot. The run takes ramp-up + warm-up + duration, plus
/// up to `drain` for frames in flight and a few seconds for the close handshakes.
///
/// ```no_run
/// # async fn example() -> Result<(), roomhost_loadtest::LoadError> {
/// use roomhost_loadtest::{LoadConfig, run};
///
/// let report = run(LoadConfig::default(), |_| {}).await?;
/// println!("{}", report.to_json().expect("serialisable"));
/// # Ok(())
/// # }
/// ```
pub async fn run<F>(config: LoadConfig, mut progress: F) -> Result<Report, LoadError>
where
    F: FnMut(&Progress) + Send,
{
    let plan = config.validate()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(LoadError::NoRuntime);
    }
    let (open_files_limit, mut warnings) = os_limits::prepare(u64::from(plan.connections()));
    let addrs = resolve(&plan).await?;
    let timeline = Timeline::new(Instant::now(), plan.config());
    let shared = Arc::new(Shared::new(plan, timeline, addrs));
    let mut coordinator = Coordinator {
        shared: Arc::clone(&shared),
        progress: &mut progress,
        next_progress: timeline.origin() + PROGRESS_INTERVAL,
        clients: JoinSet::new(),
        cpu: CpuWindow::default(),
    };

    let (stop, stop_receiver) = watch::channel(false);
    coordinator.open_and_measure(&stop_receiver).await;
    coordinator.drain().await;

    let open_at_end = shared
        .stats
        .counters
        .open
        .load(std::sync::atomic::Ordering::Relaxed);
    // Every client holds a receiver, so sending cannot fail while one runs; if none does,
    // there is nobody to tell.
    let _ = stop.send(true);
    let hung = coordinator.close().await;
    if hung > 0 {
        warnings.push(format!(
            "{hung} clients did not finish closing within {CLOSE_TIMEOUT:?} and were dropped"
        ));
    }
    Ok(Report::build(
        &shared,
        open_at_end,
        open_files_limit,
        coordinator.cpu.secs(),
        warnings,
    ))
}

/// Resolves the target, keeping the loopback rule for names as well as addresses.
async fn resolve(plan: &Plan) -> Result<Vec<SocketAddr>, LoadError> {
    let port = plan.port();
    let addrs: Vec<SocketAddr> = match plan.host() {
        Host::Ipv4(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Ipv6(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Domain(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|source| LoadError::Resolve {
                host: name.clone(),
                source,
            })?
            .collect(),
    };
    if plan.config().allow_remote {
        return Ok(addrs);
    }
    // `localhost` is expected to resolve to loopback; refuse if this machine says otherwise.
    let (local, remote): (Vec<_>, Vec<_>) = addrs
        .into_iter()
        .partition(|addr| config::is_loopback_ip(addr.ip()));
    match (local.is_empty(), remote.first()) {
        (false, _) => Ok(local),
        (true, Some(addr)) => Err(ConfigError::RemoteTarget {
            host: addr.ip().to_string(),
        }
        .into()),
        (true, None) => Err(LoadError::Resolve {
            host: plan.host().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
        }),
    }
}

/// Spawns the clients on schedule, reports progress and ends the run.
struct Coordinator<'a, F> {
    shared: Arc<Shared>,
    progress: &'a mut F,
    next_progress: Instant,
    clients: JoinSet<()>,
    /// The generator's CPU time over the measurement window.
    cpu: CpuWindow,
}

impl<F: FnMut(&Progress) + Send> Coordinator<'_, F> {
    /// Calls the progress callback if one is due.
    fn tick(&mut self, now: Instant, phase: Option<Phase>) {
        if now < self.next_progress {
            return;
        }
        let timeline = &self.shared.timeline;
        let phase = phase.unwrap_or_else(|| timeline.phase(now));
        let elapsed = now.saturating_duration_since(timeline.origin());
        (self.progress)(&Progress::snapshot(&self.shared, elapsed, phase));
        self.next_progress += PROGRESS_INTERVAL;
        if self.next_progress <= now {
            // The callback or the machine was slow: do not fire a burst to catch up.
            self.next_progress = now + PROGRESS_INTERVAL;
        }
    }

    /// Collects clients that already ended, so their memory goes and panics are counted.
    fn reap(&mut self) {
        while let Some(joined) = self.clients.try_join_next() {
            self.joined(joined);
        }
    }

    fn joined(&self, joined: Result<(), tokio::task::JoinError>) {
        if let Err(error) = joined
            && error.is_panic()
        {
            self.shared
                .stats
                .error("internal: client task panicked".to_owned());
        }
    }

    /// Ramp-up, warm-up and the measurement window.
    async fn open_and_measure(&mut self, stop: &watch::Receiver<bool>) {
        let timeline = self.shared.timeline;
        let total = self.shared.plan.connections();
        let mut spawned = 0u32;
        loop {
            let now = Instant::now();
            while spawned < total && timeline.connect_at(spawned, total) <= now {
                let client = client::run(Arc::clone(&self.shared), spawned, stop.clone());
                self.clients.spawn(client);
                spawned += 1;
            }
            self.reap();
            self.tick(now, None);
            if !self.cpu.started() && now >= timeline.measure_start() {
                self.cpu.start();
            }
            if spawned == total && now >= timeline.measure_end() {
                self.cpu.end();
                return;
            }
            let mut wake = self.next_progress.min(timeline.measure_end());
            if !self.cpu.started() {
                wake = wake.min(timeline.measure_start());
            }
            if spawned < total {
                wake = wake.min(timeline.connect_at(spawned, total));
            }
            sleep_until(wake.into()).await;
        }
    }

    /// Waits until every expected delivery arrived, the connections are gone, or the drain
    /// time is up.
    async fn drain(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let deadline = self.shared.timeline.drain_end();
        loop {
            let now = Instant::now();
            let counters = &self.shared.stats.counters;
            // A writer still in the window (a late timer, a busy core, a send stuck at the
            // end) may yet count sends or lost sends: the expected count is not final before
            // every writer is done with the window.
            let complete = counters.writing.load(Relaxed) == 0
                && counters.delivered.load(Relaxed) >= counters.expected.load(Relaxed);
            if complete || counters.open.load(Relaxed) == 0 || now >= deadline {
                return;
            }
            self.reap();
            self.tick(now, Some(Phase::Draining));
            sleep_until((now + DRAIN_POLL).min(deadline).into()).await;
        }
    }

    /// Waits for the clients to close; returns how many had to be aborted.
    async fn close(&mut self) -> usize {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        loop {
            if self.clients.is_empty() {
                return 0;
            }
            let wake = self.next_progress.min(deadline);
            tokio::select! {
                joined = self.clients.join_next() => {
                    if let Some(joined) = joined {
                        self.joined(joined);
                    }
                }
                _ = sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let hung = self.clients.len();
                        self.clients.shutdown().await;
                        return hung;
                    }
                    self.tick(now, Some(Phase::Closing));
                }
            }
        }
    }
}
