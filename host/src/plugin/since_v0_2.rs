//! `mysimbdp:tenant@0.2.0`: the manifest (a TOML document, `plugin/manifest.rs`) is separated
//! from the calls, so a new setting is a new key rather than a new signature. The calls and
//! their data types are those of 0.1.0, on the host's own types (`crate::model`).

/// The types of `mysimbdp:tenant/types@0.2.0`, as the host holds them.
pub mod types {
    pub use crate::model::{Batch, States};

    host_types_interface!("mysimbdp:tenant/types@0.2.0");
}

wasmtime::component::bindgen!({
    path: "../wit/v0.2",
    world: "tenant-app",
    with: {
        "mysimbdp:tenant/types@0.2.0": types,
    },
});

/// The version's name, as components declare it.
pub const CONTRACT: &str = "mysimbdp:tenant@0.2.0";
