//! Checks of everything the reviews app wrote against the expectation: the Cassandra table,
//! the results topic (read committed), the late and dead-letter topics.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::kafka::{read_topic, KafkaRecord};
use crate::reviews::{diff_aggregates, parse_utc_timestamp_ms, ExpectedReviews, WindowKey};
use crate::{read_aggregated_reviews, TestEnv, REVIEWS_DAILY};

const REASON: &str = "mysimbdp-reason";
const SOURCE: &str = "mysimbdp-source";

/// Whether a record may appear more than once on a topic: after a crash, what was committed
/// after the last checkpoint is produced again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeats {
    Forbidden,
    Allowed,
}

/// The app's Cassandra table equals the expectation, row for row.
pub fn check_cassandra(env: &TestEnv, expected: &ExpectedReviews) -> Result<()> {
    let actual = read_aggregated_reviews(&env.tenant)?;
    if let Some(diff) = diff_aggregates(&expected.windows, &actual, 10) {
        bail!(
            "{}.aggregated_reviews differs from the expectation: {diff}",
            env.tenant
        );
    }
    Ok(())
}

/// The records' non-empty `mysimbdp-reason` headers, or the places of those without one.
pub fn check_reasons(records: &[KafkaRecord]) -> Result<()> {
    let without: Vec<String> = records
        .iter()
        .filter(|r| {
            r.header(REASON)
                .is_none_or(|reason| reason.trim().is_empty())
        })
        .map(|r| format!("{}@{}", r.partition, r.offset))
        .collect();
    ensure!(
        without.is_empty(),
        "{} message(s) without a non-empty {REASON} header, e.g. at {}",
        without.len(),
        without
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The first ten of `items`, joined by `separator`: enough examples for a failure message.
pub fn examples(items: &[String], separator: &str) -> String {
    items
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(separator)
}

/// The difference of two multisets of strings, as "missing"/"unexpected" examples.
fn multiset_diff(expected: &[String], actual: &[String]) -> Option<String> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for id in expected {
        *counts.entry(id).or_default() += 1;
    }
    for id in actual {
        *counts.entry(id).or_default() -= 1;
    }
    let missing: Vec<_> = counts
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(id, n)| format!("{id}×{n}"))
        .collect();
    let extra: Vec<_> = counts
        .iter()
        .filter(|(_, &n)| n < 0)
        .map(|(id, n)| format!("{id}×{}", -n))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    Some(format!(
        "expected {} ids, got {}; {} missing (e.g. {}); {} unexpected (e.g. {})",
        expected.len(),
        actual.len(),
        missing.len(),
        examples(&missing, ", "),
        extra.len(),
        examples(&extra, ", ")
    ))
}

/// The late topic holds exactly the late rows, each with a reason; after a crash a row may
/// be there more than once (`Repeats::Allowed`), but never missing or unexpected.
pub fn check_late_topic(env: &TestEnv, expected: &ExpectedReviews, repeats: Repeats) -> Result<()> {
    let topic = env.topic(&format!("{REVIEWS_DAILY}.late"));
    let records = read_topic(&topic)?;
    let mut actual = Vec::with_capacity(records.len());
    for record in &records {
        let value = record.value_json().with_context(|| format!("on {topic}"))?;
        let id = value
            .get("review_id")
            .and_then(Value::as_str)
            .with_context(|| format!("{topic}: a message without a review_id: {value}"))?;
        actual.push(id.to_owned());
    }
    let mut wanted: Vec<String> = expected.late.iter().map(|l| l.review_id.clone()).collect();
    wanted.sort();
    actual.sort();
    if repeats == Repeats::Allowed {
        actual.dedup();
    }
    if let Some(diff) = multiset_diff(&wanted, &actual) {
        bail!("{topic} does not hold exactly the late rows: {diff}");
    }
    check_reasons(&records).with_context(|| topic.clone())
}

/// The dead-letter topic holds the malformed rows, each with a reason.
pub fn check_dead_letters(
    env: &TestEnv,
    expected: &ExpectedReviews,
    repeats: Repeats,
) -> Result<()> {
    let topic = env.topic(&format!("{REVIEWS_DAILY}.dead-letters"));
    let records = read_topic(&topic)?;
    ensure!(
        records.len() == expected.malformed.len()
            || (repeats == Repeats::Allowed && records.len() > expected.malformed.len()),
        "{topic} holds {} messages, expected {} (the malformed rows)",
        records.len(),
        expected.malformed.len()
    );
    let absent: Vec<String> = expected
        .malformed
        .iter()
        .filter_map(|row| {
            let id = row.review_id.as_deref()?;
            let found = records.iter().any(|r| contains(&r.value, id.as_bytes()));
            (!found).then(|| format!("line {} ({}, review_id `{id}`)", row.line, row.reason))
        })
        .collect();
    ensure!(
        absent.is_empty(),
        "{} malformed row(s) are not on {topic}: {}",
        absent.len(),
        examples(&absent, "; ")
    );
    if repeats == Repeats::Forbidden {
        let mut sources = BTreeSet::new();
        let repeated: Vec<String> = records
            .iter()
            .filter_map(|r| r.header(SOURCE))
            .filter(|source| !sources.insert(source.clone()))
            .collect();
        ensure!(
            repeated.is_empty() && sources.len() == records.len(),
            "{topic}: {} message(s) repeat an input record, or have no {SOURCE} header: {}",
            records.len() - sources.len(),
            examples(&repeated, ", ")
        );
    }
    check_reasons(&records).with_context(|| topic.clone())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Read committed, as a tenant would: for each (product, day), the last update equals the
/// expected aggregate, and no update ever counts more reviews than the window really has (a
/// record counted twice would show there). All updates of a window sit in one partition (keyed
/// by product), or "last" would mean nothing. With `Repeats::Forbidden`, each window's updates
/// are one sequence: counts never go back, no update is there twice, and the one final update
/// is the last.
pub fn check_results_topic(
    env: &TestEnv,
    expected: &ExpectedReviews,
    repeats: Repeats,
) -> Result<()> {
    let topic = env.topic(&format!("{REVIEWS_DAILY}.results"));
    let records = read_topic(&topic)?;
    ensure!(!records.is_empty(), "{topic} is empty");
    let mut last: BTreeMap<WindowKey, (i32, Value)> = BTreeMap::new();
    let mut split = BTreeSet::new();
    let mut problems = Vec::new();
    for record in &records {
        let value = record.value_json().with_context(|| format!("on {topic}"))?;
        let product = value.get("product_id").and_then(Value::as_str);
        let start = value.get("window_start").and_then(Value::as_str);
        let count = value.get("number_of_reviews").and_then(Value::as_i64);
        let (Some(product), Some(start), Some(count)) = (product, start, count) else {
            bail!(
                "{topic}: a message without product_id, window_start or number_of_reviews: {value}"
            );
        };
        let start_ms = parse_utc_timestamp_ms(start).with_context(|| {
            format!("{topic}: window_start `{start}` is not an RFC 3339 UTC time")
        })?;
        let key = (product.to_owned(), start_ms);
        if let Some(want) = expected.windows.get(&key) {
            if count > want.number_of_reviews {
                problems.push(format!(
                    "{key:?}: an update at {}@{} counts {count} reviews, the window has {}",
                    record.partition, record.offset, want.number_of_reviews
                ));
            }
        }
        let is_final = value.get("final").and_then(Value::as_bool) == Some(true);
        if let Some((partition, previous)) = last.get(&key) {
            if *partition != record.partition {
                split.insert(format!("{key:?}"));
            }
            let before = previous.get("number_of_reviews").and_then(Value::as_i64);
            let was_final = previous.get("final").and_then(Value::as_bool) == Some(true);
            if repeats == Repeats::Forbidden
                && (was_final || before > Some(count) || (before == Some(count) && !is_final))
            {
                problems.push(format!(
                    "{key:?}: the update at {}@{} ({count} reviews, final {is_final}) repeats or \
                     goes back from the one before it ({before:?} reviews, final {was_final})",
                    record.partition, record.offset
                ));
            }
        }
        last.insert(key, (record.partition, value));
    }
    ensure!(
        split.is_empty(),
        "{} window(s) have updates in more than one partition, e.g. {}",
        split.len(),
        split.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    );
    for (key, want) in &expected.windows {
        let Some((_, value)) = last.get(key) else {
            problems.push(format!("{key:?}: no message"));
            continue;
        };
        let int = |name: &str| value.get(name).and_then(Value::as_i64);
        let avg = value.get("avg_star_rating").and_then(Value::as_f64);
        let same = int("number_of_reviews") == Some(want.number_of_reviews)
            && int("sum_helpful_votes") == Some(want.sum_helpful_votes)
            && int("sum_total_votes") == Some(want.sum_total_votes)
            && avg.is_some_and(|a| (a - want.avg_star_rating).abs() < 1e-9);
        if !same {
            problems.push(format!("{key:?}: last update {value}, expected {want:?}"));
        }
    }
    for key in last.keys().filter(|k| !expected.windows.contains_key(*k)) {
        problems.push(format!("{key:?}: a window that should not exist"));
    }
    ensure!(
        problems.is_empty(),
        "{topic}: {} problem(s) ({} messages read): {}",
        problems.len(),
        records.len(),
        examples(&problems, "; ")
    );
    Ok(())
}
