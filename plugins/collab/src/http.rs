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
//! when the document would exceed its cap. A change made while no client
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
        let segments: Vec<&str> = request
            .path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect();
        let method = request.method.as_str();
        match (method, segments.as_slice()) {
            ("GET", ["doc"]) => {
                let txn = self.doc.doc().transact();
                HttpResponse::json(&roots::to_json(&txn))
            }
            ("DELETE", ["doc"]) => {
                let result = edits::clear(&mut self.doc);
                self.finish_edit(room, result)
            }
            ("GET", ["update"]) => HttpResponse::new(200)
                .with_header("content-type", "application/octet-stream")
                .with_body(self.doc.encode()),
            ("POST", ["update"]) => self.post_update(room, &request.body),
            ("POST", ["text", name]) => match (decode_name(name), parse::<TextEdit>(&request)) {
                (Ok(name), Ok(edit)) => {
                    let result = edits::edit_text(&mut self.doc, &name, &edit);
                    self.finish_edit(room, result)
                }
                (Err(response), _) | (_, Err(response)) => response,
            },
            ("POST", ["map", name]) => match (decode_name(name), parse::<MapEdit>(&request)) {
                (Ok(name), Ok(edit)) => {
                    let result = edits::edit_map(&mut self.doc, &name, &edit);
                    self.finish_edit(room, result)
                }
                (Err(response), _) | (_, Err(response)) => response,
            },
            ("GET", ["presence"]) => HttpResponse::json(&self.presence.to_json()),
            (_, ["doc" | "update" | "presence"] | ["text" | "map", _]) => error(
                405,
                &format!(
                    "{method} is not allowed on {}; routes: {ROUTES}",
                    request.path
                ),
            ),
            _ => error(
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

    /// Fans out an edit's updates and answers as [`Collab::answer`] does.
    fn finish_edit(
        &mut self,
        room: &mut Room<'_>,
        result: Result<Edited, EditError>,
    ) -> HttpResponse {
        let result = result.map(|edited| {
            let changed = !edited.updates.is_empty();
            self.fan_out(room, edited.updates, &[]);
            (edited.summary, changed)
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

/// A percent-decoded root name, or a 400 answer.
fn decode_name(raw: &str) -> Result<String, HttpResponse> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| error(400, &format!("bad percent escape in {raw:?}")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| error(400, &format!("{raw:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::decode_name;

    #[test]
    fn names_are_percent_decoded() {
        assert_eq!(decode_name("my%20text").ok().as_deref(), Some("my text"));
        assert_eq!(decode_name("plain").ok().as_deref(), Some("plain"));
        assert!(decode_name("bad%2").is_err());
        assert!(decode_name("bad%zz").is_err());
        assert!(decode_name("%ff").is_err());
    }
}
