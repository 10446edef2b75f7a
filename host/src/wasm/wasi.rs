//! The WASI a plugin gets, and the check that refuses a plugin asking for
//! more.
//!
//! Toolchains' standard libraries import parts of WASI whether or not the
//! service uses them, so the host links these, each harmless in a room:
//!
//! | interfaces | what a plugin gets |
//! |---|---|
//! | `wasi:cli/stdout`, `stderr` | the host log, line-buffered and rate-limited (see [`super::output`]) |
//! | `wasi:cli/stdin`, `environment`, `terminal-*` | empty: no input, no variables, no arguments, no terminal |
//! | `wasi:cli/exit` | ends the call as a failure: the room is disposed |
//! | `wasi:clocks/*`, `wasi:random/*` | the host's clocks and randomness |
//! | `wasi:filesystem/*` | no directory is opened, so every path fails to open |
//! | `wasi:io/*` | streams and polling for the above |
//!
//! Everything else (`wasi:sockets`, `wasi:http`, `wasi:keyvalue`, ...) is
//! refused when the plugin loads, with the import named: rooms reach the
//! world only through the `roomhost:room` imports.

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::state::RoomState;

/// Import prefixes a plugin may use, WASI version aside.
const PROVIDED: &[&str] = &[
    "roomhost:room/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:io/",
];

/// Links the WASI interfaces of [`PROVIDED`] (as async host functions, so a
/// write never blocks a runtime thread).
pub(crate) fn add_to_linker(linker: &mut Linker<RoomState>) -> wasmtime::Result<()> {
    // This links sockets too; `refused_import` keeps every plugin that
    // imports them from being linked at all.
    wasmtime_wasi::p2::add_to_linker_async(linker)
}

/// The first import of `component` the host does not provide, if any.
pub(crate) fn refused_import(engine: &Engine, component: &Component) -> Option<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name)
        .find(|name| !PROVIDED.iter().any(|prefix| name.starts_with(prefix)))
        .map(str::to_owned)
}

/// The interfaces a plugin may import, for error messages.
pub(crate) fn provided() -> String {
    PROVIDED
        .iter()
        .map(|prefix| format!("{prefix}*"))
        .collect::<Vec<_>>()
        .join(", ")
}
