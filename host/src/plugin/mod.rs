//! Tenant apps as sandboxed WebAssembly components: compiling and checking them against the
//! contract, describing them, and calling them with limits.

/// What the bindings of a world expect of a `types` interface mapped onto the host's own types
/// with `with`: its (empty) host traits and linker entry, as `bindgen!` would have made them
/// for an interface that has types and no functions.
macro_rules! host_types_interface {
    ($name:literal) => {
        #[allow(dead_code)]
        pub trait HostWithStore<T>: wasmtime::component::HasData {}
        impl<H: ?Sized + wasmtime::component::HasData, T> HostWithStore<T> for H {}
        #[allow(dead_code)]
        pub trait Host {}

        #[allow(dead_code)]
        pub fn add_to_linker<T, D>(
            linker: &mut wasmtime::component::Linker<T>,
            _host_getter: fn(&mut T) -> D::Data<'_>,
        ) -> wasmtime::Result<()>
        where
            D: HostWithStore<T>,
            for<'a> D::Data<'a>: Host,
            T: 'static,
        {
            linker.instance($name)?;
            Ok(())
        }
    };
}

mod disk_cache;
mod engine;
mod instance;
mod manifest;
mod sandbox;
mod since_v0_1;
mod since_v0_2;
mod spec;
mod ticker;

pub use disk_cache::DiskCache;
pub use engine::{CompiledApp, Limits, PluginEngine};
pub use instance::AppInstance;
pub use spec::{AppSpec, EmitMode, EventTimeSource, FieldSpec, SpecError, SpecLimits};

pub use crate::model::{Batch, Column, FieldType, States, TimeFormat};

/// The contract versions this host speaks, newest first: an app built against any of them
/// loads, and each is frozen once released (`since_v0_*.rs`, `wit/v0.*`).
pub const CONTRACTS: [&str; 2] = [since_v0_2::CONTRACT, since_v0_1::CONTRACT];

/// What went wrong with a plugin, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot load {path}: {reason}")]
    BadFile { path: String, reason: String },
    #[error("{path} is not a WebAssembly component (a core module or other bytes?); build the app with `cargo build --target wasm32-wasip2`: {reason}")]
    NotAComponent { path: String, reason: String },
    #[error("{path} does not implement a contract this platform speaks ({}): {reason}", CONTRACTS.join(", "))]
    WrongContract { path: String, reason: String },
    #[error("{path} cannot start in the sandbox: {reason}")]
    CannotStart { path: String, reason: String },
    #[error("{path} describes itself wrongly: {reason}")]
    BadDescription { path: String, reason: String },
    #[error("the app trapped in `{call}`: {reason}")]
    Trap { call: &'static str, reason: String },
    #[error("the app ran past its deadline of {deadline_ms} ms in `{call}` and was stopped")]
    Deadline {
        call: &'static str,
        deadline_ms: u64,
    },
    #[error("the app returned bad output from `{call}`: {reason}")]
    BadOutput { call: &'static str, reason: String },
    #[error("the app refused its input in `{call}`: {reason}")]
    Refused { call: &'static str, reason: String },
}
