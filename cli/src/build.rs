//! `roomhost build`: compile a plugin (a Rust crate, or a JavaScript/
//! TypeScript project: see [`crate::js`]) to a WebAssembly component.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;

use crate::js::{self, JsProject};

/// The target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Arguments of `roomhost build`.
#[derive(Args)]
pub struct BuildArgs {
    /// The plugin: a crate (a directory with a Cargo.toml) or a
    /// JavaScript/TypeScript project (a package.json depending on
    /// @roomhost/sdk).
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

/// Builds the plugin in `dir` (a crate in release mode for
/// [`WASM_TARGET`], or a JavaScript/TypeScript project) and returns the
/// component's path. The build's progress goes to stderr.
pub fn build_plugin(dir: &Path, target_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let build = PluginBuild::prepare(dir, target_dir)?;
    eprintln!("building plugin {}", build.package());
    let status = build
        .command()
        .status()
        .with_context(|| format!("cannot run {}", build.tool()))?;
    if !status.success() {
        bail!(
            "building {} failed ({} exited with {status})",
            dir.display(),
            build.tool()
        );
    }
    build.output()
}

/// A plugin checked and ready to build, as often as needed (the dev loop
/// rebuilds it on every change).
pub struct PluginBuild {
    dir: PathBuf,
    target_dir: Option<PathBuf>,
    kind: Kind,
}

/// What builds the plugin.
enum Kind {
    /// A Rust crate: cargo.
    Rust {
        manifest: PathBuf,
        crate_info: CrateInfo,
    },
    /// A JavaScript/TypeScript project: the SDK's `roomhost-js build`.
    Js(JsProject),
}

impl PluginBuild {
    /// Checks that `dir` is a plugin crate (installing the wasm target if
    /// missing) or a JavaScript/TypeScript project (installing its npm
    /// packages if missing).
    pub fn prepare(dir: &Path, target_dir: Option<&Path>) -> anyhow::Result<PluginBuild> {
        let kind = if js::is_project(dir) {
            Kind::Js(JsProject::prepare(dir)?)
        } else {
            let manifest = dir.join("Cargo.toml");
            if !manifest.is_file() {
                bail!(
                    "{} is not a plugin: it has no Cargo.toml (a Rust crate) or package.json \
                     (a TypeScript project)",
                    dir.display()
                );
            }
            ensure_wasm_target()?;
            let crate_info = CrateInfo::read(&manifest)?;
            Kind::Rust {
                manifest,
                crate_info,
            }
        };
        Ok(PluginBuild {
            dir: dir.to_owned(),
            target_dir: target_dir.map(Path::to_path_buf),
            kind,
        })
    }

    /// The crate's or project's package name.
    pub fn package(&self) -> &str {
        match &self.kind {
            Kind::Rust { crate_info, .. } => &crate_info.package,
            Kind::Js(project) => &project.name,
        }
    }

    /// The program that builds it, for messages.
    pub fn tool(&self) -> &'static str {
        match self.kind {
            Kind::Rust { .. } => "cargo",
            Kind::Js(_) => "roomhost-js",
        }
    }

    /// The plugin's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The build command; the caller decides where its output goes.
    pub fn command(&self) -> Command {
        let (manifest, crate_info) = match &self.kind {
            Kind::Rust {
                manifest,
                crate_info,
            } => (manifest, crate_info),
            Kind::Js(project) => return project.command(&self.dir, &self.js_output()),
        };
        let mut cargo = Command::new(cargo());
        cargo
            .args([
                "build",
                "--release",
                "--target",
                WASM_TARGET,
                "--manifest-path",
            ])
            .arg(manifest)
            .args(["-p", &crate_info.package]);
        if let Some(target_dir) = &self.target_dir {
            cargo.arg("--target-dir").arg(target_dir);
        }
        cargo
    }

    /// The component a successful build produced.
    pub fn output(&self) -> anyhow::Result<PathBuf> {
        let lib_name = match &self.kind {
            Kind::Rust { crate_info, .. } => &crate_info.lib_name,
            Kind::Js(_) => {
                let wasm = self.js_output();
                if !wasm.is_file() {
                    bail!("roomhost-js succeeded but {} is missing", wasm.display());
                }
                return Ok(wasm);
            }
        };
        let wasm = self
            .target_dir()
            .join(WASM_TARGET)
            .join("release")
            .join(format!("{lib_name}.wasm"));
        if !wasm.is_file() {
            bail!(
                "cargo succeeded but {} is missing: does the crate have `crate-type = [\"cdylib\"]`?",
                wasm.display()
            );
        }
        Ok(wasm)
    }

    /// The build's output directory (ignored by the dev watcher): cargo's
    /// target directory for a crate, `DIR/target` for a JavaScript project.
    pub fn target_dir(&self) -> PathBuf {
        if let Some(dir) = &self.target_dir {
            return dir.clone();
        }
        match &self.kind {
            Kind::Rust { crate_info, .. } => crate_info.target_dir.clone(),
            Kind::Js(_) => self.dir.join("target"),
        }
    }

    /// Where a JavaScript project's component goes.
    fn js_output(&self) -> PathBuf {
        self.target_dir()
            .join("roomhost")
            .join(format!("{}.wasm", self.package().replace('-', "_")))
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
