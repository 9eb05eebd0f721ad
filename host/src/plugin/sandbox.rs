//! What an app instance may touch: the narrow WASI it is linked against, calls that never wait,
//! and one memory budget for all of its memories and tables.
//!
//! Linked (so that Rust, Python and JS guests instantiate and run), each harmless by
//! construction: `wasi:cli/environment` (empty), `exit`, `stdin` (closed), `stdout`
//! (discarded), `stderr` (its last [`STDERR_TAIL`] bytes kept to explain a trap), the `terminal-*` interfaces (no terminal), `wasi:clocks/wall-clock` (stopped at
//! the epoch), `wasi:random/*` (at most [`MAX_RANDOM_BYTES`] a call), `wasi:io/error` and
//! `wasi:io/streams` (only stdio streams exist), `wasi:filesystem/preopens` (no directory, so
//! no file descriptor can ever exist) with `wasi:filesystem/types`, and the platform's own
//! `wasi:io/poll` and `wasi:clocks/monotonic-clock`, which never wait. Every other `wasi:`
//! interface, sockets above all, links to functions that trap with the reason.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use wasmtime::component::{
    types::ComponentItem, Component, HasData, Linker, Resource, ResourceTable, ResourceType,
};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{self, sync};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};
use wasmtime_wasi::random::WasiRandom;

use super::engine::GuestState;

/// Most random bytes one call may ask for: the host allocates them before the guest's memory
/// limit applies.
pub(super) const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// How much of what an app last wrote to stderr is kept: enough for a panic message.
pub(super) const STDERR_TAIL: usize = 512;

/// Instances, memories and tables one app instance may create: a Rust component has a few core
/// instances, one memory and a table or two; guests that link several modules (Python, JS) have
/// more instances, still one memory.
pub(super) const MAX_INSTANCES: usize = 64;
pub(super) const MAX_MEMORIES: usize = 4;
pub(super) const MAX_TABLES: usize = 16;

/// Bytes a table element costs the host (a pointer), for the memory budget.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// The WASI interfaces (without version) the platform implements for apps.
const GRANTED: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:io/error",
    "wasi:io/streams",
    "wasi:io/poll",
    "wasi:filesystem/preopens",
    "wasi:filesystem/types",
];

/// Links the granted WASI interfaces; [`deny_ungranted`] completes the linker per component.
pub(super) fn link_wasi(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    use bindings::{cli, clocks, filesystem, random};
    let l = linker;
    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, GuestState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<_, NoWaiting>(l, |s| Waitless(&mut s.table))?;
    filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, GuestState::filesystem)?;
    sync::filesystem::types::add_to_linker::<_, WasiFilesystem>(l, GuestState::filesystem)?;
    random::random::add_to_linker::<_, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |s| s.wasi.random())?;
    cli::exit::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, GuestState::cli)?;
    sync::io::error::add_to_linker::<_, Table>(l, |s| &mut s.table)?;
    sync::io::streams::add_to_linker::<_, Table>(l, |s| &mut s.table)?;
    sync::io::poll::add_to_linker::<_, NoWaiting>(l, |s| Waitless(&mut s.table))?;
    Ok(())
}

/// The linker for one component: every `wasi:` interface it imports that the platform does not
/// grant (sockets, HTTP, ...) is defined with functions that trap with the reason, so that a
/// guest whose runtime merely imports them still runs. Other unknown imports stay unlinked and
/// the component is refused.
pub(super) fn deny_ungranted(
    linker: &Linker<GuestState>,
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<Linker<GuestState>> {
    let mut linker = linker.clone();
    let ty = component.component_type();
    for (name, import) in ty.imports(engine) {
        let interface = name.split('@').next().unwrap_or(name);
        if !name.starts_with("wasi:") || GRANTED.contains(&interface) {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            continue;
        };
        let mut denied = linker.instance(name)?;
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(_) => {
                    let what = format!("{interface}#{item}");
                    denied.func_new(item, move |_, _, _, _| {
                        Err(wasmtime::format_err!(
                            "`{what}` is not granted: apps have no network, files or environment"
                        ))
                    })?;
                }
                ComponentItem::Resource(_) => {
                    denied.resource(item, shared_resource(item), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(linker)
}

/// The host type behind the resources of interfaces that are not granted: never created.
struct Denied;

/// The type of a resource that a denied interface re-exports (`use`s) from `wasi:io`, which the
/// guest expects to be the very type the granted `wasi:io` has; any other is [`Denied`].
fn shared_resource(name: &str) -> ResourceType {
    use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, IoError};
    match name {
        "pollable" => ResourceType::host::<DynPollable>(),
        "input-stream" => ResourceType::host::<DynInputStream>(),
        "output-stream" => ResourceType::host::<DynOutputStream>(),
        "error" => ResourceType::host::<IoError>(),
        _ => ResourceType::host::<Denied>(),
    }
}

/// `wasi:io/streams` and `wasi:io/error` work on the Store's resource table.
struct Table;

impl HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

/// `wasi:io/poll` and `wasi:clocks/monotonic-clock` as the platform implements them: the
/// monotonic clock is stopped at 0, and nothing waits. A wait that would block traps with the
/// reason, since a blocked call is host code the call deadline cannot interrupt.
struct NoWaiting;

impl HasData for NoWaiting {
    type Data<'a> = Waitless<'a>;
}

/// The resource table, seen through [`NoWaiting`].
pub(super) struct Waitless<'a>(&'a mut ResourceTable);

/// A pollable that is ready at once: what a wait for no time at all subscribes to.
struct Now;

#[wasmtime_wasi::async_trait]
impl Pollable for Now {
    async fn ready(&mut self) {}
}

fn no_waiting(what: String) -> wasmtime::Error {
    wasmtime::format_err!("{what}: apps may not wait (no sleep, no timers, no blocking poll)")
}

impl Waitless<'_> {
    /// Whether the pollable is ready now, checked without waiting.
    fn ready_now(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        use futures::FutureExt;
        use wasmtime_wasi::p2::bindings::io::poll::HostPollable;
        HostPollable::ready(self.0, pollable)
            .now_or_never()
            .unwrap_or(Ok(false))
    }

    fn now_pollable(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.0.push(Now)?;
        wasmtime_wasi::p2::subscribe(self.0, now)
    }
}

impl bindings::clocks::monotonic_clock::Host for Waitless<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1_000_000_000)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        if when == 0 {
            return self.now_pollable();
        }
        Err(no_waiting(format!(
            "the app asked to wait until {when} ns on the monotonic clock"
        )))
    }

    fn subscribe_duration(&mut self, duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        if duration == 0 {
            return self.now_pollable();
        }
        Err(no_waiting(format!(
            "the app asked to wait {} ms",
            duration / 1_000_000
        )))
    }
}

impl sync::io::poll::Host for Waitless<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let mut ready = Vec::new();
        let count = pollables.len();
        for (index, pollable) in (0u32..).zip(pollables) {
            if self.ready_now(pollable)? {
                ready.push(index);
            }
        }
        if ready.is_empty() {
            return Err(no_waiting(format!(
                "the app polled {count} pollables, none of them ready"
            )));
        }
        Ok(ready)
    }
}

impl sync::io::poll::HostPollable for Waitless<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        self.ready_now(pollable)
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        if self.ready_now(pollable)? {
            Ok(())
        } else {
            Err(no_waiting(
                "the app blocked on a pollable that is not ready".into(),
            ))
        }
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::bindings::io::poll::HostPollable::drop(self.0, pollable)
    }
}

/// The app's stderr: every write is accepted at once and only the last [`STDERR_TAIL`] bytes
/// are kept, so that a trap's reason can say what the app printed (a panic message) before it.
#[derive(Clone, Default)]
pub(super) struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        if let Ok(mut tail) = self.0.lock() {
            tail.extend(&bytes[bytes.len().saturating_sub(STDERR_TAIL)..]);
            let over = tail.len().saturating_sub(STDERR_TAIL);
            tail.drain(..over);
        }
    }

    /// What was written since the last take, printable and on one line; empty if nothing.
    pub(super) fn take(&self) -> String {
        let bytes: Vec<u8> = match self.0.lock() {
            Ok(mut tail) => tail.drain(..).collect(),
            Err(_) => return String::new(),
        };
        let text: String = String::from_utf8_lossy(&bytes)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

/// One budget for all linear memories and tables of an app instance, and bounds on how many
/// instances, memories and tables it creates. Reaching the budget traps with the sizes.
pub(super) struct Budget {
    limit: usize,
    used: usize,
    /// What the last permitted growth added, taken back if the growth then failed.
    pending: usize,
}

impl Budget {
    /// Bytes of linear memory and tables the instance holds now.
    pub(super) fn used(&self) -> usize {
        self.used
    }

    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            pending: 0,
        }
    }

    fn grow(&mut self, what: &str, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let extra = desired.saturating_sub(current);
        let total = self.used.saturating_add(extra);
        if total > self.limit {
            wasmtime::bail!(
                "memory limit: growing {what} from {current} to {desired} would take the \
                 instance to {total} bytes, above its limit of {} MiB (all its memories and \
                 tables together)",
                self.limit >> 20
            );
        }
        self.used = total;
        self.pending = extra;
        Ok(true)
    }

    fn failed(&mut self, what: &str, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= std::mem::take(&mut self.pending);
        Err(error.context(format!("growing {what} failed")))
    }
}

impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.grow("a linear memory", current, desired)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed("a linear memory", error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let bytes = |elements: usize| elements.saturating_mul(TABLE_ELEMENT_BYTES);
        self.grow("a table", bytes(current), bytes(desired))
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed("a table", error)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_keeps_its_last_bytes_on_one_line() {
        let mut tail = StderrTail::default();
        tail.write("x".repeat(1000).into()).unwrap();
        tail.write("\npanicked at src/lib.rs:9:5:\nno\tway\x07\n".into())
            .unwrap();
        let text = tail.take();
        assert!(
            text.ends_with("x panicked at src/lib.rs:9:5: no way"),
            "{text}"
        );
        assert!(text.len() <= STDERR_TAIL, "{}", text.len());
        assert_eq!(tail.take(), "");
    }

    #[test]
    fn the_budget_counts_memories_and_tables_together() {
        let mut budget = Budget::new(1 << 20);
        assert!(budget.memory_growing(0, 512 << 10, None).unwrap());
        assert!(budget.table_growing(0, 1024, None).unwrap());
        let error = budget
            .memory_growing(0, 512 << 10, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("above its limit of 1 MiB") && error.contains("memories and tables"),
            "{error}"
        );
        assert!(!budget.memory_growing(0, 2 << 20, Some(1 << 20)).unwrap());
        assert!(budget.memory_growing(0, 256 << 10, None).unwrap());
        assert!(budget
            .memory_grow_failed(wasmtime::format_err!("no"))
            .is_err());
        assert!(
            budget.memory_growing(0, 256 << 10, None).unwrap(),
            "taken back"
        );
    }
}
