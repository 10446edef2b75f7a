//! The TypeScript SDK's own checks, run by `cargo test`: the SDK's Node
//! tests (`guest-sdk-js/test`: conversions, the harness, the contract types
//! against the WIT, a type-check of the SDK and the plugins) and the unit
//! tests of the TypeScript plugins through the SDK's `TestRoom`. The
//! plugins' protocols over real sockets are checked beside the Rust
//! plugins' in `rooms.rs` and `reload.rs` (the `_ts` tests).
//!
//! Needs `node` and `npm` (Node 18 or later) on `PATH`; `npm ci` runs in
//! `guest-sdk-js` when its `node_modules` is missing or stale.

use std::path::Path;
use std::process::Command;

use roomhost_e2e::{JS_PLUGINS, node, workspace_root};

/// Runs `node ARGS` in `dir` and fails with its output unless it exits 0.
fn node_succeeds(dir: &Path, args: &[&str]) {
    let output = Command::new("node")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run node: {error}"));
    assert!(
        output.status.success(),
        "node {args:?} in {} failed ({}):\n{}{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sdk_ready() -> std::path::PathBuf {
    let sdk = workspace_root().join("guest-sdk-js");
    if let Err(error) = node::npm_ci(&sdk) {
        panic!("the TypeScript SDK cannot be installed: {error}");
    }
    sdk
}

#[test]
fn the_sdk_tests_pass() {
    let sdk = sdk_ready();
    node_succeeds(&sdk, &["--test", "test/"]);
}

#[test]
fn the_typescript_plugins_unit_tests_pass() {
    let sdk = sdk_ready();
    let bin = sdk.join("bin").join("roomhost-js.mjs");
    for name in JS_PLUGINS {
        let dir = workspace_root().join("plugins").join(name);
        node_succeeds(&dir, &[&bin.to_string_lossy(), "test", "."]);
    }
}
