//! The admin face of storage: `GET /storage/rooms` lists the rooms that
//! store data (live or not), and `GET /storage/backup` streams a consistent
//! copy of the store while the server keeps serving (what
//! `roomhost storage backup --server` downloads).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use super::App;
use super::api::error;

pub(crate) async fn rooms(State(app): State<Arc<App>>) -> Response {
    let backend = app.rooms.storage().clone();
    match tokio::task::spawn_blocking(move || backend.rooms()).await {
        Ok(Ok(rooms)) => Json(rooms).into_response(),
        Ok(Err(failure)) => error(StatusCode::INTERNAL_SERVER_ERROR, failure.to_string()),
        Err(failure) => error(StatusCode::INTERNAL_SERVER_ERROR, failure.to_string()),
    }
}

pub(crate) async fn backup(State(app): State<Arc<App>>) -> Response {
    let backend = app.rooms.storage().clone();
    let copy = std::env::temp_dir().join(format!(
        "roomhost-backup-{}-{}.redb",
        std::process::id(),
        rand::random::<u64>()
    ));
    let path = copy.clone();
    let written = tokio::task::spawn_blocking(move || backend.backup(&path)).await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(failure)) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, failure.to_string());
        }
        Err(failure) => return error(StatusCode::INTERNAL_SERVER_ERROR, failure.to_string()),
    }
    let file = tokio::fs::File::open(&copy).await;
    // The open file keeps its data; the name goes at once, so an aborted
    // download leaves nothing behind.
    let _ = tokio::fs::remove_file(&copy).await;
    match file {
        Ok(file) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from_stream(ReaderStream::new(file)),
        )
            .into_response(),
        Err(failure) => error(StatusCode::INTERNAL_SERVER_ERROR, failure.to_string()),
    }
}
