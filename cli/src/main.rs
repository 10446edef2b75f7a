//! `roomhost`: run WebSocket rooms whose logic is a WebAssembly plugin.

mod build;
mod cluster;
mod config_file;
mod dev;
mod js;
mod loadtest;
mod logging;
mod new;
mod serve;
mod storage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run WebSocket rooms whose logic is a sandboxed WebAssembly plugin.
///
/// Each room is one instance of a plugin built with roomhost-sdk. Clients
/// connect to ws://HOST/ws/{room} (one service) or ws://HOST/ws/{service}/{room}
/// (several); a room is created on first connect and ends when its last client
/// leaves and no timer is pending.
#[derive(Parser)]
#[command(name = "roomhost", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one or more plugins.
    ///
    /// Examples:
    ///   roomhost serve --plugin plugins/chat           (builds the crate, serves /ws/{room})
    ///   roomhost serve --plugin chat=chat.wasm --plugin counter=counter.wasm
    ///   roomhost serve --plugin chat.wasm --config '{"typing_timeout_ms": 2000}'
    ///   roomhost serve                                 (reads ./roomhost.toml)
    #[command(verbatim_doc_comment)]
    Serve(Box<serve::ServeArgs>),
    /// Build a plugin to a release WebAssembly component and print its path.
    ///
    /// A Rust crate is built with cargo (installing the wasm32-wasip2 target with rustup if it
    /// is missing); a TypeScript/JavaScript project (a package.json depending on
    /// @roomhost/sdk) is bundled and componentized by the SDK's roomhost-js, after `npm ci`
    /// or `npm install` when its node_modules is missing.
    Build(build::BuildArgs),
    /// Develop a plugin: build it, serve it with a dashboard, hot-reload it on every edit.
    ///
    /// Builds the plugin in DIR (a crate, or a TypeScript project), serves it (dashboard at
    /// http://ADDR/), watches its files and, on every change, rebuilds and moves every live
    /// room onto the new version. Clients stay connected. Rooms of a service with snapshots
    /// (#[room_service(snapshot = serde)], snapshot/restore by hand, or a TypeScript class's
    /// snapshot() and static restore()) keep their state;
    /// rooms of a service without them restart fresh, with `connect` replayed for each
    /// client. A rebuild that produces the same component leaves the rooms untouched. A failed
    /// build is shown here and on the dashboard while the last good version keeps serving.
    /// Compiled plugins are cached in the target directory's roomhost-dev-cache/.
    ///
    /// Examples:
    ///   roomhost dev                          (the crate or project in the current directory)
    ///   roomhost dev plugins/chat --listen 127.0.0.1:9000
    ///   roomhost dev --config '{"typing_timeout_ms": 2000}'
    #[command(verbatim_doc_comment)]
    Dev(Box<dev::DevArgs>),
    /// Create a plugin crate that `roomhost dev` runs as is.
    ///
    /// Writes NAME/Cargo.toml, NAME/src/lib.rs (an echo room whose state survives hot
    /// reloads, with unit tests through the SDK harness) and NAME/README.md. With --lang ts:
    /// NAME/package.json, NAME/src/index.ts (the same room in TypeScript), a Node test
    /// through the SDK's TestRoom, tsconfig.json and README.md.
    ///
    /// Examples:
    ///   roomhost new demo && cd demo && roomhost dev
    ///   roomhost new demo --lang ts && cd demo && roomhost dev
    #[command(verbatim_doc_comment)]
    New(new::NewArgs),
    /// Load-test a deployment: rooms × clients sending frames that the room broadcasts.
    ///
    /// Each client sends frames carrying their send time (at a fixed --rate, the time the
    /// schedule set, so waiting to send counts as latency); every receiver measures delivery
    /// latency. Assumes the room broadcasts each frame to all its clients (sender included);
    /// other frames are counted and ignored. Reports connections, sent and delivered rates,
    /// expected vs actual deliveries, latency percentiles, errors and server closes by code.
    /// Only loopback targets unless --allow-remote.
    ///
    /// Examples, against a server whose rooms broadcast every frame, started first (from a
    /// roomhost checkout: `roomhost serve --plugin bench/fanout`):
    ///   roomhost loadtest --url ws://127.0.0.1:8080/ws/fanout --rooms 100 --clients-per-room 20
    ///   roomhost loadtest --rate 0 --payload-bytes 1024 --binary   (as fast as echoes return)
    ///   roomhost loadtest --duration-secs 60 --json > report.json
    #[command(verbatim_doc_comment)]
    Loadtest(loadtest::LoadtestArgs),
    /// Inspect and manage what rooms store: list, export, import, delete, back up.
    ///
    /// Works on a data directory no server is using (the embedded store is one file
    /// one process opens at a time); `backup --server URL` copies a running server's
    /// store through its admin endpoint.
    ///
    /// Examples:
    ///   roomhost storage list --data-dir roomhost-data
    ///   roomhost storage export collab my-doc --out my-doc.json
    ///   roomhost storage import my-doc.json
    ///   roomhost storage backup --server http://127.0.0.1:8080 backup.redb
    #[command(verbatim_doc_comment)]
    Storage(storage::StorageArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Build(args) => build::run(args),
        Command::Dev(args) => dev::run(*args),
        Command::New(args) => new::run(args),
        Command::Loadtest(args) => loadtest::run(args),
        Command::Storage(args) => storage::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
