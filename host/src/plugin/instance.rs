//! One running instance of an app: a Store, the app's exports, and every call made with a
//! deadline and its errors put in words.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store, Trap};

use super::engine::{new_store, ticks, GuestState, Limits};
use super::manifest::{self, Manifest};
use super::ticker::Ticker;
use super::{since_v0_1, since_v0_2, Batch, Column, PluginError, States};

/// The calls every contract version makes, on the host's own types.
pub(super) trait Calls {
    fn filter(&self, s: &mut Store<GuestState>, batch: &Batch) -> wasmtime::Result<Vec<bool>>;
    fn accumulate(
        &self,
        s: &mut Store<GuestState>,
        slots: &[u32],
        batch: &Batch,
    ) -> wasmtime::Result<Result<(), String>>;
    fn merge(&self, s: &mut Store<GuestState>, into: &[u32], from: &[u32]) -> wasmtime::Result<()>;
    fn emit(&self, s: &mut Store<GuestState>, slots: &[u32]) -> wasmtime::Result<Batch>;
    fn close(&self, s: &mut Store<GuestState>, slots: &[u32]) -> wasmtime::Result<()>;
    fn snapshot(&self, s: &mut Store<GuestState>, slots: &[u32]) -> wasmtime::Result<States>;
    fn restore(
        &self,
        s: &mut Store<GuestState>,
        slots: &[u32],
        states: &States,
    ) -> wasmtime::Result<Result<(), String>>;
}

/// One version's exports, forwarded: the signatures are the same in every version.
macro_rules! calls {
    ($guest:ty) => {
        impl Calls for $guest {
            fn filter(&self, s: &mut Store<GuestState>, b: &Batch) -> wasmtime::Result<Vec<bool>> {
                self.call_filter(s, b)
            }
            fn accumulate(
                &self,
                s: &mut Store<GuestState>,
                slots: &[u32],
                b: &Batch,
            ) -> wasmtime::Result<Result<(), String>> {
                self.call_accumulate(s, slots, b)
            }
            fn merge(
                &self,
                s: &mut Store<GuestState>,
                into: &[u32],
                from: &[u32],
            ) -> wasmtime::Result<()> {
                self.call_merge(s, into, from)
            }
            fn emit(&self, s: &mut Store<GuestState>, slots: &[u32]) -> wasmtime::Result<Batch> {
                self.call_emit(s, slots)
            }
            fn close(&self, s: &mut Store<GuestState>, slots: &[u32]) -> wasmtime::Result<()> {
                self.call_close(s, slots)
            }
            fn snapshot(
                &self,
                s: &mut Store<GuestState>,
                slots: &[u32],
            ) -> wasmtime::Result<States> {
                self.call_snapshot(s, slots)
            }
            fn restore(
                &self,
                s: &mut Store<GuestState>,
                slots: &[u32],
                states: &States,
            ) -> wasmtime::Result<Result<(), String>> {
                self.call_restore(s, slots, states)
            }
        }
    };
}

calls!(since_v0_1::exports::mysimbdp::tenant::app::Guest);
calls!(since_v0_2::exports::mysimbdp::tenant::app::Guest);

/// A component linked against the contract version it implements, ready to instantiate.
#[derive(Clone)]
pub(super) enum Pre {
    V0_1(since_v0_1::TenantAppPre<GuestState>),
    V0_2(since_v0_2::TenantAppPre<GuestState>),
}

impl Pre {
    /// The newest version the component implements; the refusal says why it implements none.
    pub(super) fn new(pre: wasmtime::component::InstancePre<GuestState>) -> Result<Self, String> {
        let newest = match since_v0_2::TenantAppPre::new(pre.clone()) {
            Ok(pre) => return Ok(Pre::V0_2(pre)),
            Err(e) => e,
        };
        since_v0_1::TenantAppPre::new(pre)
            .map(Pre::V0_1)
            .map_err(|oldest| {
                format!(
                    "as {}: {newest:#}; as {}: {oldest:#}",
                    since_v0_2::CONTRACT,
                    since_v0_1::CONTRACT
                )
            })
    }

    /// The contract version the component implements.
    pub(super) fn contract(&self) -> &'static str {
        match self {
            Pre::V0_1(_) => since_v0_1::CONTRACT,
            Pre::V0_2(_) => since_v0_2::CONTRACT,
        }
    }
}

/// An instance's exports, of the version it implements.
enum Exports {
    V0_1(since_v0_1::TenantApp),
    V0_2(since_v0_2::TenantApp),
}

/// An app instance with its own memory. After a trap it refuses further calls: its memory may
/// be half-updated, so the platform builds a fresh one from the last snapshot.
pub struct AppInstance {
    store: Store<GuestState>,
    app: Exports,
    limits: Limits,
    poisoned: Option<String>,
    /// Advances the epoch while this instance runs a call.
    ticker: Arc<Ticker>,
}

impl AppInstance {
    pub(super) fn start(
        engine: &Engine,
        ticker: &Arc<Ticker>,
        pre: &Pre,
        limits: &Limits,
    ) -> Result<Self, PluginError> {
        let mut store = new_store(engine, limits);
        store.set_epoch_deadline(ticks(limits.call_deadline));
        let calling = ticker.call();
        let app = match pre {
            Pre::V0_1(pre) => pre.instantiate(&mut store).map(Exports::V0_1),
            Pre::V0_2(pre) => pre.instantiate(&mut store).map(Exports::V0_2),
        }
        .map_err(|e| PluginError::Trap {
            call: "instantiate",
            reason: with_stderr(trap_reason(&e), &store),
        })?;
        drop(calling);
        Ok(Self {
            store,
            app,
            limits: limits.clone(),
            poisoned: None,
            ticker: ticker.clone(),
        })
    }

    fn call<T>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&dyn Calls, &mut Store<GuestState>) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        self.call_exports(call, |exports, store| {
            let calls: &dyn Calls = match exports {
                Exports::V0_1(app) => app.mysimbdp_tenant_app(),
                Exports::V0_2(app) => app.mysimbdp_tenant_app(),
            };
            f(calls, store)
        })
    }

    /// Calls into the instance with its deadline; a trap poisons it.
    fn call_exports<T>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&Exports, &mut Store<GuestState>) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        if let Some(reason) = &self.poisoned {
            return Err(PluginError::Trap {
                call,
                reason: format!("instance unusable: {reason}"),
            });
        }
        self.store
            .set_epoch_deadline(ticks(self.limits.call_deadline));
        // Only this call's output explains this call's trap.
        self.store.data().stderr.take();
        let started = Instant::now();
        let calling = self.ticker.call();
        let result = f(&self.app, &mut self.store);
        drop(calling);
        result.map_err(|e| {
            let error = match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => PluginError::Deadline {
                    call,
                    deadline_ms: self.limits.call_deadline.as_millis() as u64,
                },
                _ => PluginError::Trap {
                    call,
                    reason: with_stderr(trap_reason(&e), &self.store),
                },
            };
            tracing::debug!(call, elapsed = ?started.elapsed(), %error, "plugin call failed");
            self.poisoned = Some(error.to_string());
            error
        })
    }

    /// The linear memory and tables this instance holds, counted against its memory limit:
    /// what one more instance of the app costs.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().budget.used()
    }

    /// What the app declares about itself: v0.1's `describe`, or v0.2's manifest read.
    pub(super) fn describe(&mut self) -> Result<Result<Manifest, String>, PluginError> {
        let described = self.call_exports("describe", |exports, s| match exports {
            Exports::V0_1(app) => app.mysimbdp_tenant_app().call_describe(s).map(|info| {
                Ok(Manifest {
                    info,
                    sections: Default::default(),
                })
            }),
            Exports::V0_2(app) => app
                .mysimbdp_tenant_app()
                .call_manifest(s)
                .map(|text| manifest::parse(&text)),
        })?;
        Ok(described)
    }

    /// One flag per row: whether the app wants it.
    pub fn filter(&mut self, batch: &Batch) -> Result<Vec<bool>, PluginError> {
        let rows = batch.rows as usize;
        let keep = self.call("filter", |g, s| g.filter(s, batch))?;
        if keep.len() != rows {
            return Err(self.garbage("filter", format!("{} flags for {rows} rows", keep.len())));
        }
        Ok(keep)
    }

    pub fn accumulate(&mut self, slots: &[u32], batch: &Batch) -> Result<(), PluginError> {
        self.call("accumulate", |g, s| g.accumulate(s, slots, batch))?
            .map_err(|reason| PluginError::Refused {
                call: "accumulate",
                reason,
            })
    }

    /// The current output rows of the slots, checked against the declared output columns.
    pub fn emit(
        &mut self,
        slots: &[u32],
        outputs: &[super::FieldSpec],
    ) -> Result<Batch, PluginError> {
        let batch = self.call("emit", |g, s| g.emit(s, slots))?;
        if let Err(reason) =
            check_output(&batch, slots.len(), outputs, self.limits.max_output_bytes)
        {
            return Err(self.garbage("emit", reason));
        }
        Ok(batch)
    }

    /// Folds each `from` slot's state into its `into` slot, pair by pair in order; the `from`
    /// slots are empty after.
    pub fn merge(&mut self, into: &[u32], from: &[u32]) -> Result<(), PluginError> {
        self.call("merge", |g, s| g.merge(s, into, from))
    }

    pub fn close(&mut self, slots: &[u32]) -> Result<(), PluginError> {
        self.call("close", |g, s| g.close(s, slots))
    }

    pub fn snapshot(&mut self, slots: &[u32]) -> Result<States, PluginError> {
        let states = self.call("snapshot", |g, s| g.snapshot(s, slots))?;
        let ok = states.offsets.len() == slots.len() + 1
            && states.offsets.windows(2).all(|w| w[0] <= w[1])
            && states
                .offsets
                .last()
                .is_some_and(|&end| end as usize == states.bytes.len());
        if !ok {
            return Err(self.garbage("snapshot", "offsets do not describe the bytes".into()));
        }
        Ok(states)
    }

    pub fn restore(&mut self, slots: &[u32], states: &States) -> Result<(), PluginError> {
        self.call("restore", |g, s| g.restore(s, slots, states))?
            .map_err(|reason| PluginError::Refused {
                call: "restore",
                reason,
            })
    }

    fn garbage(&mut self, call: &'static str, reason: String) -> PluginError {
        let error = PluginError::BadOutput { call, reason };
        self.poisoned = Some(error.to_string());
        error
    }
}

/// A trap's reason, followed by what the app last wrote to stderr (a panic message), if anything.
fn with_stderr(reason: String, store: &Store<GuestState>) -> String {
    let said = store.data().stderr.take();
    if said.is_empty() {
        reason
    } else {
        format!("{reason}; the app's stderr ended with: {said}")
    }
}

/// One line an operator can read: the trap and the innermost functions of the app's own code
/// (the language runtime's panic and abort machinery left out), not the whole backtrace.
fn trap_reason(error: &wasmtime::Error) -> String {
    let what = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    let frames: Vec<String> = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|trace| {
            let names: Vec<String> = trace
                .frames()
                .iter()
                .filter_map(|f| f.func_name())
                .map(|name| format!("{:#}", rustc_demangle::demangle(name)))
                .collect();
            let own: Vec<String> = names
                .iter()
                .filter(|n| !is_runtime_frame(n))
                .take(3)
                .cloned()
                .collect();
            if own.is_empty() {
                names.into_iter().take(4).collect()
            } else {
                own
            }
        })
        .unwrap_or_default();
    if frames.is_empty() {
        what
    } else {
        format!("{what} (in {})", frames.join(" ← "))
    }
}

/// Frames of the language's runtime rather than the tenant's code: how a panic or abort
/// unwinds, which says nothing about where the app went wrong.
fn is_runtime_frame(name: &str) -> bool {
    const RUNTIME: [&str; 9] = [
        "std::", "core::", "alloc::", "__rustc", "__rust", "rust_", "abort", "panic", "<core::",
    ];
    RUNTIME.iter().any(|p| name.starts_with(p))
}

fn column_len(column: &Column) -> (usize, usize) {
    match column {
        Column::Booleans(v) => (v.len(), v.len()),
        Column::Integers(v) | Column::Timestamps(v) => (v.len(), v.len() * 8),
        Column::Doubles(v) => (v.len(), v.len() * 8),
        Column::Texts(v) => (v.len(), v.iter().map(String::len).sum()),
    }
}

fn check_output(
    batch: &Batch,
    rows: usize,
    outputs: &[super::FieldSpec],
    max_bytes: usize,
) -> Result<(), String> {
    if batch.rows as usize != rows {
        return Err(format!("{} rows for {rows} slots", batch.rows));
    }
    if batch.columns.len() != outputs.len() {
        return Err(format!(
            "{} columns, but the app declared {} outputs",
            batch.columns.len(),
            outputs.len()
        ));
    }
    let mut bytes = 0;
    for (column, field) in batch.columns.iter().zip(outputs) {
        let (len, size) = column_len(column);
        if len != rows {
            return Err(format!(
                "column `{}` has {len} values for {rows} rows",
                field.name
            ));
        }
        if !field.matches(column) {
            return Err(format!(
                "column `{}` is not of its declared type {:?}",
                field.name, field.kind
            ));
        }
        bytes += size;
    }
    if bytes > max_bytes {
        return Err(format!(
            "{bytes} bytes of output, above the limit of {max_bytes}"
        ));
    }
    Ok(())
}
