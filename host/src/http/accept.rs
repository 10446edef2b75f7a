//! The accept loop: owns every TCP connection until it becomes a WebSocket.
//!
//! `axum::serve` keeps a connection that sends nothing forever and cannot
//! tell how many there are. Here each connection is served by hyper's HTTP/1
//! server with a header-read timeout (which also bounds keep-alive idling),
//! and is registered as *pending* until its HTTP connection ends, which for
//! a WebSocket is the moment of the upgrade (from then on `max_connections`
//! counts it). When pending connections exceed `max_pending_connections`, or
//! the process nears its open-files limit, the oldest pending ones are
//! closed: silent connections cannot lock out new clients. Running out of
//! descriptors on `accept` sheds the same way and backs off instead of
//! spinning.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::App;
use super::linger::Linger;
use super::peer::Peer;

/// Descriptors kept free for everything that is not a client socket: the
/// listener, plugin files and the compile cache, the runtime's own.
const FD_RESERVE: usize = 64;

/// How long `accept` backs off after running out of descriptors.
const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(50);

/// The connections that have not (yet) become WebSockets, oldest first.
#[derive(Default)]
pub(crate) struct PendingConnections {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl PendingConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many are open.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers a new connection; dropping the ticket unregisters it.
    fn register(self: &Arc<Self>) -> PendingTicket {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shed = CancellationToken::new();
        self.lock().insert(id, shed.clone());
        PendingTicket {
            id,
            shed,
            pending: self.clone(),
        }
    }

    /// Closes the `count` oldest pending connections.
    fn shed_oldest(&self, count: usize) -> usize {
        let mut open = self.lock();
        let mut shed = 0;
        while shed < count {
            let Some((_, token)) = open.pop_first() else {
                break;
            };
            token.cancel();
            shed += 1;
        }
        shed
    }
}

/// A connection's place among the pending ones.
struct PendingTicket {
    id: u64,
    shed: CancellationToken,
    pending: Arc<PendingConnections>,
}

impl Drop for PendingTicket {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

/// What the accept loop needs besides the listener.
pub(crate) struct Acceptor {
    pub(crate) app: Arc<App>,
    pub(crate) router: Router,
    /// Tracks every HTTP connection task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
}

impl Acceptor {
    /// Accepts until `stop` is cancelled.
    pub(crate) async fn run(self, listener: TcpListener, stop: CancellationToken) {
        let fd_budget = open_files_limit().map(|limit| limit.saturating_sub(FD_RESERVE));
        let mut exhausted = ExhaustedLog::default();
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_out_of_descriptors(&error) => {
                    let shed = self.shed(self.app.pending.len().div_ceil(8).max(1));
                    exhausted.report(&error, shed);
                    tokio::time::sleep(EXHAUSTED_BACKOFF).await;
                    continue;
                }
                // A connection reset before it was accepted: the next one
                // is fine.
                Err(error) if is_per_connection(&error) => {
                    tracing::debug!(%error, "accept failed");
                    continue;
                }
                // Out of buffers or memory: retrying at once would spin.
                Err(error) => {
                    tracing::warn!(%error, "accept failed; backing off");
                    tokio::time::sleep(EXHAUSTED_BACKOFF).await;
                    continue;
                }
            };
            if !self.make_room(fd_budget) {
                // Open WebSockets and lingering sockets fill the descriptor
                // budget: shedding handshakes would not make room.
                tracing::debug!("descriptor budget full; refused a new connection");
                drop(stream);
                continue;
            }
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            let ticket = self.app.pending.register();
            let stream = Linger::new(
                stream,
                ticket.shed.clone(),
                self.app.lingering.clone(),
                self.app.limits.shutdown_grace,
            );
            let connection = serve_connection(
                stream,
                peer,
                ticket,
                self.router.clone(),
                self.app.limits.http_header_timeout,
                head_buffer_bytes(&self.app.limits),
                stop.clone(),
            );
            self.tasks.spawn(connection);
        }
    }

    /// Sheds the oldest pending connections so one more fits under
    /// `max_pending_connections` and the descriptor budget. Returns false,
    /// shedding nothing, when even shedding every pending connection would
    /// not fit one more under the descriptor budget.
    fn make_room(&self, fd_budget: Option<usize>) -> bool {
        let pending = self.app.pending.len();
        let mut excess = (pending + 1).saturating_sub(self.app.limits.max_pending_connections);
        if let Some(budget) = fd_budget {
            let sockets = pending + self.app.open_connections() + self.app.lingering.count();
            let over_budget = (sockets + 1).saturating_sub(budget);
            if over_budget > pending {
                return false;
            }
            excess = excess.max(over_budget);
        }
        if excess > 0 {
            let shed = self.shed(excess);
            tracing::debug!(shed, "closed the oldest pending connections to make room");
        }
        true
    }

    fn shed(&self, count: usize) -> usize {
        self.app.pending.shed_oldest(count)
    }
}

/// Serves one HTTP connection until it ends, upgrades, is shed, or the
/// server stops (then it finishes the request in progress).
async fn serve_connection(
    stream: Linger,
    peer: SocketAddr,
    ticket: PendingTicket,
    router: Router,
    header_timeout: Duration,
    max_buf_size: usize,
    stop: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(Peer(peer.ip()));
        let mut router = router.clone();
        async move {
            let response = tower_service::Service::call(&mut router, request).await;
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // hyper's default (~400 KiB) per connection would let pending
        // connections hold hundreds of MiB; a request head fits in this.
        .max_buf_size(max_buf_size)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let shed = ticket.shed.clone();
    tokio::select! {
        served = connection.as_mut() => log_end(served),
        () = shed.cancelled() => {}
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                served = connection => log_end(served),
                () = shed.cancelled() => {}
            }
        }
    }
    drop(ticket);
}

/// The most hyper buffers for one connection: the request line (with its
/// query) and `max_http_headers` ordinary headers.
fn head_buffer_bytes(limits: &crate::limits::Limits) -> usize {
    // hyper's floor is 8 KiB.
    (16 * 1024 + limits.max_query_bytes).max(8 * 1024)
}

fn log_end(served: Result<(), hyper::Error>) {
    if let Err(error) = served {
        tracing::debug!(%error, "HTTP connection ended");
    }
}

fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Errors that concern only the connection being accepted.
fn is_per_connection(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}

/// Reports running out of descriptors at most once per
/// [`EXHAUSTED_REPORT_EVERY`], with what was shed meanwhile.
#[derive(Default)]
struct ExhaustedLog {
    last: Option<std::time::Instant>,
    shed: usize,
}

/// How often running out of descriptors is logged while it lasts.
const EXHAUSTED_REPORT_EVERY: Duration = Duration::from_secs(5);

impl ExhaustedLog {
    fn report(&mut self, error: &std::io::Error, shed: usize) {
        self.shed += shed;
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < EXHAUSTED_REPORT_EVERY)
        {
            return;
        }
        tracing::warn!(%error, shed = self.shed, "out of file descriptors; closed the oldest pending connections");
        self.last = Some(now);
        self.shed = 0;
    }
}

/// The process's open-files limit (the soft one), if it can be read.
fn open_files_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    #[allow(unsafe_code)]
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if read != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    usize::try_from(limit.rlim_cur).ok()
}
