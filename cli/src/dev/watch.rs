//! Watches a plugin crate's files and reports changes, debounced: editors
//! write a file in several steps and save several files at once, which must
//! give one rebuild, not five.
//!
//! Cargo's target directory (the configured one, and the crate's top-level
//! `target/`), `.git`, `node_modules` (a TypeScript project's packages) and
//! editor swap files are ignored, so a build never triggers the next one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// A running watcher on one crate directory.
pub(crate) struct Watcher {
    // Kept alive: dropping it stops the watch.
    _watcher: RecommendedWatcher,
    changes: mpsc::Receiver<()>,
}

impl Watcher {
    /// Watches `dir` recursively, ignoring `target_dir`.
    pub(crate) fn start(dir: &Path, target_dir: &Path) -> anyhow::Result<Watcher> {
        // One pending signal is enough: a change during a build means
        // "build again" however many files changed.
        let (signal, changes) = mpsc::channel(1);
        let ignored = Ignored::new(dir, target_dir);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                // Metadata changes (atime, permissions) are what a build's reads
                // cause; only content changes matter.
                let relevant = matches!(
                    event.kind,
                    EventKind::Create(_)
                        | EventKind::Modify(
                            ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any
                        )
                        | EventKind::Remove(_)
                ) && event.paths.iter().any(|path| !ignored.contains(path));
                if relevant {
                    let _ = signal.try_send(());
                }
            })
            .context("cannot start the file watcher")?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
        Ok(Watcher {
            _watcher: watcher,
            changes,
        })
    }

    /// Waits for a change, then until `quiet` passes without another one.
    pub(crate) async fn changed(&mut self, quiet: Duration) -> anyhow::Result<()> {
        self.changes
            .recv()
            .await
            .context("the file watcher stopped")?;
        while let Ok(Some(())) = tokio::time::timeout(quiet, self.changes.recv()).await {}
        Ok(())
    }
}

/// Paths whose changes never trigger a build.
struct Ignored {
    /// The watched crate; only path parts below it are checked, so a crate
    /// that itself lives under some `target/` is still watched.
    dir: PathBuf,
    target_dir: PathBuf,
}

impl Ignored {
    /// Resolves both directories the way the watcher reports paths:
    /// absolute, with symlinks resolved, even when the target directory is
    /// relative or does not exist before the first build.
    fn new(dir: &Path, target_dir: &Path) -> Ignored {
        Ignored {
            dir: resolve(dir),
            target_dir: resolve(target_dir),
        }
    }

    fn contains(&self, path: &Path) -> bool {
        if path.starts_with(&self.target_dir) {
            return true;
        }
        let inside = path.strip_prefix(&self.dir).unwrap_or(path);
        // The crate's own target/ (cargo's default), wherever the build
        // goes; a `target` directory deeper down (src/target/) is source.
        if inside.starts_with("target") {
            return true;
        }
        if inside
            .components()
            .any(|part| part.as_os_str() == ".git" || part.as_os_str() == "node_modules")
        {
            return true;
        }
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        // Editor temporaries: vim swap and probe files, emacs backups/locks.
        name == "Cargo.lock"
            || name.ends_with('~')
            || name.ends_with(".swp")
            || name.ends_with(".swx")
            || name.starts_with(".#")
            || name == "4913"
    }
}

/// `path` made absolute (a relative one against the current directory, as
/// cargo reads `--target-dir`), with symlinks resolved in the part that
/// exists; the part that does not is appended as is.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            return missing
                .iter()
                .rev()
                .fold(canonical, |resolved, part| resolved.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_and_editor_files_are_ignored() {
        let ignored = Ignored {
            dir: PathBuf::from("/work/demo"),
            target_dir: PathBuf::from("/work/demo/target"),
        };
        assert!(ignored.contains(Path::new(
            "/work/demo/target/wasm32-wasip2/release/demo.wasm"
        )));
        assert!(ignored.contains(Path::new("/work/demo/.git/index")));
        assert!(ignored.contains(Path::new(
            "/work/demo/node_modules/@roomhost/sdk/package.json"
        )));
        assert!(!ignored.contains(Path::new("/work/demo/src/index.ts")));
        assert!(ignored.contains(Path::new("/work/demo/src/.lib.rs.swp")));
        assert!(ignored.contains(Path::new("/work/demo/src/lib.rs~")));
        assert!(!ignored.contains(Path::new("/work/demo/src/lib.rs")));
        assert!(!ignored.contains(Path::new("/work/demo/Cargo.toml")));
        assert!(ignored.contains(Path::new("/work/demo/Cargo.lock")));
        let nested = Ignored {
            dir: PathBuf::from("/build/target/demo"),
            target_dir: PathBuf::from("/build/target/demo/target"),
        };
        assert!(!nested.contains(Path::new("/build/target/demo/src/lib.rs")));
    }

    #[test]
    fn only_the_top_level_target_dir_is_ignored() {
        let ignored = Ignored {
            dir: PathBuf::from("/work/demo"),
            target_dir: PathBuf::from("/work/shared-target"),
        };
        assert!(ignored.contains(Path::new("/work/shared-target/release/demo.wasm")));
        assert!(ignored.contains(Path::new("/work/demo/target/debug/build/x")));
        assert!(ignored.contains(Path::new("/work/demo/src/.git/HEAD")));
        // A module directory named target is source.
        assert!(!ignored.contains(Path::new("/work/demo/src/target/mod.rs")));
        assert!(!ignored.contains(Path::new("/work/demo/src/target.rs")));
        assert!(!ignored.contains(Path::new("/work/demo/targets/x.rs")));
    }

    #[test]
    fn a_relative_or_future_target_dir_is_ignored() {
        let cwd = std::env::current_dir().unwrap();
        // Relative to the current directory, as cargo reads --target-dir,
        // and not built yet.
        let ignored = Ignored::new(&cwd, Path::new("not-built-yet/out"));
        assert!(ignored.contains(&cwd.join("not-built-yet/out/wasm32-wasip2/release/x.wasm")));
        assert!(!ignored.contains(&cwd.join("src/lib.rs")));
        // Absolute but missing, through a `..`.
        let ignored = Ignored::new(&cwd, &cwd.join("src/../later"));
        assert!(ignored.contains(&cwd.join("later/release/x.wasm")));
        assert!(!ignored.contains(&cwd.join("src/later.rs")));
    }

    #[tokio::test]
    async fn a_burst_of_changes_is_one_signal() {
        let dir = std::env::temp_dir().join(format!("roomhost-watch-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let mut watcher = Watcher::start(&dir, &dir.join("target")).unwrap();
        for i in 0..5 {
            std::fs::write(dir.join("src").join("lib.rs"), format!("// {i}")).unwrap();
        }
        tokio::time::timeout(
            Duration::from_secs(5),
            watcher.changed(Duration::from_millis(200)),
        )
        .await
        .expect("a change is seen")
        .unwrap();
        // The burst was absorbed; changes under target/ are not seen.
        std::fs::create_dir_all(dir.join("target")).unwrap();
        std::fs::write(dir.join("target").join("out"), "x").unwrap();
        let quiet = tokio::time::timeout(
            Duration::from_millis(500),
            watcher.changed(Duration::from_millis(50)),
        )
        .await;
        assert!(quiet.is_err(), "no further change expected");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
