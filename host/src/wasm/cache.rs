//! The on-disk cache of compiled plugins, so a restart does not recompile an
//! unchanged plugin.
//!
//! Entries are keyed by the SHA-256 of the component bytes and the engine's
//! compatibility hash (wasmtime version and compilation settings), so a stale
//! or foreign entry is never loaded. Writes go through a temporary file and a
//! rename, so a crash never leaves a half-written entry.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::{fs, io};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache { dir: dir.into() }
    }

    /// The default location: `$XDG_CACHE_HOME/roomhost` or `~/.cache/roomhost`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .map(|base| base.join("roomhost"))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the compiled form of `wasm`, or compiles it and stores the
    /// result. Returns the component and whether it came from the cache.
    /// Cache failures are logged and fall back to compiling.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.entry_path(engine, wasm);
        if path.exists() {
            // SAFETY: entries are written only by `store` below from
            // `Component::serialize` output, under a key that includes the
            // engine's compatibility hash. The cache directory must be trusted
            // like the plugin files themselves.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "ignoring unreadable cache entry")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(error) = component
            .serialize()
            .map_err(io::Error::other)
            .and_then(|bytes| store(&path, &bytes))
        {
            tracing::warn!(path = %path.display(), %error, "cannot write the compile cache");
        }
        Ok((component, false))
    }

    fn entry_path(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut digest = Sha256::new();
        digest.update(wasm);
        digest.update(engine_hash.finish().to_le_bytes());
        self.dir
            .join(format!("{}.cwasm", hex::encode(digest.finalize())))
    }
}

fn store(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("cache entry has no directory"))?;
    fs::create_dir_all(dir)?;
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&temp, bytes)?;
    fs::rename(&temp, path)
}
