//! `roomhost-baseline`: serves a room service compiled natively, with the
//! same routes, limits and runtime as `roomhost serve`, for benchmarks only.
//!
//! ```text
//! roomhost-baseline --listen 127.0.0.1:8081 --service fanout
//! ```

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use roomhost_host::{Limits, Server, ServerConfig};

/// Serve a native room service (benchmark baseline; no sandbox).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, short = 'l', default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The service: fanout or counter.
    #[arg(long, default_value = "fanout")]
    service: String,
    /// Most rooms at once (as `roomhost serve --max-rooms`).
    #[arg(long)]
    max_rooms: Option<usize>,
    /// Most connections at once (as `roomhost serve --max-connections`).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Events queued per room (as `roomhost serve --room-inbox`).
    #[arg(long)]
    room_inbox: Option<usize>,
    /// Frames queued per client (as `roomhost serve --client-queue`).
    #[arg(long)]
    client_queue: Option<usize>,
    /// Rooms one address may create per minute (as `roomhost serve
    /// --room-creations-per-minute`).
    #[arg(long)]
    room_creations_per_minute: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let spec = roomhost_baseline::spec(&args.service).with_context(|| {
        format!(
            "unknown service {:?}; expected one of {:?}",
            args.service,
            roomhost_baseline::SERVICES
        )
    })?;
    let mut limits = Limits::default();
    if let Some(max_rooms) = args.max_rooms {
        limits.max_rooms = max_rooms;
    }
    if let Some(max_connections) = args.max_connections {
        limits.max_connections = max_connections;
    }
    if let Some(room_inbox) = args.room_inbox {
        limits.room_inbox = room_inbox;
    }
    if let Some(client_queue) = args.client_queue {
        limits.client_queue = client_queue;
    }
    if let Some(per_minute) = args.room_creations_per_minute {
        limits.room_creations_per_minute = per_minute;
    }
    let mut config = ServerConfig::new(args.listen, vec![spec]);
    config.limits = limits;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        println!(
            "roomhost-baseline listening on http://{} (native {}, no sandbox)",
            server.local_addr(),
            args.service
        );
        server.run(roomhost_host::shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
