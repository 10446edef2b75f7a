//! Where a plugin's words go: its WASI stdout and stderr and its `host.log`
//! calls all reach the host's log (tracing), one line per event, inside the
//! room's span (service and room), under one rate limit per room.
//!
//! stdout is logged at `info`, stderr at `warn` (target `roomhost::plugin`).
//! Output is line-buffered; a line longer than [`MAX_PLUGIN_TEXT`] bytes is
//! cut there. A room may log [`Limits::plugin_log_lines`] lines per second
//! (a token bucket holding one second's worth); lines beyond it are dropped,
//! and a warning says how many lines and bytes were dropped, at most once a
//! second. A plugin that writes megabytes in one callback therefore costs
//! the log a second's worth of lines and one summary.
//!
//! [`Limits::plugin_log_lines`]: crate::Limits::plugin_log_lines

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::bindings::roomhost::room::types::LogLevel as Level;
use super::text::{MAX_PLUGIN_TEXT, bounded};

/// How often the "lines dropped" summary may be logged.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);

/// One room's log: the rate limit and the partial lines of its two streams.
/// Shared by the WASI streams and the `host.log` import.
#[derive(Clone)]
pub(crate) struct PluginLog {
    inner: Arc<Mutex<LogState>>,
}

struct LogState {
    lines_per_sec: f64,
    tokens: f64,
    refilled: Instant,
    /// Unterminated output of stdout and stderr.
    partial: [Vec<u8>; 2],
    dropped_lines: u64,
    dropped_bytes: u64,
    last_summary: Option<Instant>,
}

/// Which stream a write came from.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn level(self) -> Level {
        match self {
            Stream::Stdout => Level::Info,
            Stream::Stderr => Level::Warn,
        }
    }
}

impl PluginLog {
    /// A log for one room that lets through `lines_per_sec` lines a second.
    pub(crate) fn new(lines_per_sec: u32) -> PluginLog {
        let rate = f64::from(lines_per_sec.max(1));
        PluginLog {
            inner: Arc::new(Mutex::new(LogState {
                lines_per_sec: rate,
                tokens: rate,
                refilled: Instant::now(),
                partial: [Vec::new(), Vec::new()],
                dropped_lines: 0,
                dropped_bytes: 0,
                last_summary: None,
            })),
        }
    }

    /// The WASI stdout of the room.
    pub(crate) fn stdout(&self) -> impl StdoutStream + 'static {
        PluginStream {
            log: self.clone(),
            stream: Stream::Stdout,
        }
    }

    /// The WASI stderr of the room.
    pub(crate) fn stderr(&self) -> impl StdoutStream + 'static {
        PluginStream {
            log: self.clone(),
            stream: Stream::Stderr,
        }
    }

    /// Logs one line from `host.log`, under the rate limit.
    pub(crate) fn line(&self, level: Level, text: &str) {
        self.state().emit(level, text.as_bytes());
    }

    /// Ends a callback: unterminated output is logged as a line, and dropped
    /// output is reported if it is time to.
    pub(crate) fn flush(&self) {
        let mut state = self.state();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut state.partial[stream as usize]);
            if !rest.is_empty() {
                state.emit(stream.level(), &rest);
            }
        }
        state.summarize();
    }

    fn write(&self, stream: Stream, mut bytes: &[u8]) {
        let mut state = self.state();
        while let Some(end) = bytes.iter().position(|&byte| byte == b'\n') {
            let (line, rest) = bytes.split_at(end);
            bytes = &rest[1..];
            let partial = std::mem::take(&mut state.partial[stream as usize]);
            if partial.is_empty() {
                state.emit(stream.level(), line);
            } else {
                let mut whole = partial;
                whole.extend_from_slice(line);
                state.emit(stream.level(), &whole);
            }
        }
        // Keep at most one line's worth of an unterminated line; the rest is
        // cut, as a long terminated line would be.
        let partial = &mut state.partial[stream as usize];
        let room = MAX_PLUGIN_TEXT.saturating_sub(partial.len());
        let kept = bytes.len().min(room);
        partial.extend_from_slice(&bytes[..kept]);
        let cut = (bytes.len() - kept) as u64;
        state.dropped_bytes += cut;
    }

    fn state(&self) -> MutexGuard<'_, LogState> {
        // A poisoned log only loses a partial line.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LogState {
    /// Logs `line` if the room's budget allows, else counts it as dropped.
    fn emit(&mut self, level: Level, line: &[u8]) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.lines_per_sec).min(self.lines_per_sec);
        if self.tokens < 1.0 {
            self.dropped_lines += 1;
            self.dropped_bytes += line.len() as u64;
            return;
        }
        self.tokens -= 1.0;
        self.dropped_bytes += line.len().saturating_sub(MAX_PLUGIN_TEXT) as u64;
        self.summarize();
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let message = bounded(text.to_owned(), MAX_PLUGIN_TEXT);
        match level {
            Level::Trace => tracing::trace!(target: "roomhost::plugin", "{message}"),
            Level::Debug => tracing::debug!(target: "roomhost::plugin", "{message}"),
            Level::Info => tracing::info!(target: "roomhost::plugin", "{message}"),
            Level::Warn => tracing::warn!(target: "roomhost::plugin", "{message}"),
            Level::Error => tracing::error!(target: "roomhost::plugin", "{message}"),
        }
    }

    /// Reports dropped output, at most once per [`SUMMARY_EVERY`].
    fn summarize(&mut self) {
        if self.dropped_lines == 0 && self.dropped_bytes == 0 {
            return;
        }
        let now = Instant::now();
        if self
            .last_summary
            .is_some_and(|last| now.duration_since(last) < SUMMARY_EVERY)
        {
            return;
        }
        self.last_summary = Some(now);
        tracing::warn!(
            target: "roomhost::plugin",
            dropped_lines = self.dropped_lines,
            dropped_bytes = self.dropped_bytes,
            limit = self.lines_per_sec,
            "plugin output dropped: over the room's log rate (lines per second) or line length"
        );
        self.dropped_lines = 0;
        self.dropped_bytes = 0;
    }
}

impl Drop for LogState {
    /// The room ended: what was dropped since the last summary is reported
    /// now, whenever that was.
    fn drop(&mut self) {
        self.last_summary = None;
        self.summarize();
    }
}

/// stdout or stderr of one room, as WASI sees it: always ready, never
/// blocks, never fails.
struct PluginStream {
    log: PluginLog,
    stream: Stream,
}

impl IsTerminal for PluginStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(PluginStream {
            log: self.log.clone(),
            stream: self.stream,
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(PluginStream {
            log: self.log.clone(),
            stream: self.stream,
        })
    }
}

/// Bytes a single `write` may carry (what `check-write` grants).
const WRITE_PERMIT: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl Pollable for PluginStream {
    async fn ready(&mut self) {}
}

impl OutputStream for PluginStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for PluginStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.log.write(self.stream, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(log: &PluginLog) -> (u64, u64, [usize; 2]) {
        let state = log.state();
        (
            state.dropped_lines,
            state.dropped_bytes,
            [state.partial[0].len(), state.partial[1].len()],
        )
    }

    #[test]
    fn lines_beyond_the_rate_are_counted_as_dropped() {
        let log = PluginLog::new(10);
        let text = "x\n".repeat(25);
        log.write(Stream::Stdout, text.as_bytes());
        let (lines, bytes, _) = state(&log);
        assert_eq!(lines, 15, "10 lines pass, 15 are dropped");
        assert_eq!(bytes, 15);
    }

    #[test]
    fn partial_lines_are_bounded_and_flushed() {
        let log = PluginLog::new(100);
        log.write(Stream::Stderr, &vec![b'a'; MAX_PLUGIN_TEXT * 3]);
        let (_, bytes, partial) = state(&log);
        assert_eq!(partial, [0, MAX_PLUGIN_TEXT]);
        assert_eq!(bytes, 2 * MAX_PLUGIN_TEXT as u64);
        log.write(Stream::Stderr, b"b\nc");
        assert_eq!(state(&log).2, [0, 1]);
        log.flush();
        assert_eq!(state(&log).2, [0, 0]);
    }
}
