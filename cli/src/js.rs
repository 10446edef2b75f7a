//! JavaScript/TypeScript service projects (a `package.json`, no
//! `Cargo.toml`): finding the SDK the project depends on, installing from
//! npm what is missing (the project's packages, and the SDK's own when it
//! is linked from a checkout), and the SDK's `roomhost-js build` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The SDK package every project depends on.
const SDK_PACKAGE: &str = "@roomhost/sdk";

/// Whether `dir` is a JavaScript/TypeScript service project.
pub fn is_project(dir: &Path) -> bool {
    dir.join("package.json").is_file() && !dir.join("Cargo.toml").is_file()
}

/// A JavaScript/TypeScript project ready to build.
pub struct JsProject {
    /// The package name (`package.json`'s `name`, scope dropped).
    pub name: String,
    /// The SDK's `bin/roomhost-js.mjs`.
    sdk_bin: PathBuf,
}

impl JsProject {
    /// Reads `dir/package.json` and installs what the build needs: the
    /// project's packages when `node_modules` is missing (`npm ci` with a
    /// lock file, `npm install` without), then the SDK's own packages when
    /// the SDK is a linked checkout without them.
    pub fn prepare(dir: &Path) -> anyhow::Result<JsProject> {
        let manifest = dir.join("package.json");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let package: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", manifest.display()))?;
        let name = package["name"]
            .as_str()
            .map(|name| name.rsplit('/').next().unwrap_or(name).to_owned())
            .with_context(|| format!("{} has no \"name\"", manifest.display()))?;
        let declared = ["dependencies", "devDependencies"]
            .iter()
            .any(|field| package[field].get(SDK_PACKAGE).is_some());
        if !declared {
            bail!(
                "{} does not depend on {SDK_PACKAGE}: add it (roomhost new NAME --lang ts shows how)",
                manifest.display()
            );
        }
        if !dir.join("node_modules").is_dir() {
            npm_install(dir)?;
        }
        let sdk = dir
            .join("node_modules")
            .join(SDK_PACKAGE)
            .canonicalize()
            .with_context(|| {
                format!(
                    "{SDK_PACKAGE} is not installed in {}: run `npm install` there",
                    dir.display()
                )
            })?;
        if !sdk.join("node_modules").is_dir() {
            npm_install(&sdk)?;
        }
        Ok(JsProject {
            name,
            sdk_bin: sdk.join("bin").join("roomhost-js.mjs"),
        })
    }

    /// `node roomhost-js.mjs build DIR --out OUTPUT`.
    pub fn command(&self, dir: &Path, output: &Path) -> Command {
        let mut node = Command::new("node");
        node.arg(&self.sdk_bin)
            .arg("build")
            .arg(dir)
            .arg("--out")
            .arg(output);
        node
    }
}

/// `npm ci` (with a lock file) or `npm install` in `dir`, output shown.
fn npm_install(dir: &Path) -> anyhow::Result<()> {
    let verb = if dir.join("package-lock.json").is_file() {
        "ci"
    } else {
        "install"
    };
    eprintln!("npm {verb} in {}", dir.display());
    let status = Command::new("npm")
        .args([verb, "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .context("cannot run npm: install Node.js 18 or later with npm")?;
    if !status.success() {
        bail!("`npm {verb}` in {} failed ({status})", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_json_without_cargo_toml_is_a_js_project() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert!(is_project(&root.join("plugins").join("counter-ts")));
        assert!(!is_project(&root.join("plugins").join("counter")));
        assert!(!is_project(&root.join("nonexistent")));
    }
}
