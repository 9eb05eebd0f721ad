//! The enrich stage end to end on real Kafka, Cassandra and the real sentiment service: the
//! reviews-sentiment app's rows equal an expectation computed here from the TSV and the same
//! model called directly; when the service stops mid-stream, the records wait in Kafka and flow
//! when it returns (across a platform restart), with exactly the same rows; wrong answers follow
//! the app's failure policy; a slow service builds lag, not memory; while the service holds its
//! answers the app's worker still answers operators, and a hot swap waits for the calls in
//! flight and then runs with the new build's own enrich declaration.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::tenant_app_wasm;
use mysimbdp_tests::{
    check_sentiment, create_topic, diff_sentiment, expected_sentiment, generate_reviews,
    produce_reviews, read_review_sentiment, read_reviews, read_topic, score_texts, send_part,
    sentiment_app, sentiment_url, services_toml, shipped_manifest, split_tsv, AppSpec, Faults,
    FaultyService, OwnService, Platform, PlatformConfig, Services, TestEnv, REVIEWS_SENTIMENT,
    REVIEW_SENTIMENT_TABLE,
};
use serde_json::Value;

const DRAIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const WAIT: Duration = Duration::from_secs(120);
/// Small enough that the platform needs hundreds of calls, large enough for many windows.
const GEN: [&str; 10] = [
    "--late",
    "0",
    "--malformed",
    "0",
    "--out-of-order",
    "0.05",
    "--products",
    "300",
    "--days",
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
    ensure!(
        negative > 0 && mismatched > 0,
        "the generated bodies carry no sentiment signal"
    );
    Ok((reviews.len(), expected))
}

fn check_table(
    env: &TestEnv,
    table: &str,
    expected: &std::collections::BTreeMap<mysimbdp_tests::WindowKey, mysimbdp_tests::SentimentRow>,
) -> Result<()> {
    let actual = read_review_sentiment(&env.tenant, table)?;
    let diffs = diff_sentiment(&actual, expected, 10);
    if !diffs.is_empty() {
        bail!(
            "{table} differs from the model's expectation in {} rows:\n{}",
            diffs.len(),
            diffs.join("\n")
        );
    }
    Ok(())
}

fn enrich_status(status: &Value) -> Result<&Value> {
    let enrich = &status["enrich"];
    ensure!(
        enrich.is_object(),
        "the status shows no enrich stage: {status}"
    );
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

    check_table(&env, REVIEW_SENTIMENT_TABLE, &expected)?;
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

/// reviews-sentiment written with the Python and JavaScript SDKs, and their tables.
const GUESTS: [(&str, &str); 2] = [
    ("reviews-sentiment-py", "review_sentiment_py"),
    ("reviews-sentiment-js", "review_sentiment_js"),
];

/// The other SDKs' `enrich=` (Python) and `enrich:` (JavaScript): each component carries its
/// declaration (no `.enrich.toml` beside it), the platform calls the real service for it, and
/// each app's table equals the expectation from the model called directly.
#[test]
fn python_and_javascript_apps_carry_their_enrich_stage() -> Result<()> {
    Services::check()?;
    let base = sentiment_url();
    check_sentiment(&base)?;
    let env = TestEnv::new()?;
    let (tsv, _) = generate_reviews(&env, 4_000, 11, &GEN)?;
    let (rows, expected) = expectation(&base, &tsv)?;

    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let mut apps = Vec::new();
    for (app, _) in GUESTS {
        let path = tenant_app_wasm(app)?;
        ensure!(
            !path.with_extension("enrich.toml").exists(),
            "{} has a declaration beside it: the test must find the component's own",
            path.display()
        );
        apps.push(AppSpec {
            path,
            stream: "reviews".into(),
        });
    }
    let mut config = PlatformConfig::new(&env.tenant, apps)?;
    config.extra_toml = services_toml(&env.tenant, &base, "");
    let mut platform = Platform::start(&env, "platform", &config)?;
    for (app, _) in GUESTS {
        platform.wait_ready(app)?;
        platform.drain(app)?;
    }
    for (app, table) in GUESTS {
        let status = platform.wait_drained(app, DRAIN_TIMEOUT)?;
        let enrich = enrich_status(&status).with_context(|| app.to_owned())?;
        ensure!(
            enrich["calls"].as_u64().unwrap_or(0) >= (rows as u64).div_ceil(64),
            "{app}: fewer calls than batches of 64: {enrich}"
        );
        ensure!(status["dead_letters"] == 0, "{app}: dead letters: {status}");
        check_table(&env, table, &expected).with_context(|| app.to_owned())?;
    }
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
    let held = platform.wait_until(
        REVIEWS_SENTIMENT,
        "the breaker open and input waiting",
        WAIT,
        |s| {
            s["enrich"]["breaker"] != "closed"
                && s["lag"].as_i64().unwrap_or(0) > 0
                && s["caught_up"] == false
        },
    )?;
    eprintln!("while the service is down: {held}");
    ensure!(
        held["records_processed"].as_u64() == Some(first),
        "records of the second part were processed without the service: {held}"
    );
    ensure!(
        held["enrich"]["errors"].as_u64().unwrap_or(0) > 0,
        "no errors counted: {held}"
    );
    ensure!(
        held["dead_letters"] == 0,
        "records were given up while the service was down: {held}"
    );

    // 3. The platform is stopped while it waits (it must not hang on the service), and
    //    started again: it resumes from its last checkpoint and asks the service again.
    let exit = platform.stop()?;
    ensure!(
        exit.success(),
        "stopping while the service was down: exit {exit}"
    );
    service.restart()?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_SENTIMENT)?;

    // 4. The service is back: everything flows, exactly once.
    send_part(&env, &parts[2])?;
    platform.drain(REVIEWS_SENTIMENT)?;
    let status = platform.wait_drained(REVIEWS_SENTIMENT, DRAIN_TIMEOUT)?;
    eprintln!("drained: {status}");
    check_table(&env, REVIEW_SENTIMENT_TABLE, &expected)?;
    let enrich = enrich_status(&status)?;
    ensure!(
        enrich["breaker"] == "closed",
        "breaker after the return: {enrich}"
    );
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

/// A text in some generated bodies (a 3-star opinion): the faulty front answers 500 for it.
const ERROR_TEXT: &str = "Mixed feelings about this one.";
/// Another: the faulty front answers garbage for it.
const GARBAGE_TEXT: &str = "Fine for occasional use.";

/// The shipped manifest with one record per request (so that which records are refused
/// depends on their text alone) and the given failure policy.
fn per_record_manifest(policy: &str) -> Result<String> {
    let shipped = shipped_manifest()?;
    ensure!(
        shipped.contains("batch_size = 64") && shipped.contains("on_failure = \"dead-letter\""),
        "the shipped manifest changed: update this test"
    );
    Ok(shipped
        .replace("batch_size = 64", "batch_size = 1")
        .replace(
            "on_failure = \"dead-letter\"",
            &format!("on_failure = \"{policy}\""),
        ))
}

fn run_policy(policy: &str) -> Result<()> {
    let env = TestEnv::new()?;
    let front = FaultyService::start(
        &sentiment_url(),
        Faults {
            error_marker: Some(ERROR_TEXT.into()),
            garbage_marker: Some(GARBAGE_TEXT.into()),
            ..Faults::default()
        },
    )?;
    let (tsv, _) = generate_reviews(&env, 6_000, 23, &GEN)?;
    let reviews = read_reviews(&tsv)?;
    let texts: Vec<String> = reviews.iter().map(|r| r.body.clone()).collect();
    let scores = score_texts(&sentiment_url(), &texts)?;
    let refused: BTreeSet<String> = reviews
        .iter()
        .filter(|r| r.body.contains(ERROR_TEXT) || r.body.contains(GARBAGE_TEXT))
        .map(|r| r.review_id.clone())
        .collect();
    let errors = reviews
        .iter()
        .filter(|r| r.body.contains(ERROR_TEXT))
        .count();
    ensure!(
        errors > 0 && errors < refused.len(),
        "the input needs reviews with each marker ({errors} of {} refused)",
        refused.len()
    );
    let none = BTreeSet::new();
    let expected = match policy {
        "dead-letter" => expected_sentiment(&reviews, &scores, &none, &refused),
        _ => expected_sentiment(&reviews, &scores, &refused, &none),
    };
    eprintln!(
        "{policy}: {} of {} reviews refused by the front",
        refused.len(),
        reviews.len()
    );

    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let app = sentiment_app(&env, "app", &per_record_manifest(policy)?)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![app])?;
    config.extra_toml = services_toml(
        &env.tenant,
        &front.base(),
        "retries = 1\nbackoff_ms = 10\nmax_in_flight = 8",
    );
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_SENTIMENT)?;
    platform.drain(REVIEWS_SENTIMENT)?;
    let status = platform.wait_drained(REVIEWS_SENTIMENT, DRAIN_TIMEOUT)?;
    eprintln!("{policy}: drained: {status}");
    check_table(&env, REVIEW_SENTIMENT_TABLE, &expected)?;

    let dead = read_topic(&env.topic("reviews-sentiment.dead-letters"))?;
    match policy {
        "dead-letter" => {
            let mut ids = BTreeSet::new();
            for record in &dead {
                let value = record.value_json()?;
                let id = value["review_id"].as_str().unwrap_or_default().to_owned();
                let reason = record.header("mysimbdp-reason").unwrap_or_default();
                let body = value["review_body"].as_str().unwrap_or_default();
                let cause = if body.contains(ERROR_TEXT) {
                    "HTTP 500"
                } else {
                    "not JSON"
                };
                ensure!(
                    reason.contains("enrichment by service `sentiment` failed")
                        && reason.contains(cause),
                    "dead letter {id}: reason `{reason}` does not name the service and `{cause}`"
                );
                ensure!(ids.insert(id.clone()), "{id} is twice in the dead letters");
            }
            ensure!(
                ids == refused,
                "dead letters: {} records, refused by the front: {}",
                ids.len(),
                refused.len()
            );
        }
        _ => {
            ensure!(
                dead.is_empty(),
                "{} dead letters under on_failure = default",
                dead.len()
            );
            let defaulted = enrich_status(&status)?["defaulted"].as_u64().unwrap_or(0);
            ensure!(
                defaulted >= refused.len() as u64,
                "{defaulted} records defaulted, {} refused",
                refused.len()
            );
        }
    }
    let exit = platform.stop()?;
    ensure!(exit.success(), "the platform exited with {exit}");
    Ok(())
}

#[test]
fn wrong_answers_follow_the_apps_failure_policy() -> Result<()> {
    Services::check()?;
    check_sentiment(&sentiment_url())?;
    run_policy("dead-letter")?;
    run_policy("default")
}

#[test]
fn a_slow_service_builds_lag_not_memory() -> Result<()> {
    Services::check()?;
    check_sentiment(&sentiment_url())?;
    let env = TestEnv::new()?;
    let front = FaultyService::start(&sentiment_url(), Faults::default())?;
    front
        .faults
        .delay_ms
        .store(300, std::sync::atomic::Ordering::Relaxed);
    let (tsv, _) = generate_reviews(&env, 20_000, 31, &GEN)?;
    let (rows, expected) = expectation(&sentiment_url(), &tsv)?;

    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let app = sentiment_app(&env, "app", &shipped_manifest()?)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![app])?;
    config.extra_toml = services_toml(&env.tenant, &front.base(), "max_in_flight = 2");
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_SENTIMENT)?;
    // While every call takes 300 ms the app falls behind: the input waits in Kafka.
    let slow = platform.wait_until(REVIEWS_SENTIMENT, "lag behind a slow service", WAIT, |s| {
        s["records_processed"].as_u64().unwrap_or(0) > 0 && s["lag"].as_i64().unwrap_or(0) > 5_000
    })?;
    let peak = platform.peak_memory()?;
    eprintln!("slow: peak RSS {} MiB, {slow}", peak >> 20);
    ensure!(
        peak < 512 << 20,
        "the platform's peak memory reached {} MiB behind a slow service",
        peak >> 20
    );
    front
        .faults
        .delay_ms
        .store(0, std::sync::atomic::Ordering::Relaxed);
    platform.drain(REVIEWS_SENTIMENT)?;
    let status = platform.wait_drained(REVIEWS_SENTIMENT, DRAIN_TIMEOUT)?;
    check_table(&env, REVIEW_SENTIMENT_TABLE, &expected)?;
    ensure!(
        status["records_processed"].as_u64() == Some(rows as u64),
        "not every record was processed: {status}"
    );
    let exit = platform.stop()?;
    ensure!(exit.success(), "the platform exited with {exit}");
    Ok(())
}

/// Waits (with a timeout that only turns a hang into a failure) until `done` holds.
fn wait_for(what: &str, done: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while !done() {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn a_held_service_leaves_the_worker_free_and_a_swap_takes_the_new_declaration() -> Result<()> {
    Services::check()?;
    check_sentiment(&sentiment_url())?;
    let env = TestEnv::new()?;
    let front = FaultyService::start(&sentiment_url(), Faults::default())?;
    front.faults.hold.store(true, Ordering::SeqCst);
    let (tsv, _) = generate_reviews(&env, 6_000, 41, &GEN)?;
    let (rows, expected) = expectation(&sentiment_url(), &tsv)?;

    create_topic(&env.topic("reviews"), 4)?;
    // Started with a declaration beside the .wasm: one record per request.
    let app = sentiment_app(&env, "app", &per_record_manifest("dead-letter")?)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![app])?;
    // A call waits for its answer as long as the front holds it (no timeout comes first).
    config.extra_toml = services_toml(
        &env.tenant,
        &front.base(),
        "timeout_ms = 3600000\nmax_in_flight = 2",
    );
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_SENTIMENT)?;
    produce_reviews(&env, &tsv)?;

    // 1. Both slots hold a call the front does not answer; the records wait, the worker does
    //    not: it answers a pause and a resume.
    wait_for("two calls held at the front", || {
        front.faults.held.load(Ordering::SeqCst) >= 2
    })?;
    let held = platform.wait_until(REVIEWS_SENTIMENT, "lag behind the held calls", WAIT, |s| {
        s["lag"].as_i64().unwrap_or(0) > 0
    })?;
    ensure!(
        held["records_processed"] == 0,
        "records were processed while every call was held: {held}"
    );
    let paused = platform.act(REVIEWS_SENTIMENT, "pause")?;
    ensure!(paused.starts_with("paused"), "pause answered: {paused}");
    let resumed = platform.act(REVIEWS_SENTIMENT, "resume")?;
    ensure!(resumed.starts_with("resumed"), "resume answered: {resumed}");
    ensure!(
        front.faults.held.load(Ordering::SeqCst) >= 2,
        "the held calls were answered"
    );

    // 2. A deploy of the build as uploaded (its own [enrich]: 64 records per request) waits
    //    for the held calls, then takes over with that declaration.
    let wasm = tenant_app_wasm(REVIEWS_SENTIMENT)?;
    let wasm = wasm.to_string_lossy().into_owned();
    let swapped = std::thread::scope(|scope| -> Result<String> {
        let deploy = scope.spawn(|| {
            platform.operate(
                &env,
                "swap",
                &["deploy", "--tenant", &env.tenant, "--path", &wasm],
            )
        });
        let waiting = (|| -> Result<Value> {
            let deadline = Instant::now() + WAIT;
            loop {
                let status = platform.status(REVIEWS_SENTIMENT)?;
                if status["waiting"]
                    .as_str()
                    .is_some_and(|w| w.contains("take-over waits"))
                {
                    return Ok(status);
                }
                ensure!(
                    Instant::now() < deadline,
                    "the deploy never waited for the held calls: {status}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })();
        let before = front.faults.largest.load(Ordering::SeqCst);
        front.faults.hold.store(false, Ordering::SeqCst);
        let waiting = waiting?;
        ensure!(
            before == 1,
            "requests of {before} records before the swap, under batch_size 1"
        );
        eprintln!("while the deploy waits: {waiting}");
        let output = deploy
            .join()
            .map_err(|_| anyhow::anyhow!("the deploy thread panicked"))??;
        output.ensure_success("swap")?;
        Ok(output.stdout)
    })?;
    eprintln!("deploy: {swapped}");
    ensure!(
        swapped.contains("took over")
            && swapped.contains(
                "enrich: the new build's declaration runs (service `sentiment`, batch_size 64)"
            ),
        "the deploy did not say it takes the new declaration: {swapped}"
    );

    // 3. The rest is read under the new declaration; every row is exact.
    platform.drain(REVIEWS_SENTIMENT)?;
    let status = platform.wait_drained(REVIEWS_SENTIMENT, DRAIN_TIMEOUT)?;
    eprintln!("drained: {status}");
    check_table(&env, REVIEW_SENTIMENT_TABLE, &expected)?;
    ensure!(
        status["records_processed"].as_u64() == Some(rows as u64),
        "not every record was processed: {status}"
    );
    ensure!(status["dead_letters"] == 0, "dead letters: {status}");
    ensure!(
        front.faults.largest.load(Ordering::SeqCst) > 1,
        "no request carried more than one record after the swap to batch_size 64"
    );
    let exit = platform.stop()?;
    ensure!(exit.success(), "the platform exited with {exit}");
    Ok(())
}
