//! `roomhost dev`: build a plugin crate, serve it with the dev dashboard, and
//! hot-reload it on every change while its rooms and sockets stay up.
//!
//! The loop: wait for a change ([`watch`]), rebuild with a progress line
//! ([`progress`]), and on success reload every live room onto the new
//! version (the host snapshots each room and restores it, or restarts it and
//! replays `connect`). A failed build leaves the last good version serving and
//! shows the compiler's output in the terminal and on the dashboard.

mod progress;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use roomhost_host::dev::{BuildState, DevEvent, DevTap};
use roomhost_host::{CompileCache, Limits, Server, ServerConfig, ServerHandle, ServiceSpec};

use crate::build::PluginBuild;
use crate::serve::{AuthArgs, LimitArgs, default_service_name, init_logging};
use watch::Watcher;

/// Arguments of `roomhost dev`.
#[derive(Args)]
pub struct DevArgs {
    /// The plugin crate to build, serve and watch.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        short = 'l',
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "ROOMHOST_LISTEN"
    )]
    listen: SocketAddr,
    /// The service name in URLs (default: the crate directory's name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The service's configuration as JSON, passed to every room's `init`.
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// Cargo's target directory (default: the crate's own).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Quiet time after the last change before rebuilding.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    debounce_ms: u64,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    init_logging();
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot open the plugin crate {}", args.dir.display()))?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_service_name(&dir)?,
    };
    let config = match &args.config {
        Some(json) => serde_json::from_str(json).context("--config is not valid JSON")?,
        None => serde_json::Value::Null,
    };
    let mut limits = Limits::default();
    args.limits.apply(&mut limits);
    let build = PluginBuild::prepare(&dir, args.target_dir.as_deref())?;
    let debounce = Duration::from_millis(args.debounce_ms);
    let auth = args.auth.config()?;

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut watcher = Watcher::start(build.dir(), build.target_dir())?;
        let tap = DevTap::new();
        // The first build has no old version to fall back on: wait for a fix.
        let wasm = loop {
            match rebuild(&build, &tap).await {
                Some(wasm) => break wasm,
                None => {
                    eprintln!("waiting for a change to {} …", dir.display());
                    watcher.changed(debounce).await?;
                }
            }
        };
        let server = Server::bind(ServerConfig {
            listen: args.listen,
            services: vec![ServiceSpec::new(name.clone(), wasm).with_config(config)],
            limits,
            cache: CompileCache::default_dir().map(CompileCache::new),
            auth,
            dev_tap: Some(tap.clone()),
        })
        .await?;
        let addr = server.local_addr();
        print_banner(addr, &name, &dir);
        let handle = server.handle();
        let mut serving = tokio::spawn(server.run(roomhost_host::shutdown_signal()));
        loop {
            tokio::select! {
                served = &mut serving => {
                    served.context("the server task failed")??;
                    println!("roomhost stopped");
                    return Ok(());
                }
                changed = watcher.changed(debounce) => {
                    changed?;
                    if let Some(wasm) = rebuild(&build, &tap).await {
                        reload(&handle, &name, &wasm).await;
                    }
                }
            }
        }
    })
}

fn print_banner(addr: SocketAddr, name: &str, dir: &Path) {
    println!(
        "roomhost {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  dashboard        http://{addr}/");
    println!("  service {name:<8} ws://{addr}/ws/{{room}}  (also /ws/{name}/{{room}})");
    println!("  watching         {}", dir.display());
}

/// Builds the crate, showing progress and reporting to the dashboard.
/// Returns the component, or `None` when the build failed (reported).
async fn rebuild(build: &PluginBuild, tap: &DevTap) -> Option<PathBuf> {
    tap.publish(DevEvent::build(
        BuildState::Building,
        format!("building {}", build.package()),
    ));
    let started = Instant::now();
    let result = progress::run_build(build).await;
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Ok(wasm) => {
            let message = format!("built {} in {elapsed:.1} s", build.package());
            println!("✓ {message}");
            tap.publish(DevEvent::build(BuildState::Succeeded, message));
            Some(wasm)
        }
        Err(failure) => {
            eprintln!("{}", failure.output.trim_end());
            eprintln!("✗ build failed after {elapsed:.1} s: the last good version keeps serving");
            tap.publish(DevEvent::build(BuildState::Failed, failure.output));
            None
        }
    }
}

/// Moves every live room onto the new build and prints what happened.
async fn reload(handle: &ServerHandle, name: &str, wasm: &Path) {
    match handle.reload(name, wasm).await {
        Ok(report) => {
            println!(
                "↻ reloaded {} rooms in {:.1} ms (restored {}, restarted {}) → version {}",
                report.rooms(),
                report.elapsed.as_secs_f64() * 1000.0,
                report.restored,
                report.restarted,
                report.version,
            );
            for (room, reason) in report.kept_old.iter().chain(&report.failed) {
                let room = if room.is_empty() { "(lobby)" } else { room };
                println!("  ! room {room}: {reason}");
            }
        }
        Err(error) => {
            eprintln!("✗ reload failed: {error}: the last good version keeps serving");
        }
    }
}

/// A failed build: what cargo printed.
#[derive(Debug)]
pub(crate) struct BuildFailure {
    pub(crate) output: String,
}

impl From<anyhow::Error> for BuildFailure {
    fn from(error: anyhow::Error) -> Self {
        BuildFailure {
            output: format!("{error:#}"),
        }
    }
}
