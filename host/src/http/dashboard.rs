//! Dev mode's web face: the dashboard page at `/` (a WebSocket upgrade at
//! `/` still reaches the root lobby) and the dev event stream it reads,
//! `/_dev/events` (server-sent events, one JSON [`DevEvent`] each) and
//! `/_dev/history` (recent builds and reloads).
//!
//! The page is plain HTML and JavaScript compiled into the binary: it fetches
//! nothing but this server's own API.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use super::peer::Peer;
use super::{App, ws};
use crate::dev::DevEvent;

const DASHBOARD: &str = include_str!("dashboard.html");

/// `GET /` in dev mode: the dashboard, unless the request is a WebSocket
/// upgrade for the root lobby.
pub(crate) async fn root(
    State(app): State<Arc<App>>,
    uri: OriginalUri,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let wants_websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        if let Some(refused) = app.admin.refuse(&parts.headers) {
            return refused;
        }
        return Html(DASHBOARD).into_response();
    }
    let peer = match Peer::from_request_parts(&mut parts, &app).await {
        Ok(peer) => peer,
        Err(never) => match never {},
    };
    match ws::ValidUpgrade::from_request_parts(&mut parts, &app).await {
        Ok(upgrade) => {
            let headers = std::mem::take(&mut parts.headers);
            ws::root(State(app), uri, peer, headers, upgrade).await
        }
        Err(rejection) => rejection,
    }
}

/// `GET /_dev/history`: the recent build and reload events, oldest first.
pub(crate) async fn history(State(app): State<Arc<App>>) -> Json<Vec<DevEvent>> {
    Json(
        app.dev_tap
            .as_ref()
            .map(|tap| tap.history())
            .unwrap_or_default(),
    )
}

/// `GET /_dev/events`: every dev event from now on, as server-sent events.
/// A reader too slow for the stream gets `{"type": "lagged", "missed": N}`.
pub(crate) async fn events(
    State(app): State<Arc<App>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = app.dev_tap.as_ref().map(|tap| tap.subscribe());
    let shutdown = app.shutdown.clone();
    let stream = stream::unfold(receiver, move |receiver| {
        let shutdown = shutdown.clone();
        async move {
            let mut receiver = receiver?;
            let data = tokio::select! {
                () = shutdown.cancelled() => return None,
                next = receiver.recv() => match next {
                    Ok(event) => serde_json::to_string(&event).ok()?,
                    Err(RecvError::Lagged(missed)) => {
                        serde_json::json!({ "type": "lagged", "missed": missed }).to_string()
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok(Event::default().data(data)), Some(receiver)))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
