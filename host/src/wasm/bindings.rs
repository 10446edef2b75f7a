//! Rust bindings for the `roomhost:room` WIT world, generated from
//! `guest-sdk/wit`, the single source of truth for the plugin ABI.

wasmtime::component::bindgen!({
    path: "../guest-sdk/wit",
    world: "room",
    // Calls into the plugin are async so they can yield between time
    // slices; the host's imports never block and stay synchronous.
    exports: { default: async },
});
