//! Tenant apps as sandboxed WebAssembly components: compiling and checking them against the
//! contract, describing them, and calling them with limits.

mod disk_cache;
mod engine;
mod instance;
mod sandbox;
mod spec;

pub use disk_cache::DiskCache;
pub use engine::{CompiledApp, Limits, PluginEngine};
pub use instance::AppInstance;
pub use spec::{AppSpec, EmitMode, EventTimeSource, FieldSpec, SpecError, SpecLimits};

/// The host's view of `wit/tenant.wit`.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "tenant-app",
    });
}

pub use bindings::mysimbdp::tenant::types::{Batch, Column, FieldType, States, TimeFormat};

/// The contract version this host speaks.
pub const CONTRACT: &str = "mysimbdp:tenant@0.1.0";

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
    #[error("{path} does not implement the contract {CONTRACT}: {reason}")]
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
