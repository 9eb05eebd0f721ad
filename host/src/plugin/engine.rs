//! One wasmtime engine for the whole host, an epoch ticker for deadlines, and the Store every
//! app instance runs in (its WASI and its memory budget are in `sandbox.rs`).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::disk_cache::DiskCache;
use super::instance::AppInstance;
use super::instance::Pre;
use super::sandbox::{self, Budget, StderrTail};
use super::spec::{AppSpec, SpecLimits};
use super::ticker::{Ticker, TICK};
use super::PluginError;

/// What one app instance may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// All of the instance's linear memories and tables together.
    pub memory_bytes: usize,
    /// One plugin call; generous so a healthy plugin on a loaded machine is never stopped.
    pub call_deadline: Duration,
    /// Output rows per emit call beyond the slots asked for are garbage.
    pub max_output_bytes: usize,
    /// What the app may declare: checked when it describes itself.
    pub spec: SpecLimits,
    /// The largest `.wasm` the platform reads: a bigger or endless file is refused, not read.
    pub max_wasm_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            call_deadline: Duration::from_secs(10),
            max_output_bytes: 64 << 20,
            spec: SpecLimits::default(),
            max_wasm_bytes: 64 << 20,
        }
    }
}

/// A Store's data: WASI with no grants, and the memory budget.
pub(super) struct GuestState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) budget: Budget,
    /// The end of what the app wrote to stderr, for the reason of its next trap.
    pub(super) stderr: StderrTail,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A clock stopped at the epoch: apps get no time unless the platform grants it.
struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// An app compiled, linked against the contract and described: all a load needs.
type Known = (Pre, Arc<AppSpec>);

/// The platform's plugin engine: shared by every app on the host.
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<GuestState>,
    ticker: Arc<Ticker>,
    /// Compiled, linked and described apps by the SHA-256 of their `.wasm`: loading a known
    /// version again skips all of that. Only what this engine compiled itself is ever reused.
    compiled: Mutex<HashMap<[u8; 32], Known>>,
    /// Compiled code kept across restarts, when enabled.
    disk: Option<DiskCache>,
}

/// A compiled, contract-checked app, ready to instantiate.
#[derive(Clone)]
pub struct CompiledApp {
    pub(super) engine: Engine,
    pub(super) pre: Pre,
    pub spec: Arc<AppSpec>,
    /// SHA-256 of the `.wasm`, hex: which build is running.
    pub digest: String,
    /// Whether the compiled code came from the engine's cache.
    pub from_cache: bool,
    pub(super) limits: Limits,
    pub(super) ticker: Arc<Ticker>,
}

impl PluginEngine {
    pub fn new() -> Result<Self, wasmtime::Error> {
        Self::with_deadlines(true)
    }

    /// Without deadlines a plugin call can run forever: only for measuring what deadlines cost.
    pub fn with_deadlines(deadlines: bool) -> Result<Self, wasmtime::Error> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(deadlines);
        config.concurrency_support(false);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        sandbox::link_wasi(&mut linker)?;
        let ticker = Arc::new(Ticker::start(&engine)?);
        Ok(Self {
            engine,
            linker,
            ticker,
            compiled: Mutex::default(),
            disk: None,
        })
    }

    /// Keeps compiled code under `root` (see [`DiskCache`]): a restart or redeploy of a known
    /// build loads it instead of compiling again.
    pub fn with_disk_cache(mut self, root: &Path) -> Self {
        self.disk = Some(DiskCache::new(root, &self.engine));
        self
    }

    /// Compiles a tenant's `.wasm` file (never a precompiled artifact), checks that it
    /// implements the contract, and asks it to describe itself. Only a regular file of at most
    /// `limits.max_wasm_bytes` is read.
    pub fn load(&self, path: &Path, limits: Limits) -> Result<CompiledApp, PluginError> {
        self.load_keeping(path, limits).map(|(app, _)| app)
    }

    /// Like [`load`](Self::load), with the file's bytes: a deploy keeps the very build it ran.
    pub fn load_keeping(
        &self,
        path: &Path,
        limits: Limits,
    ) -> Result<(CompiledApp, Vec<u8>), PluginError> {
        let bytes = read_wasm(path, limits.max_wasm_bytes)?;
        let app = self.load_bytes(&bytes, &path.display().to_string(), limits)?;
        Ok((app, bytes))
    }

    /// Like [`load`](Self::load), for a `.wasm` already in memory (an upload); `shown` names it
    /// in errors.
    pub fn load_bytes(
        &self,
        bytes: &[u8],
        shown: &str,
        limits: Limits,
    ) -> Result<CompiledApp, PluginError> {
        if bytes.len() > limits.max_wasm_bytes {
            return Err(PluginError::BadFile {
                path: shown.to_owned(),
                reason: too_large(bytes.len() as u64, limits.max_wasm_bytes),
            });
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let cached = self
            .compiled
            .lock()
            .ok()
            .and_then(|c| c.get(&digest).cloned());
        let from_cache = cached.is_some();
        let (pre, spec) = match cached {
            Some(known) => known,
            None => {
                let known = self.compile(bytes, &digest, shown, &limits)?;
                if let Ok(mut compiled) = self.compiled.lock() {
                    compiled.insert(digest, known.clone());
                }
                known
            }
        };
        Ok(CompiledApp {
            engine: self.engine.clone(),
            pre,
            spec,
            digest: digest.iter().map(|b| format!("{b:02x}")).collect(),
            from_cache,
            limits,
            ticker: self.ticker.clone(),
        })
    }
}

impl PluginEngine {
    /// Compiles, links against the contract, and asks the app to describe itself.
    fn compile(
        &self,
        bytes: &[u8],
        digest: &[u8; 32],
        shown: &str,
        limits: &Limits,
    ) -> Result<Known, PluginError> {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let cached = self.disk.as_ref().and_then(|d| d.load(&self.engine, &hex));
        let component = match cached {
            Some(component) => component,
            None => {
                let component = Component::new(&self.engine, bytes).map_err(|e| {
                    PluginError::NotAComponent {
                        path: shown.to_owned(),
                        reason: format!("{e:#}"),
                    }
                })?;
                if let Some(disk) = &self.disk {
                    disk.store(&component, &hex);
                }
                component
            }
        };
        let wrong = |e: wasmtime::Error| PluginError::WrongContract {
            path: shown.to_owned(),
            reason: format!("{e:#}"),
        };
        let linker =
            sandbox::deny_ungranted(&self.linker, &self.engine, &component).map_err(wrong)?;
        let pre = linker.instantiate_pre(&component).map_err(wrong)?;
        let pre = Pre::new(pre).map_err(|reason| PluginError::WrongContract {
            path: shown.to_owned(),
            reason,
        })?;
        let mut probe =
            AppInstance::start(&self.engine, &self.ticker, &pre, limits).map_err(|e| {
                PluginError::CannotStart {
                    path: shown.to_owned(),
                    reason: e.to_string(),
                }
            })?;
        let bad = |reason: String| PluginError::BadDescription {
            path: shown.to_owned(),
            reason,
        };
        let manifest = probe.describe()?.map_err(bad)?;
        let spec = AppSpec::from_info(manifest.info, &limits.spec)
            .map_err(|reason| bad(reason.to_string()))?
            .with_sections(manifest.sections);
        Ok((pre, Arc::new(spec)))
    }
}

impl CompiledApp {
    /// The contract version the app was built against.
    pub fn contract(&self) -> &'static str {
        self.pre.contract()
    }

    /// A fresh instance with empty state.
    pub fn instantiate(&self) -> Result<AppInstance, PluginError> {
        AppInstance::start(&self.engine, &self.ticker, &self.pre, &self.limits)
    }
}

fn too_large(size: u64, max: usize) -> String {
    format!(
        "{size} bytes, above the limit of {max} bytes for an app's .wasm (`admin.max_upload_mb`)"
    )
}

/// Reads a `.wasm` only if it is a regular file of at most `max` bytes: a device, a FIFO or a
/// growing file is refused instead of read forever.
fn read_wasm(path: &Path, max: usize) -> Result<Vec<u8>, PluginError> {
    let shown = || path.display().to_string();
    let refused = |reason: String| PluginError::BadFile {
        path: shown(),
        reason,
    };
    let read = |source| PluginError::Read {
        path: shown(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(refused("not a regular file".into()));
    }
    if meta.len() > max as u64 {
        return Err(refused(too_large(meta.len(), max)));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() > max {
        return Err(refused(too_large(bytes.len() as u64, max)));
    }
    Ok(bytes)
}

pub(super) fn new_store(engine: &Engine, limits: &Limits) -> Store<GuestState> {
    let stderr = StderrTail::default();
    let mut wasi = WasiCtxBuilder::new();
    wasi.stderr(stderr.clone())
        .wall_clock(StoppedClock)
        .monotonic_clock(StoppedClock)
        .max_random_size(sandbox::MAX_RANDOM_BYTES);
    let state = GuestState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        budget: Budget::new(limits.memory_bytes),
        stderr,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.budget);
    // What one call may make the host copy out of the guest (results, WASI arguments): without
    // it, strings aliased many times over in a list would copy far more than the guest holds.
    store.set_hostcall_fuel(limits.memory_bytes);
    store
}

pub(super) fn ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / TICK.as_millis()).max(1) as u64
}
