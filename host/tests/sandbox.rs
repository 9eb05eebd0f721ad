//! The sandbox, through a real hostile component: each hostile act is stopped or refused with a
//! clear error, and the same compiled app still serves fresh, well-behaved instances after it.

mod common;
#[path = "common/contract.rs"]
mod contract;

use std::time::{Duration, Instant};

use mysimbdp_host::plugin::{
    AppInstance, Batch, Column, CompiledApp, Limits, PluginEngine, PluginError,
};
use mysimbdp_host::sink::{cell, Cell};

const NOTHING: i64 = 0;
const LOOP_FOREVER: i64 = 1;
const EXHAUST_MEMORY: i64 = 2;
const PANIC: i64 = 3;
const READ_FILE: i64 = 4;
const OPEN_SOCKET: i64 = 5;
const READ_ENVIRONMENT_AND_CLOCK: i64 = 6;
const OVERSIZED_OUTPUT: i64 = 7;
const SOCKET_FLOOD: i64 = 9;
const SLEEP: i64 = 10;

/// Long enough for any healthy call on a loaded machine: only turns a hang into a failure.
const HANG: Duration = Duration::from_secs(120);

fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        call_deadline: Duration::from_millis(500),
        max_output_bytes: 16 << 20,
        max_wasm_bytes: 16 << 20,
        ..Limits::default()
    }
}

fn hostile() -> CompiledApp {
    PluginEngine::new()
        .unwrap()
        .load(&common::component("hostile"), limits())
        .unwrap()
}

/// Runs `f` on its own thread and waits at most [`HANG`] for it: a call blocked in host code
/// fails the test instead of hanging it.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} did not return within {HANG:?}: the host blocked"))
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn order(act: i64) -> Batch {
    Batch {
        rows: 1,
        columns: vec![Column::Integers(vec![act])],
    }
}

/// The app's output row for slot 0, by column name.
fn loot(app: &CompiledApp, instance: &mut AppInstance, column: &str) -> i64 {
    let batch = instance.emit(&[0], &app.spec.outputs).unwrap();
    let index = app
        .spec
        .outputs
        .iter()
        .position(|f| f.name == column)
        .unwrap();
    match cell(&batch.columns[index], 0) {
        Some(Cell::Int(v)) => v,
        other => panic!("column {column}: {other:?}"),
    }
}

/// After a hostile call the instance is unusable, but a fresh one works.
fn assert_fresh_instance_works(app: &CompiledApp) {
    let mut fresh = app.instantiate().unwrap();
    fresh.accumulate(&[0], &order(NOTHING)).unwrap();
    assert_eq!(loot(app, &mut fresh, "records"), 1);
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    let app = hostile();
    let mut instance = app.instantiate().unwrap();
    let started = Instant::now();
    let error = instance.accumulate(&[0], &order(LOOP_FOREVER)).unwrap_err();
    assert!(
        matches!(
            error,
            PluginError::Deadline {
                call: "accumulate",
                deadline_ms: 500
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("ran past its deadline of 500 ms"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped after {:?}",
        started.elapsed()
    );
    let again = instance
        .accumulate(&[0], &order(NOTHING))
        .unwrap_err()
        .to_string();
    assert!(again.contains("instance unusable"), "{again}");
    assert_fresh_instance_works(&app);
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let app = hostile();
    let mut instance = app.instantiate().unwrap();
    let error = instance
        .accumulate(&[0], &order(EXHAUST_MEMORY))
        .unwrap_err()
        .to_string();
    assert!(error.contains("trapped in `accumulate`"), "{error}");
    assert!(error.contains("memory"), "{error}");
    assert_fresh_instance_works(&app);
}

#[test]
fn a_panic_is_a_trap_with_its_reason() {
    let app = hostile();
    let mut instance = app.instantiate().unwrap();
    let error = instance
        .accumulate(&[0], &order(PANIC))
        .unwrap_err()
        .to_string();
    assert!(error.contains("trapped in `accumulate`"), "{error}");
    assert!(
        error.contains("stderr ended with:")
            && error.contains("panicked at")
            && error.contains("the hostile app panics on purpose"),
        "{error}"
    );
    assert_fresh_instance_works(&app);
}

#[test]
fn files_sockets_environment_and_clock_are_not_there() {
    let app = hostile();
    let mut instance = app.instantiate().unwrap();
    for act in [READ_FILE, READ_ENVIRONMENT_AND_CLOCK] {
        instance.accumulate(&[0], &order(act)).unwrap();
    }
    assert_eq!(loot(&app, &mut instance, "records"), 2);
    assert_eq!(
        loot(&app, &mut instance, "file_bytes"),
        -1,
        "no file can be read"
    );
    assert_eq!(
        loot(&app, &mut instance, "environment_variables"),
        0,
        "no environment"
    );
    assert_eq!(
        loot(&app, &mut instance, "clock_seconds"),
        0,
        "the clock is stopped at the epoch"
    );
    let error = instance
        .accumulate(&[0], &order(OPEN_SOCKET))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("wasi:sockets/") && error.contains("is not granted"),
        "no socket can be opened: {error}"
    );
    assert_fresh_instance_works(&app);
}

#[test]
fn oversized_output_is_refused() {
    let app = hostile();
    let mut instance = app.instantiate().unwrap();
    instance.accumulate(&[0], &order(OVERSIZED_OUTPUT)).unwrap();
    let error = instance
        .emit(&[0], &app.spec.outputs)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bad output from `emit`") && error.contains("above the limit"),
        "{error}"
    );
    assert_fresh_instance_works(&app);
}

#[test]
fn a_socket_flood_is_stopped_at_the_first_socket() {
    let app = hostile();
    let before = open_fds();
    let mut instance = app.instantiate().unwrap();
    let error = within("the socket flood", move || {
        instance
            .accumulate(&[0], &order(SOCKET_FLOOD))
            .unwrap_err()
            .to_string()
    });
    assert!(error.contains("trapped in `accumulate`"), "{error}");
    assert!(
        error.contains("wasi:sockets/") && error.contains("is not granted"),
        "{error}"
    );
    // Other tests run beside this one and open files and memory images; a flood would have
    // opened sockets until the process's limit.
    let after = open_fds();
    assert!(
        after < before + 256,
        "{before} descriptors before, {after} after"
    );
    assert_fresh_instance_works(&app);
}

#[test]
fn a_sleep_in_accumulate_is_refused_instead_of_blocking_the_host() {
    let app = hostile();
    let mut instance = app.instantiate().unwrap();
    let error = within("an hour's sleep in accumulate", move || {
        instance
            .accumulate(&[0], &order(SLEEP))
            .unwrap_err()
            .to_string()
    });
    assert!(error.contains("trapped in `accumulate`"), "{error}");
    assert!(
        error.contains("asked to wait 3600000 ms") && error.contains("may not wait"),
        "{error}"
    );
    assert_fresh_instance_works(&app);
}

#[test]
fn a_sleep_in_describe_refuses_the_app_at_load() {
    let engine = std::sync::Arc::new(PluginEngine::new().unwrap());
    let loading = engine.clone();
    let error = within("loading an app whose describe() sleeps", move || {
        loading
            .load(&common::component("hostile-describe"), limits())
            .err()
            .map(|e| e.to_string())
    })
    .expect("the app is refused");
    assert!(
        error.contains("trapped in `describe`") && error.contains("may not wait"),
        "{error}"
    );
    let app = engine
        .load(&common::component("hostile"), limits())
        .unwrap();
    assert_fresh_instance_works(&app);
}

#[test]
fn only_regular_wasm_files_of_bounded_size_are_read() {
    let engine = PluginEngine::new().unwrap();
    let error = within("loading /dev/zero", move || {
        engine
            .load(std::path::Path::new("/dev/zero"), limits())
            .err()
            .map(|e| e.to_string())
    })
    .expect("/dev/zero is refused");
    assert!(error.contains("not a regular file"), "{error}");

    let engine = PluginEngine::new().unwrap();
    let mut small = limits();
    small.max_wasm_bytes = 1000;
    let error = engine
        .load(&common::component("hostile"), small)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("above the limit of 1000 bytes"), "{error}");
}

#[test]
fn text_is_not_parsed_as_wat_nor_echoed() {
    let path = std::env::temp_dir().join(format!("secret-{}.wasm", std::process::id()));
    std::fs::write(&path, "(component) ;; root:SECRET-FIRST-LINE\nmore\n").unwrap();
    let error = PluginEngine::new()
        .unwrap()
        .load(&path, limits())
        .err()
        .unwrap()
        .to_string();
    let _ = std::fs::remove_file(&path);
    assert!(error.contains("is not a WebAssembly component"), "{error}");
    assert!(!error.contains("SECRET"), "{error}");
}

/// The component of `contract::contract_component(core)`, as a file.
fn contract_component(core: &str) -> std::path::PathBuf {
    let bytes = contract::contract_component(core);
    let path = std::env::temp_dir().join(format!(
        "sandbox-{}-{:x}.wasm",
        std::process::id(),
        core.len() * 31 + core.bytes().map(usize::from).sum::<usize>()
    ));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Loads a component that should be refused at its start, and returns the reason.
fn refused_at_start(core: &str) -> String {
    let path = contract_component(core);
    let engine = PluginEngine::new().unwrap();

    let error = within("starting a hostile component", move || {
        engine.load(&path, limits()).err().map(|e| e.to_string())
    })
    .expect("the component is refused");
    assert!(error.contains("cannot start in the sandbox"), "{error}");
    error
}

#[test]
fn a_harmless_contract_component_starts() {
    let path = contract_component("");
    let error = PluginEngine::new()
        .unwrap()
        .load(&path, limits())
        .err()
        .unwrap()
        .to_string();
    // It instantiates; its describe() traps.
    assert!(error.contains("trapped in `describe`"), "{error}");
}

#[test]
fn a_multi_memory_bomb_is_refused() {
    // Three memories of 25 MiB each: every one under the 64 MiB limit, together above it.
    let error = refused_at_start(contract::MULTI_MEMORY);
    assert!(
        error.contains("memory limit") && error.contains("above its limit of 64 MiB"),
        "{error}"
    );
    // More memories than an instance may have, each tiny.
    let error = refused_at_start("(memory 1) (memory 1) (memory 1) (memory 1) (memory 1)");
    assert!(error.contains("memory count too high"), "{error}");
    assert_fresh_instance_works(&hostile());
}

#[test]
fn a_table_grow_is_refused() {
    let error = refused_at_start(contract::TABLE_GROW);
    assert!(
        error.contains("`instantiate`: memory limit: growing a table"),
        "{error}"
    );
    let tables = "(table 1 funcref) ".repeat(20);
    let error = refused_at_start(&tables);
    assert!(error.contains("table count too high"), "{error}");
    assert_fresh_instance_works(&hostile());
}

/// describe() returns six input fields whose names are all the same 16 MiB of the guest's
/// memory: 96 MiB for the host to copy out of a guest limited to 64 MiB. The copy stops at the
/// instance's memory limit instead.
#[test]
fn a_huge_describe_is_stopped_at_the_memory_limit() {
    let path = contract_component(contract::HUGE_DESCRIBE);
    let engine = PluginEngine::new().unwrap();
    let error = within("a huge describe()", move || {
        engine.load(&path, limits()).err().map(|e| e.to_string())
    })
    .expect("the app is refused");
    assert!(
        error.contains("trapped in `describe`") && error.contains("too much data"),
        "{error}"
    );
}
