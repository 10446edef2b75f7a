//! `roomhost dev`: build a plugin crate, serve it with the dev dashboard, and
//! hot-reload it on every change while its rooms and sockets stay up.
//!
//! The loop: wait for a change ([`watch`]), rebuild with a progress line
//! ([`progress`]), and on success reload every live room onto the new
//! version (the host snapshots each room and restores it, or restarts it and
//! replays `connect`). A rebuild that produced the same component reloads
//! nothing. A failed build leaves the last good version serving and shows the
//! compiler's output in the terminal and on the dashboard.
//!
//! Compiled plugins are cached under the build's target directory, not in the
//! user's cache that `serve` uses: every edit makes a new version, and `cargo
//! clean` is where a developer expects them to go.

mod progress;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use roomhost_host::dev::{BuildState, DevEvent, DevTap};
use roomhost_host::room::ReloadReport;
use roomhost_host::{CompileCache, Limits, Server, ServerConfig, ServerHandle, ServiceSpec};

use crate::build::PluginBuild;
use crate::serve::{
    AdminArgs, AuthArgs, DEFAULT_LISTEN, LimitArgs, apply_config_flag, default_service_name,
    print_banner,
};
use progress::Built;
use watch::Watcher;

/// Where dev keeps compiled plugins, under the build's target directory:
/// every edit compiles a new version, and `cargo clean` removes them all.
const COMPILE_CACHE_DIR: &str = "roomhost-dev-cache";
/// Where `dev` keeps rooms' stored data, in the target directory.
const DEV_DATA_DIR: &str = "roomhost-dev-data";

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
        default_value = DEFAULT_LISTEN,
        env = "ROOMHOST_LISTEN"
    )]
    listen: SocketAddr,
    /// The service name in URLs (default: the crate directory's name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The service's configuration as JSON (or NAME=JSON, as for serve),
    /// passed to every room's `init`.
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// Cargo's target directory (default: the crate's own). Compiled plugins
    /// are cached in its roomhost-dev-cache/ (removed by `cargo clean`), not
    /// in ~/.cache/roomhost as for serve.
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Quiet time after the last change before rebuilding.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    debounce_ms: u64,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    data: crate::storage::DataArgs,
    #[command(flatten)]
    log: crate::logging::LogArgs,
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    crate::logging::init(&args.log);
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot open the plugin crate {}", args.dir.display()))?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_service_name(&dir)?,
    };
    // Configured before the first build, so a bad --config fails at once;
    // the build fills in the plugin.
    let mut service = ServiceSpec::new(name.clone(), PathBuf::new());
    if let Some(config) = &args.config {
        apply_config_flag(std::slice::from_mut(&mut service), config)?;
    }
    let mut limits = Limits::default();
    args.limits.apply(&mut limits);
    let build = PluginBuild::prepare(&dir, args.target_dir.as_deref())?;
    let cache = CompileCache::new(build.target_dir().join(COMPILE_CACHE_DIR));
    // Project-local, beside the compile cache, one per service (a
    // workspace's plugins share a target directory): a dev restart keeps rooms'
    // data, and `cargo clean` removes it.
    let storage = args
        .data
        .open(&build.target_dir().join(DEV_DATA_DIR).join(&name))?;
    let debounce = Duration::from_millis(args.debounce_ms);
    let auth = args.auth.config(None)?;
    let admin = args.admin.config(false)?;

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut watcher = Watcher::start(build.dir(), &build.target_dir())?;
        let tap = DevTap::new();
        // The first build has no old version to fall back on: wait for a fix.
        let built = loop {
            match rebuild(&build, &tap).await {
                Some(built) => break built,
                None => {
                    eprintln!("waiting for a change to {} …", dir.display());
                    watcher.changed(debounce).await?;
                }
            }
        };
        service.plugin = built.wasm;
        let server = Server::bind(ServerConfig {
            listen: args.listen,
            services: vec![service],
            limits,
            cache: Some(cache),
            auth,
            admin,
            dev_tap: Some(tap.clone()),
            storage,
            placement: None,
        })
        .await?;
        // Listening for signals before the banner says the server is up.
        let shutdown = roomhost_host::shutdown_signal();
        print_banner(&server);
        println!("  dashboard        http://{}/", server.local_addr());
        println!("  watching         {}", dir.display());
        let handle = server.handle();
        let mut served = tokio::spawn(server.run(shutdown));
        loop {
            tokio::select! {
                result = &mut served => {
                    result.context("the server task failed")??;
                    println!("roomhost stopped");
                    return Ok(());
                }
                changed = watcher.changed(debounce) => {
                    changed?;
                    let Some(built) = rebuild(&build, &tap).await else { continue };
                    // The host leaves a room already on this version alone,
                    // so an identical rebuild touches nothing.
                    reload(&handle, &name, &built.wasm).await;
                }
            }
        }
    })
}

/// Builds the crate, showing progress and reporting to the dashboard.
/// Returns the component, or `None` when the build failed (reported).
async fn rebuild(build: &PluginBuild, tap: &DevTap) -> Option<Built> {
    tap.publish(DevEvent::build(
        BuildState::Building,
        format!("building {}", build.package()),
    ));
    let started = Instant::now();
    let result = progress::run_build(build).await;
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Ok(built) => {
            let mut message = format!("built {} in {elapsed:.1} s", build.package());
            match built.warnings {
                0 => {}
                1 => message.push_str(" with 1 warning (`cargo build` in the crate shows it)"),
                n => message.push_str(&format!(
                    " with {n} warnings (`cargo build` in the crate shows them)"
                )),
            }
            // Published before it is printed: whoever reads the line (a
            // person, a test) then finds the dashboard's history has it.
            tap.publish(DevEvent::build(BuildState::Succeeded, message.clone()));
            println!("✓ {message}");
            Some(built)
        }
        Err(failure) => {
            let output = failure.output.trim_end().to_owned();
            tap.publish(DevEvent::build(BuildState::Failed, failure.output));
            eprintln!("{output}");
            eprintln!("✗ build failed after {elapsed:.1} s: the last good version keeps serving");
            None
        }
    }
}

/// Moves every live room onto the new build and prints what happened.
async fn reload(handle: &ServerHandle, name: &str, wasm: &Path) {
    match handle.reload(name, wasm).await {
        Ok(report) => {
            println!("{}", reload_line(&report));
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

/// The one-line summary of a reload.
fn reload_line(report: &ReloadReport) -> String {
    if report.unchanged > 0 && report.unchanged == report.rooms() {
        return format!(
            "= plugin unchanged; rooms untouched (version {})",
            report.version
        );
    }
    let moved = report.restored + report.restarted;
    let kept = report.kept_old.len();
    let failed = report.failed.len();
    let mut counts = vec![
        format!("restored {}", report.restored),
        format!("restarted {}", report.restarted),
    ];
    for (count, what) in [
        (report.unchanged, "unchanged"),
        (kept, "kept the old version"),
        (failed, "disposed"),
    ] {
        if count > 0 {
            counts.push(format!("{what} {count}"));
        }
    }
    let elapsed = report.elapsed.as_secs_f64() * 1000.0;
    let counts = counts.join(", ");
    if moved == 0 && kept + failed > 0 {
        return format!(
            "✗ no room reloaded in {elapsed:.1} ms ({counts}); new rooms get version {}",
            report.version
        );
    }
    format!(
        "↻ reloaded {moved} of {} rooms in {elapsed:.1} ms ({counts}) → version {}",
        report.rooms(),
        report.version,
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(restored: usize, restarted: usize, unchanged: usize) -> ReloadReport {
        ReloadReport {
            service: "demo".to_owned(),
            version: "abc123".to_owned(),
            restored,
            restarted,
            unchanged,
            kept_old: Vec::new(),
            failed: Vec::new(),
            elapsed: Duration::from_millis(3),
        }
    }

    #[test]
    fn a_reload_that_changed_nothing_says_so() {
        assert_eq!(
            reload_line(&report(0, 0, 2)),
            "= plugin unchanged; rooms untouched (version abc123)"
        );
        let line = reload_line(&report(2, 1, 0));
        assert!(line.starts_with("↻ reloaded 3 of 3 rooms"), "{line}");
        assert!(line.contains("(restored 2, restarted 1)"), "{line}");
        assert!(line.ends_with("→ version abc123"), "{line}");
        let mixed = reload_line(&report(1, 0, 1));
        assert!(
            mixed.contains("(restored 1, restarted 0, unchanged 1)"),
            "{mixed}"
        );
        // No rooms at all: a reload, not an unchanged plugin.
        assert!(reload_line(&report(0, 0, 0)).starts_with("↻ reloaded 0 of 0 rooms"));
    }

    #[test]
    fn rooms_kept_on_the_old_version_are_counted() {
        let mut all_kept = report(0, 0, 0);
        all_kept.kept_old = vec![("a".into(), "bad snapshot".into()); 2];
        let line = reload_line(&all_kept);
        assert!(line.starts_with("✗ no room reloaded"), "{line}");
        assert!(line.contains("kept the old version 2"), "{line}");

        let mut some_kept = report(1, 0, 0);
        some_kept.kept_old = vec![("a".into(), "bad snapshot".into())];
        let line = reload_line(&some_kept);
        assert!(line.starts_with("↻ reloaded 1 of 2 rooms"), "{line}");
        assert!(line.contains("kept the old version 1"), "{line}");
    }
}
