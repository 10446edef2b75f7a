//! Operations endpoints: `GET /healthz` (the process is up), `GET /readyz`
//! (plugins loaded and accepting connections), `GET /metrics` (Prometheus
//! text), and the middleware that counts every HTTP response by status.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;

/// `GET /healthz`: 200 while the process serves HTTP at all.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 once every plugin is loaded (the router only runs
/// then) and while the server accepts connections; 503 once it is shutting
/// down (seen by requests on connections already open: the listener
/// closes as the shutdown starts), and on a cluster node while it cannot
/// vouch for rooms (its lease is not live), so the proxy sends clients to
/// other nodes.
pub(crate) async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if app
        .rooms
        .placement()
        .is_some_and(|placement| !placement.serving())
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not serving rooms: the cluster lease is not live\n",
        )
            .into_response();
    }
    "ready\n".into_response()
}

/// `GET /metrics`: the host's metrics in the Prometheus text format.
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let services = app.services.keys().map(String::as_str);
    let text = app.rooms.render_metrics(services);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// Counts each response by status (`roomhost_http_responses_total`).
pub(crate) async fn count_status(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    app.rooms
        .metrics()
        .http_response(response.status().as_u16());
    response
}
