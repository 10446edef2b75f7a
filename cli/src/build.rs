//! `roomhost build`: compile a plugin crate to a WebAssembly component.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;

/// The target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Arguments of `roomhost build`.
#[derive(Args)]
pub struct BuildArgs {
    /// The plugin crate (a directory with a Cargo.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Cargo's target directory (default: the crate's own).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let wasm = build_plugin(&args.dir, args.target_dir.as_deref())?;
    println!("{}", wasm.display());
    Ok(())
}

/// Builds the plugin crate in `dir` in release mode for [`WASM_TARGET`] and
/// returns the component's path. Cargo's progress goes to stderr.
pub fn build_plugin(dir: &Path, target_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let build = PluginBuild::prepare(dir, target_dir)?;
    eprintln!("building plugin {} for {WASM_TARGET}", build.package());
    let status = build.command().status().context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "building {} failed (cargo exited with {status})",
            dir.display()
        );
    }
    build.output()
}

/// A plugin crate checked and ready to build, as often as needed (the dev
/// loop rebuilds it on every change).
pub struct PluginBuild {
    dir: PathBuf,
    manifest: PathBuf,
    target_dir: Option<PathBuf>,
    crate_info: CrateInfo,
}

impl PluginBuild {
    /// Checks that `dir` is a plugin crate and that the wasm target is
    /// installed (installing it if not).
    pub fn prepare(dir: &Path, target_dir: Option<&Path>) -> anyhow::Result<PluginBuild> {
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() {
            bail!(
                "{} is not a plugin crate: it has no Cargo.toml",
                dir.display()
            );
        }
        ensure_wasm_target()?;
        let crate_info = CrateInfo::read(&manifest)?;
        Ok(PluginBuild {
            dir: dir.to_owned(),
            manifest,
            target_dir: target_dir.map(Path::to_path_buf),
            crate_info,
        })
    }

    /// The crate's package name.
    pub fn package(&self) -> &str {
        &self.crate_info.package
    }

    /// The crate directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `cargo build` command; the caller decides where its output goes.
    pub fn command(&self) -> Command {
        let mut cargo = Command::new(cargo());
        cargo
            .args([
                "build",
                "--release",
                "--target",
                WASM_TARGET,
                "--manifest-path",
            ])
            .arg(&self.manifest)
            .args(["-p", &self.crate_info.package]);
        if let Some(target_dir) = &self.target_dir {
            cargo.arg("--target-dir").arg(target_dir);
        }
        cargo
    }

    /// The component a successful build produced.
    pub fn output(&self) -> anyhow::Result<PathBuf> {
        let wasm = self
            .target_dir()
            .join(WASM_TARGET)
            .join("release")
            .join(format!("{}.wasm", self.crate_info.lib_name));
        if !wasm.is_file() {
            bail!(
                "cargo succeeded but {} is missing: does the crate have `crate-type = [\"cdylib\"]`?",
                wasm.display()
            );
        }
        Ok(wasm)
    }

    /// Cargo's target directory for this crate (ignored by the dev watcher).
    pub fn target_dir(&self) -> &Path {
        self.target_dir
            .as_deref()
            .unwrap_or(&self.crate_info.target_dir)
    }
}

/// Installs the wasm target with rustup when it is missing.
fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::inherit())
        .output();
    match installed {
        Ok(output) if output.status.success() => {
            if String::from_utf8_lossy(&output.stdout)
                .lines()
                .any(|line| line.trim() == WASM_TARGET)
            {
                return Ok(());
            }
        }
        // Without rustup, trust that the toolchain has the target.
        _ => return Ok(()),
    }
    eprintln!("installing the {WASM_TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup target add {WASM_TARGET}` failed ({status})");
    }
    Ok(())
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// What `cargo metadata` says about the plugin crate.
struct CrateInfo {
    package: String,
    lib_name: String,
    target_dir: PathBuf,
}

impl CrateInfo {
    fn read(manifest: &Path) -> anyhow::Result<CrateInfo> {
        let output = Command::new(cargo())
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(manifest)
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run cargo metadata")?;
        if !output.status.success() {
            bail!("cargo metadata failed for {}", manifest.display());
        }
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
            .context("cargo metadata printed invalid JSON")?;
        let manifest = manifest
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", manifest.display()))?;
        let package = metadata["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|package| {
                package["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path())
            })
            .with_context(|| format!("{} defines no package", manifest.display()))?;
        let lib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "cdylib"))
            })
            .with_context(|| {
                format!(
                    "{} has no cdylib library: add `[lib] crate-type = [\"cdylib\"]`",
                    manifest.display()
                )
            })?;
        Ok(CrateInfo {
            package: package["name"].as_str().unwrap_or_default().to_owned(),
            lib_name: lib["name"].as_str().unwrap_or_default().replace('-', "_"),
            target_dir: PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target")),
        })
    }
}
