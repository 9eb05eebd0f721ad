//! The SDK, the contract and the processor, through the real compiled reviews-daily component
//! (`just build-apps` builds it; `just test` does so first).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysimbdp_host::admin::metrics::AppMetrics;
use mysimbdp_host::app::{Message, Output, Processor};
use mysimbdp_host::plugin::{
    Batch, Column, CompiledApp, EmitMode, EventTimeSource, FieldType, Limits, PluginEngine,
    TimeFormat,
};
use mysimbdp_host::sink::{cell, Cell};
use mysimbdp_host::time::EventTime;
use mysimbdp_host::window::Assigner;

const DAY: i64 = 86_400_000;

/// reviews-daily as a tenant built it against v0.1, kept as bytes.
fn frozen_v0_1() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v0.1/reviews-daily.wasm")
}

/// The same app built against v0.1 (its `describe` call) and against v0.2 (its manifest)
/// describes itself the same: one host reads both versions into one spec.
#[test]
fn both_contract_versions_describe_the_same_app() {
    let engine = PluginEngine::new().unwrap();
    let old = engine.load(&frozen_v0_1(), Limits::default()).unwrap();
    let new = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    assert_eq!(old.contract(), "mysimbdp:tenant@0.1.0");
    assert_eq!(new.contract(), "mysimbdp:tenant@0.2.0");
    let (a, b) = (&old.spec, &new.spec);
    assert_eq!(
        (&a.name, &a.table, &a.key_field, a.assigner, &a.event_time),
        (&b.name, &b.table, &b.key_field, b.assigner, &b.event_time)
    );
    assert_eq!((&a.inputs, &a.outputs), (&b.inputs, &b.outputs));
    assert_eq!(
        (
            a.watermark_delay_ms,
            a.allowed_lateness_ms,
            a.emit,
            a.update_interval
        ),
        (
            b.watermark_delay_ms,
            b.allowed_lateness_ms,
            b.emit,
            b.update_interval
        )
    );
    assert_eq!(
        (a.state_version, a.has_filter),
        (b.state_version, b.has_filter)
    );
}

/// An app's manifest carries its enrich declaration, so an uploaded build needs no file
/// beside it: what the platform reads is what `enrich.toml` says.
#[test]
fn the_manifest_carries_the_enrich_section() {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component("reviews-sentiment"), Limits::default())
        .unwrap();
    let embedded = mysimbdp_host::enrich::EnrichManifest::embedded(&app.spec)
        .unwrap()
        .expect("an [enrich] section");
    let file = mysimbdp_host::enrich::EnrichManifest::read(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tenant-apps/reviews-sentiment/enrich.toml"),
    )
    .unwrap();
    assert_eq!(format!("{embedded:?}"), format!("{file:?}"));
}

fn ints(values: &[i64]) -> Column {
    Column::Integers(values.to_vec())
}

#[test]
fn the_component_describes_itself() {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    let spec = &app.spec;
    assert_eq!(spec.name.as_str(), "reviews-daily");
    assert_eq!(spec.version, "1.0.0");
    assert_eq!(spec.table, "aggregated_reviews");
    assert_eq!(spec.key_field, "product_id");
    assert_eq!(
        spec.event_time,
        EventTimeSource::Field {
            name: "review_date".into(),
            format: TimeFormat::Date
        }
    );
    assert_eq!(
        spec.assigner,
        Assigner::Tumbling {
            size_ms: DAY as u64
        }
    );
    assert_eq!(spec.watermark_delay_ms, 2 * DAY as u64);
    assert_eq!(spec.allowed_lateness_ms, 0);
    assert_eq!(spec.emit, EmitMode::OnUpdate);
    assert_eq!(spec.update_interval, Duration::from_secs(1));
    let names = |fields: &[mysimbdp_host::plugin::FieldSpec]| {
        fields
            .iter()
            .map(|f| (f.name.clone(), f.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&spec.inputs),
        [
            ("star_rating", FieldType::Integer),
            ("helpful_votes", FieldType::Integer),
            ("total_votes", FieldType::Integer)
        ]
        .map(|(n, k)| (n.to_owned(), k))
    );
    assert_eq!(
        names(&spec.outputs),
        [
            ("avg_star_rating", FieldType::Double),
            ("sum_helpful_votes", FieldType::Integer),
            ("sum_total_votes", FieldType::Integer),
            ("number_of_reviews", FieldType::Integer),
        ]
        .map(|(n, k)| (n.to_owned(), k))
    );
    assert_eq!(spec.state_version, 1);
    assert!(!spec.has_filter);
}

fn row(batch: &Batch, row: usize) -> Vec<Cell<'_>> {
    batch
        .columns
        .iter()
        .map(|c| cell(c, row).unwrap())
        .collect()
}

#[test]
fn state_survives_a_snapshot_into_a_fresh_instance() {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    let mut first = app.instantiate().unwrap();
    let batch = Batch {
        rows: 3,
        columns: vec![ints(&[5, 2, 4]), ints(&[1, 0, 3]), ints(&[2, 0, 7])],
    };
    first.accumulate(&[7, 3, 7], &batch).unwrap();
    let states = first.snapshot(&[7, 3]).unwrap();
    let mut second = app.instantiate().unwrap();
    second.restore(&[0, 1], &states).unwrap();
    let before = first.emit(&[7, 3], &app.spec.outputs).unwrap();
    let after = second.emit(&[0, 1], &app.spec.outputs).unwrap();
    assert_eq!(
        row(&before, 0),
        vec![Cell::Double(4.5), Cell::Int(4), Cell::Int(9), Cell::Int(2)]
    );
    assert_eq!(
        row(&before, 1),
        vec![Cell::Double(2.0), Cell::Int(0), Cell::Int(0), Cell::Int(1)]
    );
    assert_eq!(row(&after, 0), row(&before, 0));
    assert_eq!(row(&after, 1), row(&before, 1));
}

#[test]
fn a_batch_of_the_wrong_shape_is_refused_with_the_field_named() {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    let mut instance = app.instantiate().unwrap();
    let batch = Batch {
        rows: 1,
        columns: vec![ints(&[5]), Column::Doubles(vec![1.0]), ints(&[1])],
    };
    let error = instance.accumulate(&[0], &batch).unwrap_err().to_string();
    assert!(
        error.contains("helpful_votes") && error.contains("integers"),
        "{error}"
    );
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let path = std::env::temp_dir().join(format!("not-a-component-{}.wasm", std::process::id()));
    std::fs::write(&path, b"\0asm\x01\0\0\0garbage").unwrap();
    let engine = PluginEngine::new().unwrap();
    let error = engine
        .load(&path, Limits::default())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("is not a WebAssembly component"), "{error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
}

/// A valid component built against another version of the contract links against nothing we
/// offer: refused with the contract it should implement.
#[test]
fn a_component_of_another_contract_version_is_refused() {
    let path = std::env::temp_dir().join(format!("other-contract-{}.wasm", std::process::id()));
    let other = r#"(component
        (component $app)
        (instance $i (instantiate $app))
        (export "mysimbdp:tenant/app@0.2.0" (instance $i))
    )"#;
    std::fs::write(&path, wat::parse_str(other).unwrap()).unwrap();
    let engine = PluginEngine::new().unwrap();
    let error = engine
        .load(&path, Limits::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("does not implement a contract this platform speaks")
            && error.contains("mysimbdp:tenant@0.2.0")
            && error.contains("mysimbdp:tenant@0.1.0"),
        "{error}"
    );
    assert!(error.contains("mysimbdp:tenant/app@0.1.0"), "{error}");
}

fn review(partition: i32, offset: i64, product: &str, date: &str) -> (String, i32, i64, String) {
    let json = format!(
        r#"{{"product_id":"{product}","star_rating":4,"helpful_votes":1,"total_votes":2,"review_date":"{date}"}}"#
    );
    (json, partition, offset, product.to_owned())
}

/// Lateness at the exact boundary, with a fixed interleaving of two partitions: the watermark is
/// the slower partition's newest day minus the 2-day delay, and a day is late once the
/// watermark reaches its end.
#[test]
fn lateness_is_decided_at_the_boundary_with_a_fixed_interleaving() {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    let metrics = Arc::new(AppMetrics::default());
    let now = Instant::now();
    let mut processor = Processor::new(
        app.spec.clone(),
        app.instantiate().unwrap(),
        metrics.clone(),
        Duration::from_secs(3600),
        now,
    );
    processor.watermarks_mut().assign(0, now);
    processor.watermarks_mut().assign(1, now);
    let records = [
        review(0, 0, "a", "2015-01-10"),
        // Partition 1 has seen nothing: the watermark stays at its start, nothing is late.
        review(0, 1, "a", "2015-01-01"),
        review(1, 0, "b", "2015-01-05"),
        // Watermark: min(Jan 10, Jan 5) - 2 days = Jan 3. Jan 2's window ends Jan 3: late.
        review(0, 2, "c", "2015-01-02"),
        // Jan 3's window ends Jan 4, after the watermark: on time.
        review(1, 1, "d", "2015-01-03"),
    ];
    let mut out = Output::default();
    for (json, partition, offset, product) in &records {
        let message = Message {
            topic: "t.reviews",
            partition: *partition,
            offset: *offset,
            key: Some(product.as_bytes()),
            payload: Some(json.as_bytes()),
            timestamp: None,
        };
        processor.push(&message, now, &mut out);
    }
    processor.flush(&mut out).unwrap();
    let late: Vec<&str> = out.late.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(late, ["t.reviews/0@2"]);
    assert!(
        out.late[0]
            .reason
            .contains("[2015-01-02T00:00:00Z, 2015-01-03T00:00:00Z)"),
        "{}",
        out.late[0].reason
    );
    assert_eq!(processor.watermark().millis(), 16_438 * DAY, "2015-01-03");
    assert_eq!(AppMetrics::get(&metrics.records_processed), 4);
    processor.finish(&mut out).unwrap();
    let closed: usize = out
        .emitted
        .iter()
        .filter(|e| e.closed)
        .map(|e| e.len())
        .sum();
    assert_eq!(
        closed, 4,
        "one row per (product, day) of the on-time records"
    );
}

fn day_one(product: &str) -> String {
    format!(
        r#"{{"product_id":"{product}","star_rating":5,"helpful_votes":1,"total_votes":1,"review_date":"2015-01-01"}}"#
    )
}

fn push_all(processor: &mut Processor, jsons: &[String], now: Instant, out: &mut Output) {
    for (offset, json) in jsons.iter().enumerate() {
        let message = Message {
            topic: "t.reviews",
            partition: 0,
            offset: offset as i64,
            key: None,
            payload: Some(json.as_bytes()),
            timestamp: None,
        };
        processor.push(&message, now, out);
    }
    processor.flush(out).unwrap();
}

/// A processor of `app` that has read two reviews of "a" and one of "b" on 2015-01-01.
fn two_of_a_one_of_b(app: &CompiledApp, now: Instant) -> (Processor, Output) {
    let mut processor = Processor::new(
        app.spec.clone(),
        app.instantiate().unwrap(),
        Arc::new(AppMetrics::default()),
        Duration::from_secs(3600),
        now,
    );
    let mut out = Output::default();
    push_all(
        &mut processor,
        &[day_one("a"), day_one("a"), day_one("b")],
        now,
        &mut out,
    );
    (processor, out)
}

/// The final count of (product, 2015-01-01) among the closed rows.
fn final_count(out: &Output, product: &str) -> Option<i64> {
    out.emitted.iter().filter(|e| e.closed).find_map(|e| {
        let row = e.windows.iter().position(|(key, _)| key == product)?;
        match cell(&e.outputs.columns[3], row) {
            Some(Cell::Int(n)) => Some(n),
            _ => None,
        }
    })
}

#[test]
fn a_swap_carries_open_windows_and_refuses_incompatible_state() {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    let again = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    assert!(
        !app.from_cache && again.from_cache,
        "the second load reuses the compiled code"
    );
    assert_eq!(app.digest, again.digest);
    let now = Instant::now();
    let (mut processor, mut out) = two_of_a_one_of_b(&app, now);

    let swapped = processor
        .swap(
            again.spec.clone(),
            again.instantiate().unwrap(),
            false,
            None,
        )
        .unwrap();
    assert_eq!(swapped.windows, 2);

    let mut incompatible = (*again.spec).clone();
    incompatible.state_version += 1;
    let error = processor
        .swap(
            Arc::new(incompatible),
            again.instantiate().unwrap(),
            false,
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("state version 2") && error.contains("--reset-state"),
        "{error}"
    );

    push_all(&mut processor, &[day_one("a")], now, &mut out);
    processor.finish(&mut out).unwrap();
    assert_eq!(
        final_count(&out, "a"),
        Some(3),
        "two records before the swap, one after"
    );
    assert_eq!(final_count(&out, "b"), Some(1));
}

/// `--reset-state` drops the open windows' state when it cannot pass, and a dropped window is
/// written again only once a record reaches it: never as final from an empty accumulator over
/// the row its last update wrote. State that can pass is carried even with the flag.
#[test]
fn a_reset_never_emits_a_window_no_record_reached() {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    let now = Instant::now();
    let (mut processor, _) = two_of_a_one_of_b(&app, now);

    let carried = processor
        .swap(app.spec.clone(), app.instantiate().unwrap(), true, None)
        .unwrap();
    assert!(
        carried.carried,
        "compatible state passes even with --reset-state"
    );
    assert_eq!(carried.windows, 2);

    let mut incompatible = (*app.spec).clone();
    incompatible.state_version += 1;
    let dropped = processor
        .swap(
            Arc::new(incompatible),
            app.instantiate().unwrap(),
            true,
            None,
        )
        .unwrap();
    assert!(!dropped.carried);
    assert_eq!((dropped.windows, dropped.keys), (2, 2));

    let mut after = Output::default();
    push_all(&mut processor, &[day_one("a")], now, &mut after);
    processor.finish(&mut after).unwrap();
    assert_eq!(
        final_count(&after, "a"),
        Some(1),
        "the record after the reset, counted from empty state"
    );
    let written: Vec<&str> = after
        .emitted
        .iter()
        .flat_map(|e| e.windows.iter().map(|(key, _)| key.as_str()))
        .collect();
    assert!(
        !written.contains(&"b"),
        "no record reached b after the reset, so nothing may overwrite its row: {written:?}"
    );
}

/// Saved windows go back only into a build that reads them the same way: another state version
/// or another window is refused with the way out; the same build's windows come back whole.
#[test]
fn saved_windows_are_restored_only_under_the_hot_swap_rules() {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    let metrics = Arc::new(AppMetrics::default());
    let now = Instant::now();
    let new_processor = || {
        Processor::new(
            app.spec.clone(),
            app.instantiate().unwrap(),
            metrics.clone(),
            Duration::from_secs(3600),
            now,
        )
    };
    let mut processor = new_processor();
    let mut out = Output::default();
    for (json, partition, offset, product) in [
        review(0, 0, "a", "2015-01-10"),
        review(0, 1, "a", "2015-01-10"),
        review(1, 0, "b", "2015-01-11"),
    ] {
        let message = Message {
            topic: "t.reviews",
            partition,
            offset,
            key: Some(product.as_bytes()),
            payload: Some(json.as_bytes()),
            timestamp: None,
        };
        processor.push(&message, now, &mut out);
    }
    processor.flush(&mut out).unwrap();
    let saved = processor.save_windows().unwrap();
    let by = processor.saved_by();
    assert_eq!(saved.len(), 2, "one entry per partition: {saved:?}");

    let mut restored = new_processor();
    restored.check_saved(&by).unwrap();
    for (partition, windows) in &saved {
        restored
            .restore_partition(*partition, EventTime::MIN, EventTime::MIN, windows, now)
            .unwrap();
    }
    let mut before = Output::default();
    processor.finish(&mut before).unwrap();
    let mut after = Output::default();
    restored.finish(&mut after).unwrap();
    let rows = |o: &Output| {
        let mut v: Vec<String> = o
            .emitted
            .iter()
            .flat_map(|e| {
                (0..e.len()).map(move |r| {
                    format!(
                        "{:?} {:?}",
                        e.windows[r],
                        e.outputs
                            .columns
                            .iter()
                            .map(|c| format!("{:?}", cell(c, r)))
                            .collect::<Vec<_>>()
                    )
                })
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows(&before), rows(&after));
    assert!(rows(&after).iter().any(|r| r.contains("\"a\"")));

    let mut other = by.clone();
    other.state_version += 1;
    let refused = restored.check_saved(&other).unwrap_err().to_string();
    assert!(refused.contains("--reset-state"), "{refused}");
    let mut other = by.clone();
    other.geometry = "key=other".into();
    let refused = restored.check_saved(&other).unwrap_err().to_string();
    assert!(
        refused.contains("another key, window or event time"),
        "{refused}"
    );
}
