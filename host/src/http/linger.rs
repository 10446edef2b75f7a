//! A TCP stream that closes gracefully: when dropped it shuts down its
//! sending side (FIN after everything written) and reads and discards what
//! the peer still sends, briefly, before closing.
//!
//! Closing a socket that has unread input makes the kernel send a reset,
//! which can destroy what was just written before the peer read it: a 1009
//! close frame after an oversized message, a 413 after a refused body.
//! Lingering costs a descriptor for at most the grace, so it is skipped when
//! the connection was shed to free descriptors, and when
//! `max_pending_connections` sockets linger already.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Most a lingering socket reads before it closes anyway (the grace bounds
/// it first on any ordinary link).
const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// How many sockets are lingering now (they still hold descriptors), and
/// how many may: a client that makes the server close sockets quickly must
/// not pile up lingering descriptors.
#[derive(Debug)]
pub(crate) struct Lingering {
    now: AtomicUsize,
    max: usize,
}

impl Lingering {
    /// At most `max` sockets linger at once; more close at once.
    pub(crate) fn new(max: usize) -> Lingering {
        Lingering {
            now: AtomicUsize::new(0),
            max,
        }
    }

    /// Sockets lingering now.
    pub(crate) fn count(&self) -> usize {
        self.now.load(Ordering::Relaxed)
    }

    /// A place to linger in, if one is free.
    fn enter(self: &Arc<Self>) -> Option<LingerSlot> {
        self.now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                (now < self.max).then_some(now + 1)
            })
            .ok()
            .map(|_| LingerSlot(self.clone()))
    }
}

/// One lingering socket's place; given back when dropped, however the
/// lingering task ends.
struct LingerSlot(Arc<Lingering>);

impl Drop for LingerSlot {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream that lingers when dropped (see the module docs).
pub(crate) struct Linger {
    stream: Option<TcpStream>,
    /// Cancelled when the connection is shed: close at once.
    shed: CancellationToken,
    lingering: Arc<Lingering>,
    grace: Duration,
}

impl Linger {
    pub(crate) fn new(
        stream: TcpStream,
        shed: CancellationToken,
        lingering: Arc<Lingering>,
        grace: Duration,
    ) -> Linger {
        Linger {
            stream: Some(stream),
            shed,
            lingering,
            grace,
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Linger {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if self.shed.is_cancelled() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(slot) = self.lingering.enter() else {
            return;
        };
        let grace = self.grace;
        runtime.spawn(async move {
            drain(stream, grace).await;
            drop(slot);
        });
    }
}

/// Sends FIN, then discards input until the peer closes, the grace ends or
/// [`MAX_DRAIN_BYTES`] were read.
async fn drain(mut stream: TcpStream, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    if tokio::time::timeout_at(deadline, stream.shutdown())
        .await
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_DRAIN_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(read)) if read > 0 => drained += read,
            _ => return,
        }
    }
}

impl AsyncRead for Linger {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_read(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl AsyncWrite for Linger {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_write(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => Pin::new(stream).poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}
