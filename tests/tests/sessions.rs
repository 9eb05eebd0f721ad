//! Session windows end to end: reviews-sessions groups each product's reviews into sessions
//! (reviews less than three days apart), on one partition so that the watermark (two days behind
//! the newest review) is known at every record. The stream is built so that each review's fate
//! follows from the definition alone:
//!
//! - product A: reviews on days 1 and 5 are two sessions; their rows are written; then a review
//!   of day 3 arrives, bridging them into one session of three reviews. The row of the session
//!   that started on day 5 must be gone from Cassandra, and retracted on the results topic.
//! - product B: days 20 and 21 (a session), then day 30, which moves the watermark to day 28 and
//!   closes it; day 19 is then late (its own session would have ended on day 22, before the
//!   watermark) and goes to the late topic; days 27 and 29 come after 30 and join it into one
//!   session of three.
//! - product C: one review, one session.
//!
//! The expected rows are the textbook sessions of the on-time reviews, computed here: sort each
//! product's days, and start a new session where two consecutive days are three or more apart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    create_topic, parse_iso_date, produce, read_daily_reviews, read_topic, tenant_app_wasm,
    AppSpec, Platform, PlatformConfig, Services, TestEnv, MS_PER_DAY,
};
use serde_json::Value;

const APP: &str = "reviews-sessions";
const TABLE: &str = "review_sessions";
const GAP_DAYS: i64 = 3;
/// Only turns a hang into a failure.
const LONG: Duration = Duration::from_secs(300);

/// (review id, product, day of August 2015, stars).
type Review = (&'static str, &'static str, i64, i64);

const FIRST: [Review; 2] = [("A1", "A", 1, 5), ("A5", "A", 5, 3)];
const SECOND: [Review; 7] = [
    ("A3", "A", 3, 1),
    ("B20", "B", 20, 4),
    ("B21", "B", 21, 2),
    ("C21", "C", 21, 5),
    ("B30", "B", 30, 1),
    ("B19", "B", 19, 5),
    ("B27", "B", 27, 3),
];
const THIRD: [Review; 1] = [("B29", "B", 29, 2)];
/// Late by construction: day 19 + 3 days of gap = day 22, behind the watermark of day 28.
const LATE: &str = "B19";

fn day_ms(day: i64) -> Result<i64> {
    Ok((parse_iso_date("2015-08-01").context("a test date")? + day - 1) * MS_PER_DAY)
}

fn message((id, product, day, stars): Review) -> (String, String) {
    let value = format!(
        r#"{{"review_id":"{id}","product_id":"{product}","review_date":"2015-08-{day:02}","star_rating":{stars},"helpful_votes":1,"total_votes":2}}"#
    );
    (product.to_owned(), value)
}

/// A session as the test expects it: (product, start ms) → (end ms, reviews, star sum).
type Sessions = BTreeMap<(String, i64), (i64, i64, i64)>;

/// The textbook sessions of the on-time reviews.
fn expected_sessions() -> Result<Sessions> {
    let mut days: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (id, product, day, stars) in FIRST.iter().chain(&SECOND).chain(&THIRD) {
        if *id != LATE {
            days.entry(product).or_default().push((*day, *stars));
        }
    }
    let mut sessions = Sessions::new();
    for (product, mut reviews) in days {
        reviews.sort();
        let mut current: Option<(i64, i64, i64, i64)> = None; // first day, last day, n, stars
        for (day, stars) in reviews {
            current = match current {
                Some((first, last, n, sum)) if day - last < GAP_DAYS => {
                    Some((first, day, n + 1, sum + stars))
                }
                done => {
                    if let Some((first, last, n, sum)) = done {
                        sessions.insert(
                            (product.to_owned(), day_ms(first)?),
                            (day_ms(last + GAP_DAYS)?, n, sum),
                        );
                    }
                    Some((day, day, 1, stars))
                }
            };
        }
        if let Some((first, last, n, sum)) = current {
            sessions.insert(
                (product.to_owned(), day_ms(first)?),
                (day_ms(last + GAP_DAYS)?, n, sum),
            );
        }
    }
    Ok(sessions)
}

fn wait_for(what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let started = Instant::now();
    while !done()? {
        ensure!(started.elapsed() < LONG, "waited {LONG:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[test]
fn sessions_merge_when_a_review_bridges_them_and_leave_no_orphan_row() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let input = env.topic("reviews");
    create_topic(&input, 1)?;
    let app = AppSpec {
        path: tenant_app_wasm(APP)?,
        stream: "reviews".into(),
    };
    let config = PlatformConfig::new(&env.tenant, vec![app])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(APP)?;

    // A's two sessions are written before the review that bridges them arrives.
    produce(&input, FIRST.map(message))?;
    let (a1, a5) = (day_ms(1)?, day_ms(5)?);
    wait_for("A's two sessions in Cassandra", || {
        let rows = read_daily_reviews(&env.tenant, TABLE).unwrap_or_default();
        Ok(rows.contains_key(&("A".into(), a1)) && rows.contains_key(&("A".into(), a5)))
    })?;
    produce(&input, SECOND.map(message))?;
    // B27 opened its own session (B30's is live, B20's closed); B29 joins the two.
    let b27 = day_ms(27)?;
    wait_for("B's session from day 27 in Cassandra", || {
        let rows = read_daily_reviews(&env.tenant, TABLE).unwrap_or_default();
        Ok(rows.contains_key(&("B".into(), b27)))
    })?;
    produce(&input, THIRD.map(message))?;
    platform.drain(APP)?;
    platform.wait_drained(APP, LONG)?;
    platform.stop()?;

    let expected = expected_sessions()?;
    let mut failures = Vec::new();
    let rows = read_daily_reviews(&env.tenant, TABLE)?;
    for ((product, start), (_, n, stars)) in &expected {
        match rows.get(&(product.clone(), *start)) {
            Some(row)
                if row.number_of_reviews == *n
                    && (row.avg_star_rating - *stars as f64 / *n as f64).abs() < 1e-9 => {}
            other => failures.push(format!(
                "({product}, {start}): expected {n} reviews averaging {}, Cassandra has {other:?}",
                *stars as f64 / *n as f64
            )),
        }
    }
    for key in rows.keys() {
        if !expected.contains_key(key) {
            failures.push(format!("an orphan row in Cassandra: {key:?}"));
        }
    }

    // The results topic: the last message of every (product, start) is the session's final
    // row (with its end), or a retraction for a session that is gone.
    let mut last: BTreeMap<(String, String), Value> = BTreeMap::new();
    for record in read_topic(&env.topic(&format!("{APP}.results")))? {
        let value = record.value_json()?;
        let key = (
            value["product_id"].as_str().unwrap_or_default().to_owned(),
            value["window_start"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        last.insert(key, value);
    }
    let mut finals = 0;
    for ((product, start), value) in &last {
        if value["retracted"] == true {
            continue;
        }
        finals += 1;
        let ok = expected.iter().any(|((p, s), (end, n, _))| {
            p == product
                && value["final"] == true
                && value["number_of_reviews"] == *n
                && rfc3339_ms(start) == Some(*s)
                && value["window_end"].as_str().and_then(rfc3339_ms) == Some(*end)
        });
        if !ok {
            failures.push(format!("results topic: unexpected last row {value}"));
        }
    }
    if finals != expected.len() {
        failures.push(format!(
            "results topic: {finals} sessions end in a final row, expected {}",
            expected.len()
        ));
    }
    for (product, day) in [("A", 5), ("B", 30)] {
        let gone = last.iter().any(|((p, s), v)| {
            p == product && rfc3339_ms(s) == day_ms(day).ok() && v["retracted"] == true
        });
        if !gone {
            failures.push(format!(
                "results topic: the session of {product} from day {day} should end retracted"
            ));
        }
    }

    let late: Vec<String> = read_topic(&env.topic(&format!("{APP}.late")))?
        .iter()
        .filter_map(|r| r.value_json().ok())
        .filter_map(|v| v["review_id"].as_str().map(str::to_owned))
        .collect();
    if late != [LATE] {
        failures.push(format!("late topic holds {late:?}, expected [{LATE}]"));
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// Milliseconds of a `YYYY-MM-DDT00:00:00Z` midnight, the only times this test writes.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let date = text
        .strip_suffix("T00:00:00Z")
        .or(text.strip_suffix("T00:00:00.000Z"))?;
    parse_iso_date(date).map(|days| days * MS_PER_DAY)
}
