//! A tenant's records cannot push the host past its bounds: event times from the future are
//! refused without moving a watermark, and records over a quota go to the dead letters. Through
//! the real compiled reviews-daily and hostile components (`just build-apps` builds them).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysimbdp_host::admin::metrics::AppMetrics;
use mysimbdp_host::app::{Message, Output, Processor, Quotas, WallClock};
use mysimbdp_host::plugin::{Limits, PluginEngine};
use mysimbdp_host::sink::{cell, Cell};
use mysimbdp_host::time::EventTime;

const DAY: i64 = 86_400_000;
/// 2015-01-10T00:00:00Z: 16_445 days after 1970-01-01.
const JAN_10: i64 = 16_445 * DAY;

fn processor(app: &str, quotas: Quotas, clock: WallClock) -> (Processor, Arc<AppMetrics>) {
    let engine = PluginEngine::new().unwrap();
    let app = engine
        .load(&common::component(app), Limits::default())
        .unwrap();
    let metrics = Arc::new(AppMetrics::default());
    let now = Instant::now();
    let mut processor = Processor::new(
        app.spec.clone(),
        app.instantiate().unwrap(),
        metrics.clone(),
        Duration::from_secs(3600),
        now,
    )
    .with_quotas(quotas)
    .with_wall_clock(clock);
    processor.watermarks_mut().assign(0, now);
    (processor, metrics)
}

fn review(product: &str, date: &str) -> String {
    format!(
        r#"{{"product_id":"{product}","star_rating":5,"helpful_votes":1,"total_votes":1,"review_date":"{date}"}}"#
    )
}

/// Pushes the records of one batch on partition 0, offsets from `first`, then flushes.
fn batch(p: &mut Processor, first: i64, jsons: &[String], out: &mut Output) {
    for (i, json) in jsons.iter().enumerate() {
        let message = Message {
            topic: "t.reviews",
            partition: 0,
            offset: first + i as i64,
            key: None,
            payload: Some(json.as_bytes()),
            timestamp: None,
        };
        p.push(&message, Instant::now(), out);
    }
    p.flush(out).unwrap();
}

/// The final number_of_reviews of (product, window start) among the closed rows.
fn final_count(out: &Output, product: &str, start: i64) -> Option<i64> {
    out.emitted.iter().filter(|e| e.closed).find_map(|e| {
        let row = e
            .windows
            .iter()
            .position(|(key, w)| key == product && w.start.millis() == start)?;
        match cell(&e.outputs.columns[3], row) {
            Some(Cell::Int(n)) => Some(n),
            _ => None,
        }
    })
}

fn sources(rejected: &[mysimbdp_host::sink::Rejected]) -> Vec<&str> {
    rejected.iter().map(|r| r.source.as_str()).collect()
}

static JAN_10_READS: AtomicUsize = AtomicUsize::new(0);

fn jan_10() -> EventTime {
    JAN_10_READS.fetch_add(1, Ordering::Relaxed);
    EventTime::from_millis(JAN_10)
}

#[test]
fn a_review_from_the_future_is_refused_and_never_moves_the_watermark() {
    let (mut p, metrics) = processor("reviews_daily", Quotas::default(), jan_10);
    let mut out = Output::default();
    batch(
        &mut p,
        0,
        &[
            review("a", "2015-01-09"),
            review("z", "9999-12-31"),
            review("b", "2015-01-08"),
            review("c", "2015-01-11"), // exactly one day ahead: allowed
            review("y", "2015-01-12"), // two days ahead
        ],
        &mut out,
    );
    assert_eq!(
        JAN_10_READS.load(Ordering::Relaxed),
        1,
        "the wall clock is read once per batch"
    );
    assert_eq!(
        sources(&out.dead_letters),
        ["t.reviews/0@1", "t.reviews/0@4"]
    );
    // 9999-12-31 is day 2_932_896; (2_932_896 - 16_445) days / 365.25 = 7984.8 years.
    assert_eq!(
        out.dead_letters[0].reason,
        "event time 9999-12-31T00:00:00Z is 7984 years ahead of the platform's clock (2015-01-10T00:00:00Z; at most 1 day allowed, [limits] max_event_time_ahead_ms)"
    );
    assert!(
        out.dead_letters[1].reason.contains(" is 2 days ahead "),
        "{}",
        out.dead_letters[1].reason
    );
    assert_eq!(AppMetrics::get(&metrics.future_records), 2);
    assert_eq!(AppMetrics::get(&metrics.records_processed), 3);
    let mut ticked = Output::default();
    p.tick(Instant::now(), &mut ticked).unwrap();
    assert_eq!(p.clock(0).millis(), JAN_10 + DAY, "2015-01-11, not 9999");
    assert_eq!(
        p.watermark().millis(),
        JAN_10 - DAY,
        "2015-01-11 less 2 days"
    );
    // Without the refusal the watermark would be 9999-12-29 and this review late.
    batch(&mut p, 5, &[review("d", "2015-01-09")], &mut out);
    assert!(out.late.is_empty(), "{:?}", sources(&out.late));
    p.finish(&mut out).unwrap();
    assert_eq!(final_count(&out, "d", JAN_10 - DAY), Some(1));
    assert_eq!(final_count(&out, "z", 2_932_896 * DAY), None);
}

fn also_jan_10() -> EventTime {
    EventTime::from_millis(JAN_10)
}

#[test]
fn a_kafka_timestamp_from_the_future_is_refused_for_an_ingestion_time_app() {
    let (mut p, metrics) = processor("hostile", Quotas::default(), also_jan_10);
    let mut out = Output::default();
    let payload = br#"{"key":"k","act":0}"#;
    for (offset, timestamp) in [(0, JAN_10 + 2 * DAY), (1, JAN_10 + DAY), (2, i64::MAX)] {
        let message = Message {
            topic: "t.orders",
            partition: 0,
            offset,
            key: Some(b"k"),
            payload: Some(payload),
            timestamp: Some(timestamp),
        };
        p.push(&message, Instant::now(), &mut out);
    }
    p.flush(&mut out).unwrap();
    assert_eq!(sources(&out.dead_letters), ["t.orders/0@0", "t.orders/0@2"]);
    assert!(
        out.dead_letters[0]
            .reason
            .starts_with("event time 2015-01-12T00:00:00Z is 2 days ahead"),
        "{}",
        out.dead_letters[0].reason
    );
    assert_eq!(AppMetrics::get(&metrics.future_records), 2);
    assert_eq!(p.clock(0).millis(), JAN_10 + DAY);
}

#[test]
fn records_over_a_quota_go_to_the_dead_letters_and_the_rest_count_once() {
    let quotas = Quotas {
        max_open_windows: 3,
        max_keys: 2,
        max_key_bytes: 8,
        max_record_bytes: 300,
        ..Quotas::default()
    };
    let (mut p, metrics) = processor("reviews_daily", quotas, also_jan_10);
    let mut out = Output::default();
    let jan = |d: i64| (16_435 + d) * DAY; // 2015-01-01 is day 16_436
    let big = format!(
        r#"{{"product_id":"a","star_rating":5,"helpful_votes":1,"total_votes":1,"review_date":"2015-01-01","review_body":"{}"}}"#,
        "x".repeat(300)
    );
    batch(
        &mut p,
        0,
        &[
            review("a", "2015-01-01"),
            review("a", "2015-01-01"),
            review("b", "2015-01-01"),
            review("c", "2015-01-01"), // a third key
            review("a", "2015-01-02"),
            review("b", "2015-01-02"), // a fourth window
            review("b", "2015-01-01"),
            review("abcdefghi", "2015-01-01"), // 9 bytes
            big,
        ],
        &mut out,
    );
    // A later batch, the table full: a record of an open window still counts.
    batch(&mut p, 9, &[review("a", "2015-01-01")], &mut out);
    assert_eq!(
        sources(&out.dead_letters),
        [
            "t.reviews/0@3",
            "t.reviews/0@5",
            "t.reviews/0@7",
            "t.reviews/0@8"
        ]
    );
    let reasons: Vec<&str> = out.dead_letters.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons[0],
        "the app has 2 keys with open windows and this record's key is new; at most 2 are allowed ([limits] max_keys)"
    );
    assert_eq!(
        reasons[1],
        "the app has 3 open windows and this record would open 1 more; at most 3 are allowed ([limits] max_open_windows)"
    );
    assert_eq!(
        reasons[2],
        "the key `product_id` is 9 bytes; at most 8 are allowed ([limits] max_key_bytes)"
    );
    assert!(
        reasons[3].ends_with(
            "bytes (value and key); at most 300 are allowed ([limits] max_record_bytes)"
        ),
        "{}",
        reasons[3]
    );
    assert_eq!(AppMetrics::get(&metrics.over_quota), 4);
    assert_eq!(AppMetrics::get(&metrics.records_processed), 6);
    p.finish(&mut out).unwrap();
    assert_eq!(final_count(&out, "a", jan(1)), Some(3));
    assert_eq!(final_count(&out, "b", jan(1)), Some(2));
    assert_eq!(final_count(&out, "a", jan(2)), Some(1));
    assert_eq!(final_count(&out, "b", jan(2)), None);
    assert_eq!(final_count(&out, "c", jan(1)), None);
}
