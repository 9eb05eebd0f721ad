//! The enrich stage end to end on real Kafka, Cassandra and the real sentiment service: the
//! reviews-sentiment app's rows equal an expectation computed here from the TSV and the same
//! model called directly; and when the service stops mid-stream, the records wait in Kafka and
//! flow when it returns, with exactly the same rows.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_sentiment, create_topic, diff_sentiment, expected_sentiment, generate_reviews,
    produce_reviews, read_review_sentiment, read_reviews, read_topic, score_texts, send_part,
    sentiment_app, sentiment_url, services_toml, shipped_manifest, split_tsv, OwnService,
    Platform, PlatformConfig, Services, TestEnv, REVIEWS_SENTIMENT,
};
use serde_json::Value;

const DRAIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const WAIT: Duration = Duration::from_secs(120);
/// Small enough that the platform needs hundreds of calls, large enough for many windows.
const GEN: [&str; 10] = [
    "--late", "0", "--malformed", "0", "--out-of-order", "0.05", "--products", "300", "--days",
    "60",
];

/// Every review's score from the service directly, and what the app must write.
fn expectation(
    base: &str,
    tsv: &std::path::Path,
) -> Result<(
    usize,
    std::collections::BTreeMap<mysimbdp_tests::WindowKey, mysimbdp_tests::SentimentRow>,
)> {
    let reviews = read_reviews(tsv)?;
    let texts: Vec<String> = reviews.iter().map(|r| r.body.clone()).collect();
    let scores = score_texts(base, &texts)?;
    let none = BTreeSet::new();
    let expected = expected_sentiment(&reviews, &scores, &none, &none);
    let negative = scores.iter().filter(|(s, _)| *s <= -0.05).count();
    let mismatched = reviews
        .iter()
        .zip(&scores)
        .filter(|(r, (_, stars))| (r.star_rating - stars).abs() >= 3)
        .count();
    eprintln!(
        "expected: {} reviews, {negative} negative, {mismatched} with stars 3+ away from the text's, {} (product, day) rows",
        reviews.len(),
        expected.len()
    );
    ensure!(negative > 0 && mismatched > 0, "the generated bodies carry no sentiment signal");
    Ok((reviews.len(), expected))
}

fn check_rows(env: &TestEnv, expected: &std::collections::BTreeMap<mysimbdp_tests::WindowKey, mysimbdp_tests::SentimentRow>) -> Result<()> {
    let actual = read_review_sentiment(&env.tenant)?;
    let diffs = diff_sentiment(&actual, expected, 10);
    if !diffs.is_empty() {
        bail!(
            "review_sentiment differs from the model's expectation in {} rows:\n{}",
            diffs.len(),
            diffs.join("\n")
        );
    }
    Ok(())
}

fn enrich_status(status: &Value) -> Result<&Value> {
    let enrich = &status["enrich"];
    ensure!(enrich.is_object(), "the status shows no enrich stage: {status}");
    Ok(enrich)
}

#[test]
fn sentiment_rows_equal_the_model_called_directly() -> Result<()> {
    let services = Services::check()?;
    let base = sentiment_url();
    let model = check_sentiment(&base)?;
    eprintln!("services: {services:?}, sentiment: {model} at {base}");
    let env = TestEnv::new()?;
    let (tsv, _) = generate_reviews(&env, 20_000, 7, &GEN)?;
    let (rows, expected) = expectation(&base, &tsv)?;

    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let app = sentiment_app(&env, "app", &shipped_manifest()?)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![app])?;
    config.extra_toml = services_toml(&env.tenant, &base, "");
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_SENTIMENT)?;
    platform.drain(REVIEWS_SENTIMENT)?;
    let status = platform.wait_drained(REVIEWS_SENTIMENT, DRAIN_TIMEOUT)?;
    eprintln!("drained: {status}");

    check_rows(&env, &expected)?;
    let enrich = enrich_status(&status)?;
    ensure!(enrich["breaker"] == "closed", "breaker: {enrich}");
    ensure!(
        enrich["calls"].as_u64().unwrap_or(0) >= (rows as u64).div_ceil(64),
        "fewer calls than batches of 64: {enrich}"
    );
    ensure!(status["dead_letters"] == 0, "dead letters: {status}");
    let dead = read_topic(&env.topic("reviews-sentiment.dead-letters"))?;
    ensure!(dead.is_empty(), "{} dead letters", dead.len());
    let exit = platform.stop()?;
    ensure!(exit.success(), "the platform exited with {exit}");
    Ok(())
}

#[test]
fn a_stopped_service_holds_the_input_in_kafka_then_results_are_exact() -> Result<()> {
    Services::check()?;
    check_sentiment(&sentiment_url())?;
    let env = TestEnv::new()?;
    let mut service = OwnService::start(&env)?;
    let base = service.base();
    let (tsv, _) = generate_reviews(&env, 12_000, 11, &GEN)?;
    let (_, expected) = expectation(&base, &tsv)?;
    let parts = split_tsv(&env, &tsv, 3)?;

    create_topic(&env.topic("reviews"), 4)?;
    let app = sentiment_app(&env, "app", &shipped_manifest()?)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![app])?;
    config.extra_toml = services_toml(
        &env.tenant,
        &base,
        "timeout_ms = 1000\nbackoff_ms = 50\nmax_backoff_ms = 500\nbreaker_failures = 3\nbreaker_open_ms = 500",
    );
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_SENTIMENT)?;

    // 1. The first part flows.
    send_part(&env, &parts[0])?;
    let first = part_rows(&parts[0])?;
    platform.wait_until(REVIEWS_SENTIMENT, "the first part processed", WAIT, |s| {
        s["records_processed"].as_u64().unwrap_or(0) >= first
    })?;

    // 2. The service stops; the second part waits in Kafka, the breaker opens.
    service.stop()?;
    send_part(&env, &parts[1])?;
    let held = platform.wait_until(REVIEWS_SENTIMENT, "the breaker open and input waiting", WAIT, |s| {
        s["enrich"]["breaker"] != "closed" && s["lag"].as_i64().unwrap_or(0) > 0
    })?;
    eprintln!("while the service is down: {held}");
    let processed = held["records_processed"].as_u64().unwrap_or(0);
    ensure!(
        processed < first + part_rows(&parts[1])?,
        "all of the second part was processed without the service: {held}"
    );
    ensure!(held["dead_letters"] == 0, "records were given up while the service was down: {held}");

    // 3. The service returns: everything flows, exactly once.
    service.restart()?;
    send_part(&env, &parts[2])?;
    platform.drain(REVIEWS_SENTIMENT)?;
    let status = platform.wait_drained(REVIEWS_SENTIMENT, DRAIN_TIMEOUT)?;
    eprintln!("drained: {status}");
    check_rows(&env, &expected)?;
    let enrich = enrich_status(&status)?;
    ensure!(enrich["breaker"] == "closed", "breaker after the return: {enrich}");
    ensure!(enrich["errors"].as_u64().unwrap_or(0) > 0, "no errors counted: {enrich}");
    ensure!(status["dead_letters"] == 0, "dead letters: {status}");
    let exit = platform.stop()?;
    ensure!(exit.success(), "the platform exited with {exit}");
    Ok(())
}

/// Data rows of a TSV part (its lines after the header).
fn part_rows(part: &std::path::Path) -> Result<u64> {
    let text = std::fs::read_to_string(part).with_context(|| format!("{}", part.display()))?;
    Ok(text.lines().count().saturating_sub(1) as u64)
}
