//! The sandbox, through a real hostile component: each hostile act is stopped or refused with a
//! clear error, and the same compiled app still serves fresh, well-behaved instances after it.

mod common;

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

fn hostile() -> CompiledApp {
    let limits = Limits {
        memory_bytes: 64 << 20,
        call_deadline: Duration::from_millis(500),
        max_output_bytes: 16 << 20,
        ..Limits::default()
    };
    PluginEngine::new()
        .unwrap()
        .load(&common::component("hostile"), limits)
        .unwrap()
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
    assert_fresh_instance_works(&app);
}

#[test]
fn files_sockets_environment_and_clock_are_not_there() {
    let app = hostile();
    let mut instance = app.instantiate().unwrap();
    for act in [READ_FILE, OPEN_SOCKET, READ_ENVIRONMENT_AND_CLOCK] {
        instance.accumulate(&[0], &order(act)).unwrap();
    }
    assert_eq!(loot(&app, &mut instance, "records"), 3);
    assert_eq!(
        loot(&app, &mut instance, "file_bytes"),
        -1,
        "no file can be read"
    );
    assert_eq!(
        loot(&app, &mut instance, "socket_connected"),
        -1,
        "no socket can be opened"
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
