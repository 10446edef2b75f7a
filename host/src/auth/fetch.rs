//! A small HTTP/1.1 GET client for JWKS URLs: hyper over rustls (ring,
//! Mozilla's root certificates), a timeout on the whole exchange, a cap on
//! the body, and only a 200 answer accepted. No redirects, no cookies.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an `http://` or `https://` URL.
    #[error("invalid URL")]
    Url,
    /// TLS could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Connecting or the exchange failed.
    #[error("request failed: {0}")]
    Request(String),
    /// The server answered something other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body was larger than allowed, or broke off.
    #[error("body unreadable or over {0} bytes")]
    Body(usize),
    /// No answer within [`FETCH_TIMEOUT`].
    #[error("no answer within {} s", FETCH_TIMEOUT.as_secs())]
    TimedOut,
}

/// `GET url`, returning the body of a 200 answer of at most `max` bytes.
pub async fn get(url: &str, max: usize) -> Result<Vec<u8>, FetchError> {
    let uri: hyper::Uri = url.parse().map_err(|_| FetchError::Url)?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(FetchError::Url);
    }
    // ring's provider lacks post-quantum key exchange (hence deprecated in
    // rustls); it needs no C toolchain beyond ring's own, and a public key
    // set is public.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|error| FetchError::Tls(error.to_string()))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, "roomhost")
        .body(Empty::<Bytes>::new())
        .map_err(|_| FetchError::Url)?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|error| FetchError::Request(error.to_string()))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), max)
            .collect()
            .await
            .map_err(|_| FetchError::Body(max))?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| FetchError::TimedOut)?
}
