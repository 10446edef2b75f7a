//! The roomhost server library.
//!
//! roomhost runs WebSocket rooms whose logic is a sandboxed WebAssembly
//! component (a *plugin*, built with `roomhost-sdk`). This crate is everything
//! native: the wasm engine, the table of live rooms, the per-room actors, the
//! connections and the HTTP server. The `roomhost` CLI is a thin layer on it.
//!
//! ```no_run
//! use roomhost_host::{Server, ServerConfig, ServiceSpec};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = ServerConfig::new(
//!         "127.0.0.1:8080".parse()?,
//!         vec![ServiceSpec::new("counter", "target/counter.wasm")],
//!     );
//!     let server = Server::bind(config).await?;
//!     server.run(roomhost_host::shutdown_signal()).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//!
//! - [`wasm`]: engine, compiled plugins and their cache, one instance per room.
//! - [`room`]: the room table and the actor that runs each room.
//! - [`client`]: the bounded handle a room writes to a client through.
//! - `connection`: one WebSocket connection's reader and writer.
//! - `http`: routes (`/ws/...`, `/status`, `/rooms`).
//! - [`server`]: startup and graceful shutdown.
//! - [`auth`]: token verification (shared secret, PEM keys, JWKS).
//! - [`access`]: who may connect and call rooms, per service (tokens,
//!   rooms claims, read-only grants, origins).
//! - [`admin`]: the gate in front of `/status`, `/rooms` and dev endpoints.
//! - [`dev`]: the live event stream behind `roomhost dev`'s dashboard.
//! - [`limits`] and [`close`]: every bound and every close code.
//! - [`placement`]: which node runs each room when the host is one node of
//!   a cluster (`http::forward` reaches rooms other nodes own).
//! - `native` (feature `native-baseline`, off by default): rooms driven by
//!   native code through the same actor, for benchmark baselines only.

pub mod access;
pub mod admin;
pub mod auth;
pub mod client;
pub mod close;
mod connection;
mod contain;
pub mod dev;
mod http;
pub mod limits;
pub mod metrics;
#[cfg(feature = "native-baseline")]
pub mod native;
mod peering;
pub mod placement;
pub mod room;
pub mod server;
pub mod service;
pub mod storage;
pub mod wasm;

pub use access::AccessPolicy;
pub use admin::{AdminAccess, AdminConfig};
pub use auth::{AuthConfig, JwksSource, TokenVerifier};
pub use limits::Limits;
pub use server::{ReloadError, Server, ServerConfig, ServerError, ServerHandle, shutdown_signal};
pub use service::{Service, ServiceSpec};
pub use wasm::{CompileCache, Plugin, PluginError};
