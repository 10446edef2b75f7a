//! Node.js for the tests that drive real JavaScript clients (Yjs with
//! y-websocket): the scripts in `tests/node` and their `npm ci`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::{plugin_target_dir, workspace_root};

/// `tests/node`, where the scripts and their `package.json` are.
pub fn node_dir() -> PathBuf {
    workspace_root().join("tests").join("node")
}

/// Runs a command to completion, or explains why it could not start.
fn output(command: &mut Command, what: &str) -> Output {
    command.output().unwrap_or_else(|error| {
        panic!(
            "cannot run {what}: {error}. The tests with JavaScript clients need Node.js 18 or later \
             with npm on PATH (e.g. `apt-get install nodejs npm`)"
        )
    })
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// Checks that node and npm are there and `npm ci` has run against the
/// current lock file: once per test binary (the `OnceLock`), and under a file
/// lock so that concurrent test binaries do not install over each other.
pub fn node_ready() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let version = output(Command::new("node").arg("--version"), "node");
        if !version.status.success() {
            return Err(format!(
                "`node --version` failed ({}): {}",
                version.status,
                String::from_utf8_lossy(&version.stderr)
            ));
        }
        let npm = output(Command::new("npm").arg("--version"), "npm");
        if !npm.status.success() {
            return Err(format!(
                "`npm --version` failed ({}): {}",
                npm.status,
                String::from_utf8_lossy(&npm.stderr)
            ));
        }
        let dir = node_dir();
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
            eprintln!("node tests: npm ci in {}", dir.display());
            let install = output(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&dir),
                "npm",
            );
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
    });
    if let Err(error) = ready {
        panic!("the Node.js checks cannot run: {error}");
    }
}
