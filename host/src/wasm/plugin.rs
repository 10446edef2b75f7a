//! A plugin: a component compiled once, linked once, instantiated per room.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};

use super::bindings::{Room, RoomPre};
use super::cache::CompileCache;
use super::engine::WasmEngine;
use super::state::RoomState;
use super::wasi;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is a core wasm module, not a component.
    #[error(
        "{path} is a core WebAssembly module, not a component: build it for `wasm32-wasip2` (e.g. `roomhost build`)"
    )]
    NotAComponent {
        /// The plugin file.
        path: PathBuf,
    },
    /// The file is not valid WebAssembly or failed to compile.
    #[error("cannot compile plugin {path}: {source:#}")]
    Compile {
        /// The plugin file.
        path: PathBuf,
        /// The compiler's error.
        source: wasmtime::Error,
    },
    /// The component imports an interface the host does not give plugins
    /// (sockets, HTTP, ...).
    #[error(
        "plugin {path} imports `{import}`, which roomhost does not provide: rooms reach the network only through roomhost's own imports (plugins may import {provided})"
    )]
    RefusedImport {
        /// The plugin file.
        path: PathBuf,
        /// The import, as the component names it.
        import: String,
        /// What plugins may import.
        provided: String,
    },
    /// The component was built for another version of the contract (an
    /// older one, in practice: rebuilding with the current SDK fixes it).
    #[error(
        "plugin {path} was built for roomhost:room@{version}, and this host speaks roomhost:room@{current}: rebuild it with the current roomhost-sdk (`roomhost build`)"
    )]
    OldContract {
        /// The plugin file.
        path: PathBuf,
        /// The contract version the component imports.
        version: String,
        /// The contract version this host implements.
        current: &'static str,
    },
    /// The plugin's `describe` failed (it trapped or ran out of time).
    #[error("plugin {path} failed to describe itself: {reason}")]
    Describe {
        /// The plugin file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The component does not fit the `roomhost:room` world.
    #[error(
        "plugin {path} does not implement the roomhost:room@0.4.0 world (was it built with roomhost-sdk?): {source:#}"
    )]
    Link {
        /// The plugin file.
        path: PathBuf,
        /// The linker's error.
        source: wasmtime::Error,
    },
}

/// A loaded plugin, ready to instantiate rooms from.
pub struct Plugin {
    code: Code,
    version: String,
    path: PathBuf,
    from_cache: bool,
    /// What the plugin's `describe` said.
    description: Description,
}

/// What a service is, as its plugin's `describe` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Description {
    /// Whether the service has a lobby.
    pub lobby: bool,
    /// How long a member whose connection was lost waits to reconnect
    /// (zero: reconnection off), as asked (before the host's cap).
    pub reconnect_grace: std::time::Duration,
    /// Whether the component imports `storage`: its rooms' data is loaded
    /// when they start, and their output waits for each event's commit.
    pub uses_storage: bool,
}

/// The contract version this host implements (`guest-sdk/wit/room.wit`).
pub const CONTRACT_VERSION: &str = "0.4.0";

impl Plugin {
    /// Loads the component at `path`, compiling it (or reusing `cache`) and
    /// linking it against the host's imports.
    pub fn load(
        engine: &WasmEngine,
        path: &Path,
        cache: Option<&CompileCache>,
    ) -> Result<Plugin, PluginError> {
        let wasm = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(engine, path, &wasm, cache)
    }

    /// Like [`Plugin::load`] with the component's bytes already in memory;
    /// `path` is used in messages only.
    pub fn from_bytes(
        engine: &WasmEngine,
        path: &Path,
        wasm: &[u8],
        cache: Option<&CompileCache>,
    ) -> Result<Plugin, PluginError> {
        if is_core_module(wasm) {
            return Err(PluginError::NotAComponent {
                path: path.to_owned(),
            });
        }
        let compile_error = |source| PluginError::Compile {
            path: path.to_owned(),
            source,
        };
        let (component, from_cache) = match cache {
            Some(cache) => cache
                .load_or_compile(engine.engine(), wasm)
                .map_err(compile_error)?,
            None => (
                wasmtime::component::Component::new(engine.engine(), wasm)
                    .map_err(compile_error)?,
                false,
            ),
        };
        if let Some(import) = wasi::refused_import(engine.engine(), &component) {
            return Err(PluginError::RefusedImport {
                path: path.to_owned(),
                import,
                provided: wasi::provided(),
            });
        }
        if let Some(version) = older_contract(engine.engine(), &component) {
            return Err(PluginError::OldContract {
                path: path.to_owned(),
                version,
                current: CONTRACT_VERSION,
            });
        }
        let link_error = |source| PluginError::Link {
            path: path.to_owned(),
            source,
        };
        let mut linker = Linker::<RoomState>::new(engine.engine());
        wasi::add_to_linker(&mut linker).map_err(link_error)?;
        Room::add_to_linker::<RoomState, HasSelf<RoomState>>(&mut linker, |state| state)
            .map_err(link_error)?;
        let pre = linker.instantiate_pre(&component).map_err(link_error)?;
        let pre = RoomPre::new(pre).map_err(link_error)?;
        let uses_storage = imports_storage(engine.engine(), &component);
        Ok(Plugin {
            code: Code::Wasm(pre),
            version: hex::encode(&Sha256::digest(wasm)[..6]),
            path: path.to_owned(),
            from_cache,
            description: Description {
                uses_storage,
                ..Description::default()
            },
        })
    }

    /// Records what the plugin's `describe` said (see `describe`).
    pub(super) fn described(mut self, description: Description) -> Plugin {
        self.description = Description {
            uses_storage: self.description.uses_storage,
            ..description
        };
        self
    }

    /// Whether the service has a lobby (its `describe` said so).
    pub fn has_lobby(&self) -> bool {
        self.description.lobby
    }

    /// What the plugin's `describe` said.
    pub fn description(&self) -> Description {
        self.description
    }

    /// A short content hash of the component: the plugin version shown in
    /// `/rooms` and `/status`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The file the plugin was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// The linked component (`None` for a native plugin).
    pub(crate) fn pre(&self) -> Option<&RoomPre<RoomState>> {
        match &self.code {
            Code::Wasm(pre) => Some(pre),
            #[cfg(feature = "native-baseline")]
            Code::Native(_) => None,
        }
    }

    /// A plugin whose rooms run `factory`'s native code instead of wasm
    /// (the benchmark baseline). Its version is `native`.
    #[cfg(feature = "native-baseline")]
    pub fn native(name: &str, factory: crate::native::NativeFactory) -> Plugin {
        Plugin {
            code: Code::Native(factory),
            version: "native".to_owned(),
            path: PathBuf::from(format!("native:{name}")),
            from_cache: false,
            description: Description::default(),
        }
    }

    /// The native room factory (`None` for a wasm plugin).
    #[cfg(feature = "native-baseline")]
    pub(crate) fn native_factory(&self) -> Option<&crate::native::NativeFactory> {
        match &self.code {
            Code::Wasm(_) => None,
            Code::Native(factory) => Some(factory),
        }
    }
}

/// What a plugin's rooms run: a linked component or, for the benchmark
/// baseline only, native code.
enum Code {
    Wasm(RoomPre<RoomState>),
    #[cfg(feature = "native-baseline")]
    Native(crate::native::NativeFactory),
}

/// A core module's preamble is `\0asm` then version 1, layer 0; a component
/// has layer 1.
fn is_core_module(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[..4] == *b"\0asm" && wasm[4..8] == [1, 0, 0, 0]
}

/// Whether the component imports the `storage` interface (a component
/// imports only the interfaces its code calls).
fn imports_storage(engine: &wasmtime::Engine, component: &wasmtime::component::Component) -> bool {
    let storage = format!("roomhost:room/storage@{CONTRACT_VERSION}");
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name == storage)
}

/// The version of the `roomhost:room` contract the component imports, when
/// it is not [`CONTRACT_VERSION`] (a plugin built with an older SDK).
fn older_contract(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Option<String> {
    component
        .component_type()
        .imports(engine)
        .find_map(|(name, _)| {
            let version = name.strip_prefix("roomhost:room/")?.split_once('@')?.1;
            (version != CONTRACT_VERSION).then(|| version.to_owned())
        })
}
