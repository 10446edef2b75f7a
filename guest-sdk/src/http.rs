//! HTTP requests addressed to a room: [`HttpRequest`] in, [`HttpResponse`]
//! out, through [`RoomService::request`](crate::RoomService::request).
//!
//! The host routes `GET|POST|DELETE /rooms/{service}/{room}/{path...}` to the
//! room (creating it if it is not live, like a connection would), so every
//! service can have a REST face beside its sockets.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An HTTP request addressed to a room.
///
/// ```
/// use roomhost_sdk::HttpRequest;
///
/// let request = HttpRequest::new("POST", "/doc").with_body(br#"{"text": "hi"}"#.to_vec());
/// assert_eq!(request.method, "POST");
/// let body: serde_json::Value = request.json()?;
/// assert_eq!(body["text"], "hi");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// `GET`, `POST` or `DELETE`.
    pub method: String,
    /// The path below the room, starting with `/`: `/doc` for
    /// `GET /rooms/{service}/{room}/doc`.
    pub path: String,
    /// The raw query string without the leading `?` (empty if none).
    pub query: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, at most the host's request size limit.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request with no query, headers or body (for tests).
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the query string (without `?`).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }

    /// Adds a header (the name is stored in lower case).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The first value of header `name` (case-insensitive).
    ///
    /// ```
    /// # use roomhost_sdk::HttpRequest;
    /// let request = HttpRequest::new("GET", "/").with_header("Accept", "application/json");
    /// assert_eq!(request.header("accept"), Some("application/json"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A room's answer to an [`HttpRequest`].
///
/// ```
/// use roomhost_sdk::HttpResponse;
///
/// let ok = HttpResponse::json(&serde_json::json!({ "count": 3 }));
/// assert_eq!(ok.status, 200);
/// assert_eq!(ok.header("content-type"), Some("application/json"));
///
/// let missing = HttpResponse::text(404, "no such item");
/// assert_eq!(missing.body, b"no such item");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The status code (100..=599; anything else becomes 500).
    pub status: u16,
    /// Headers to add; the host sets `content-length` itself.
    pub headers: Vec<(String, String)>,
    /// The body, at most the host's response size limit (a larger one
    /// becomes a 500).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200` with `value` as a JSON body. A value that cannot be serialized
    /// gives a `500` saying why.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(200)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(error) => Self::text(500, &format!("cannot serialize the response: {error}")),
        }
    }

    /// `status` with a plain-text body.
    pub fn text(status: u16, text: &str) -> Self {
        Self::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.as_bytes().to_vec())
    }

    /// `404`: what a service without an HTTP face answers.
    pub fn not_found() -> Self {
        Self::text(404, "this room does not answer HTTP requests at this path")
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header (the name is stored in lower case).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as UTF-8 text (lossy), for tests and logs.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The first value of header `name` (case-insensitive).
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}
