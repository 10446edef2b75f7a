//! Reading the body of an HTTP request to a room, bounded in size
//! (`max_http_body_bytes`), time (`http_body_timeout`) and memory.
//!
//! Bodies are read before the request takes a `max_http_requests` slot, so
//! a client trickling its body holds no slot. Memory is bounded instead by a
//! process-wide byte budget (`max_http_requests × max_http_body_bytes`,
//! what the slots bounded before): each chunk takes its bytes from it as it
//! arrives, so a trickling body holds only what it has sent.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Larger than the limit (declared or actual).
    #[error("the request body exceeds {0} bytes (max_http_body_bytes)")]
    TooLarge(usize),
    /// Not complete by the deadline.
    #[error("the request body did not arrive within {0} ms (http_body_timeout)")]
    TimedOut(u128),
    /// The connection failed or the body was malformed.
    #[error("the request body could not be read: {0}")]
    Failed(String),
}

/// A body read in full, and its share of the memory budget.
pub(crate) struct ReadBody<'a> {
    pub(crate) bytes: Bytes,
    /// Released when the request is done.
    _budget: Option<SemaphorePermit<'a>>,
}

/// The byte budget for a process whose requests may each hold `limit` bytes
/// and `requests` of them are handled at once.
pub(crate) fn budget(requests: usize, limit: usize) -> Semaphore {
    Semaphore::new(requests.saturating_mul(limit).min(Semaphore::MAX_PERMITS))
}

/// Reads `body` whole. A `Content-Length` above `limit` is refused before
/// anything is read; the whole read must finish within `timeout`.
pub(crate) async fn read<'a>(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
    budget: &'a Semaphore,
) -> Result<ReadBody<'a>, BodyError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || BodyError::TimedOut(timeout.as_millis());
    if let Some(length) = declared_length(headers)
        && length > limit as u64
    {
        return Err(BodyError::TooLarge(limit));
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut held: Option<SemaphorePermit<'a>> = None;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| timed_out())?;
        let chunk = match next {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => return Err(BodyError::Failed(error.to_string())),
        };
        if bytes.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        if chunk.is_empty() {
            continue;
        }
        // Chunks are at most `limit` bytes; a budget smaller than one chunk
        // (a limit above 4 GiB) is taken whole.
        let want = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout_at(deadline, budget.acquire_many(want))
            .await
            .map_err(|_| timed_out())?
            .map_err(|closed| BodyError::Failed(closed.to_string()))?;
        match &mut held {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(ReadBody {
        bytes: Bytes::from(bytes),
        _budget: held,
    })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// Reads `body` with a 10-byte limit within `wait`, declaring `length`
    /// if given.
    async fn read_ten(
        body: Body,
        length: Option<&str>,
        wait: Duration,
    ) -> Result<Bytes, BodyError> {
        let mut headers = HeaderMap::new();
        if let Some(length) = length {
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from_str(length).unwrap(),
            );
        }
        let budget = budget(2, 10);
        read(body, &headers, 10, wait, &budget)
            .await
            .map(|body| body.bytes)
    }

    /// A body that never ends.
    fn endless() -> Body {
        Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>())
    }

    #[tokio::test]
    async fn an_impossible_length_is_refused_before_reading() {
        let read = read_ten(endless(), Some("10000000000"), Duration::from_secs(60)).await;
        assert!(matches!(read, Err(BodyError::TooLarge(10))));
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_and_a_larger_one_refused() {
        let read = read_ten(Body::from("hello"), Some("5"), Duration::from_secs(5)).await;
        assert_eq!(&read.unwrap()[..], b"hello");
        let read = read_ten(Body::from("x".repeat(11)), None, Duration::from_secs(5)).await;
        assert!(matches!(read, Err(BodyError::TooLarge(10))));
    }

    #[tokio::test]
    async fn a_body_holds_its_bytes_of_the_budget_until_dropped() {
        let budget = budget(2, 10);
        let body = read(
            Body::from("hello"),
            &HeaderMap::new(),
            10,
            Duration::from_secs(5),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(budget.available_permits(), 15);
        drop(body);
        assert_eq!(budget.available_permits(), 20);
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let read = read_ten(endless(), None, Duration::from_millis(50)).await;
        assert!(matches!(read, Err(BodyError::TimedOut(50))));
    }
}
