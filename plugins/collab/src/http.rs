//! The REST face of a document room: the host routes
//! `GET|POST|DELETE /rooms/collab/{doc}/{path...}` here.
//!
//! | method and path | does |
//! |---|---|
//! | `GET /doc` | the document as JSON: `{root name: value}` |
//! | `DELETE /doc` | deletes the content of every root (fans out) |
//! | `GET /update` | the whole document as a Yjs v1 update (binary) |
//! | `POST /update` | applies a v1 update from the body (fans out) |
//! | `POST /text/{name}` | `{"insert": "...", "index": n}` or `{"delete": len, "index": n}` (fans out) |
//! | `POST /map/{name}` | `{"set": {"k": v}, "delete": ["k"]}` (fans out) |
//! | `GET /presence` | the awareness states: `[{"client": id, "state": {...}}]` |
//!
//! Errors are JSON `{"error": "..."}`: 400 for bad input, 404 for unknown
//! paths, 405 for a wrong method, 409 when a root has another kind, 413
//! when the document would exceed its cap, 507 when the room's storage
//! refused the change (nothing of it was kept). A change made while no client
//! is connected keeps the room alive for `keep_empty_ms`, like a departure.

use roomhost_sdk::{HttpRequest, HttpResponse, Room};
use serde::de::DeserializeOwned;
use serde_json::Value;
use yrs::Transact;

use crate::Collab;
use crate::edits::{self, EditError, Edited, MapEdit, TextEdit};
use crate::roots;

/// A JSON error answer: `{"error": message}`.
pub fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::json(&serde_json::json!({ "error": message })).with_status(status)
}

const ROUTES: &str = "GET|DELETE /doc, GET|POST /update, POST /text/{name}, POST /map/{name}, \
                      GET /presence";

impl Collab {
    /// Answers one HTTP request.
    pub(crate) fn on_request(&mut self, room: &mut Room<'_>, request: HttpRequest) -> HttpResponse {
        let method = request.method.as_str();
        match (method, route(&request.path)) {
            ("GET", Some(Route::Doc)) => {
                let txn = self.doc.doc().transact();
                HttpResponse::json(&roots::to_json(&txn))
            }
            ("DELETE", Some(Route::Doc)) => {
                let result = edits::clear(&mut self.doc);
                self.finish_edit(room, result)
            }
            ("GET", Some(Route::Update)) => HttpResponse::new(200)
                .with_header("content-type", "application/octet-stream")
                .with_body(self.doc.encode()),
            ("POST", Some(Route::Update)) => self.post_update(room, &request.body),
            ("POST", Some(Route::Text(name))) => match parse::<TextEdit>(&request) {
                Ok(edit) => {
                    let result = edits::edit_text(&mut self.doc, name, &edit);
                    self.finish_edit(room, result)
                }
                Err(response) => response,
            },
            ("POST", Some(Route::Map(name))) => match parse::<MapEdit>(&request) {
                Ok(edit) => {
                    let result = edits::edit_map(&mut self.doc, name, &edit);
                    self.finish_edit(room, result)
                }
                Err(response) => response,
            },
            ("GET", Some(Route::Presence)) => HttpResponse::json(&self.presence.to_json()),
            (_, Some(_)) => error(
                405,
                &format!(
                    "{method} is not allowed on {}; routes: {ROUTES}",
                    request.path
                ),
            ),
            (_, None) => error(
                404,
                &format!("no route for {method} {}; routes: {ROUTES}", request.path),
            ),
        }
    }

    /// `POST /update`: applies a v1 update from the body.
    fn post_update(&mut self, room: &mut Room<'_>, body: &[u8]) -> HttpResponse {
        if body.is_empty() {
            return error(400, "the body must be a Yjs v1 update");
        }
        let result = self.apply_and_fan_out(room, body, None);
        let summary = serde_json::json!({ "bytes": body.len() });
        self.answer(
            room,
            result
                .map(|changed| (summary, changed))
                .map_err(EditError::Doc),
        )
    }

    /// Stores and fans out an edit's updates and answers as [`Collab::answer`] does.
    fn finish_edit(
        &mut self,
        room: &mut Room<'_>,
        result: Result<Edited, EditError>,
    ) -> HttpResponse {
        let result = result.and_then(|edited| {
            let changed = self.commit(room, edited.updates, &[])?;
            Ok((edited.summary, changed))
        });
        self.answer(room, result)
    }

    /// Answers a change: the summary plus `"changed"` (whether it changed
    /// the document), or the error with its status. A change to a room with
    /// no client keeps it for `keep_empty_ms`.
    fn answer(
        &mut self,
        room: &mut Room<'_>,
        result: Result<(Value, bool), EditError>,
    ) -> HttpResponse {
        let (mut summary, changed) = match result {
            Ok(done) => done,
            Err(err) => return error(err.status(), &err.to_string()),
        };
        if changed {
            self.keep_if_empty(room);
        }
        if let Value::Object(fields) = &mut summary {
            fields.insert("changed".to_owned(), Value::Bool(changed));
        }
        HttpResponse::json(&summary)
    }
}

/// The request body as JSON of type `T`, or a 400 answer.
fn parse<T: DeserializeOwned>(request: &HttpRequest) -> Result<T, HttpResponse> {
    request
        .json()
        .map_err(|err| error(400, &format!("invalid JSON body: {err}")))
}

/// A path of the REST face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Doc,
    Update,
    Presence,
    Text(&'a str),
    Map(&'a str),
}

/// The route of `path`, or `None`. The host has already percent-decoded the
/// path, so a root name is the rest of it, verbatim: it may hold `/` (sent
/// as `%2F`) or `%` (sent as `%25`).
fn route(path: &str) -> Option<Route<'_>> {
    let path = path.trim_start_matches('/');
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    let bare = rest.bytes().all(|b| b == b'/');
    match (head, bare) {
        ("doc", true) => Some(Route::Doc),
        ("update", true) => Some(Route::Update),
        ("presence", true) => Some(Route::Presence),
        ("text", false) => Some(Route::Text(rest)),
        ("map", false) => Some(Route::Map(rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Route, route};

    #[test]
    fn names_are_the_rest_of_the_path_verbatim() {
        assert_eq!(route("/text/my notes"), Some(Route::Text("my notes")));
        assert_eq!(route("/text/100%"), Some(Route::Text("100%")));
        assert_eq!(route("/text/100%25"), Some(Route::Text("100%25")));
        assert_eq!(route("/map/a/b"), Some(Route::Map("a/b")));
        assert_eq!(route("/doc/"), Some(Route::Doc));
        assert_eq!(route("/text"), None);
        assert_eq!(route("/text/"), None);
        assert_eq!(route("/doc/x"), None);
        assert_eq!(route("/nothing"), None);
    }
}
