//! Node.js for the tests: checking that `node` and `npm` are there and
//! running `npm ci` in a package directory when its `node_modules` is
//! missing or older than its lock file, under a file lock so concurrent
//! test binaries do not install over each other.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Output};
use std::time::SystemTime;

use crate::plugin_target_dir;

/// Runs a command to completion, or says why it could not start.
fn output(command: &mut Command, what: &str) -> Result<Output, String> {
    command.output().map_err(|error| {
        format!(
            "cannot run {what}: {error}. These tests need Node.js 18 or later with npm on PATH \
             (e.g. `apt-get install nodejs npm`)"
        )
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// Checks that `node` and `npm` run.
fn tools_present() -> Result<(), String> {
    for tool in ["node", "npm"] {
        let version = output(Command::new(tool).arg("--version"), tool)?;
        if !version.status.success() {
            return Err(format!(
                "`{tool} --version` failed ({}): {}",
                version.status,
                String::from_utf8_lossy(&version.stderr)
            ));
        }
    }
    Ok(())
}

/// Makes sure `npm ci` has run in `dir` against its current lock file.
pub fn npm_ci(dir: &Path) -> Result<(), String> {
    tools_present()?;
    std::fs::create_dir_all(plugin_target_dir()).map_err(|error| error.to_string())?;
    let lock = File::create(plugin_target_dir().join("npm-ci.lock"))
        .map_err(|error| format!("cannot create the npm lock file: {error}"))?;
    lock.lock()
        .map_err(|error| format!("cannot lock the npm lock file: {error}"))?;
    let installed = modified(&dir.join("node_modules").join(".package-lock.json"));
    let wanted = modified(&dir.join("package-lock.json"));
    let stale = match (installed, wanted) {
        (Some(installed), Some(wanted)) => installed < wanted,
        _ => true,
    };
    if stale {
        eprintln!("npm ci in {}", dir.display());
        let install = output(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir),
            "npm",
        )?;
        if !install.status.success() {
            return Err(format!(
                "`npm ci` in {} failed ({}):\n{}{}",
                dir.display(),
                install.status,
                String::from_utf8_lossy(&install.stdout),
                String::from_utf8_lossy(&install.stderr)
            ));
        }
    }
    Ok(())
}

/// `tests/node`: the scripts that drive Yjs clients (`collab.mjs`,
/// `crash.mjs`) and their `package.json`.
pub fn node_dir() -> std::path::PathBuf {
    crate::workspace_root().join("tests").join("node")
}

/// Makes sure `npm ci` has run in [`node_dir`]: once per test binary.
pub fn node_ready() {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Err(error) = READY.get_or_init(|| npm_ci(&node_dir())) {
        panic!("the Node.js checks cannot run: {error}");
    }
}
