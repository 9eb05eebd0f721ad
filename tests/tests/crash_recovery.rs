//! Crashes: the platform is killed with SIGKILL at random moments while reviews arrive, and
//! restarted each time; it resumes from its last committed checkpoint. The input arrives in
//! parts, one before each kill, so every kill lands with input still to come, however fast the
//! machine. After the input is drained, the Cassandra rows equal the expectation computed from
//! the TSV alone. Exactly-once (the default): read committed, the results topic holds one
//! sequence of updates per window, nothing repeated, and the late and dead-letter topics hold
//! exactly their records, once. At-least-once: the same rows and last updates, repeats allowed.
//! At-most-once: only the windows open at the moment of the crash are lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_cassandra, check_reviews_outputs, committed_offsets, create_topic, examples,
    final_windows, generate_reviews, produce, read_aggregated_reviews, send_part, split_tsv,
    tenant_app_wasm, AppSpec, Platform, PlatformConfig, Repeats, Services, TestEnv, MS_PER_DAY,
    REVIEWS_DAILY,
};
use serde_json::Value;

const ROWS: u32 = 200_000;
const KILLS: usize = 5;
/// Out-of-order, late and malformed rows among the good ones.
const MESSY: &[&str] = &[
    "--late",
    "0.002",
    "--malformed",
    "0.002",
    "--out-of-order",
    "0.05",
];

/// A small xorshift generator: the kill moments vary from run to run, and the seed is printed.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn counter(status: &Value, name: &str) -> u64 {
    status.get(name).and_then(Value::as_u64).unwrap_or(0)
}

#[test]
fn kill_9_at_random_moments_keeps_results_exact() -> Result<()> {
    kills_under_a_stream(ROWS, KILLS, None, Repeats::Forbidden)
}

/// At-least-once: checkpoints without transactions. Cassandra and every window's last update
/// are as exact as with exactly-once; the topics may repeat what came after the last checkpoint.
#[test]
fn at_least_once_keeps_cassandra_exact_after_kill_9() -> Result<()> {
    kills_under_a_stream(60_000, 2, Some("at-least-once"), Repeats::Allowed)
}

/// Sends the reviews in `kills + 1` parts; after each of the first `kills`, waits for a
/// checkpoint of the run and kills it at a random moment within the next 2 s, then restarts.
/// Drains after the last part and checks every output.
fn kills_under_a_stream(
    rows: u32,
    kills: usize,
    delivery: Option<&str>,
    repeats: Repeats,
) -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, rows, 4242, MESSY)?;
    let input = env.topic("reviews");
    create_topic(&input, 4)?;
    let group = format!("mysimbdp.{}.{REVIEWS_DAILY}", env.tenant);

    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 1000\n".into();
    config.delivery = delivery.map(str::to_owned);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        | 1;
    eprintln!("kill moments seed {seed}, tenant {}", env.tenant);
    let mut moments = Moments(seed);

    let parts = split_tsv(&env, &tsv, kills + 1)?;
    ensure!(parts.len() == kills + 1, "{} parts", parts.len());

    let mut platform = Platform::start(&env, "run-0", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    for kill in 1..=kills {
        send_part(&env, &parts[kill - 1])?;
        // This run has read input and saved at least one checkpoint; then a random moment
        // within the next 2 s, while it may still be working through the part.
        platform.wait_until(
            REVIEWS_DAILY,
            &format!("the first checkpoint of run {kill}"),
            Duration::from_secs(180),
            |s| counter(s, "checkpoints") >= 1 && counter(s, "records_in") > 0,
        )?;
        std::thread::sleep(Duration::from_millis(moments.next_ms(2000)));
        let status = platform.status(REVIEWS_DAILY)?;
        eprintln!(
            "kill -9 #{kill} after {} checkpoint(s), {} records read by this run",
            counter(&status, "checkpoints"),
            counter(&status, "records_in")
        );
        platform.kill()?;
        let committed = committed_offsets(&group, &input)?;
        platform = Platform::start(&env, &format!("run-{kill}"), &config)?;
        platform.wait_ready(REVIEWS_DAILY)?;
        if delivery.is_none() {
            // Exactly-once: the run resumes where the last commit left every partition.
            ensure!(
                committed.values().any(|o| *o > 0),
                "kill {kill}: nothing committed"
            );
            platform.wait_resumed_at(&committed)?;
        }
    }
    send_part(&env, &parts[kills])?;

    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(900))?;
    eprintln!("drained after {kills} kills: {status}");
    let failures = check_reviews_outputs(&env, &expected, repeats);
    platform.stop()?;
    if !failures.is_empty() {
        bail!(
            "after {kills} kills (seed {seed}), {} check(s) failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    let _ = std::fs::remove_file(&tsv);
    Ok(())
}

/// A crash, then a restart with the next version of the app: it resumes from the checkpoint the
/// old version saved (same state version) and the drained results are exact.
#[test]
fn a_restart_with_a_new_version_resumes_from_the_checkpoint() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, 50_000, 808, &[])?;
    create_topic(&env.topic("reviews"), 4)?;
    let v1 = AppSpec::reviews_daily()?;
    let v2 = AppSpec {
        path: tenant_app_wasm("reviews-daily-v2")?,
        stream: "reviews".into(),
    };
    let mut config = PlatformConfig::new(&env.tenant, vec![v1])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 1000\n".into();
    let parts = split_tsv(&env, &tsv, 2)?;
    let mut platform = Platform::start(&env, "v1", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    send_part(&env, &parts[0])?;
    platform.wait_until(
        REVIEWS_DAILY,
        "a checkpoint of version 1.0.0",
        Duration::from_secs(120),
        |s| counter(s, "checkpoints") >= 1 && counter(s, "records_in") > 0,
    )?;
    platform.kill()?;
    config.apps = vec![v2];
    let mut platform = Platform::start(&env, "v2", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    send_part(&env, &parts[1])?;
    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    ensure!(status["version"] == "2.0.0", "{status}");
    let log = std::fs::read_to_string(platform.log_path())?;
    ensure!(
        log.lines()
            .any(|l| l.contains("resumed from checkpoint") && l.contains("1.0.0")),
        "version 2.0.0 should resume what 1.0.0 saved:\n{}",
        platform.log_tail(40)
    );
    check_cassandra(&env, &expected)?;
    platform.stop()?;
    Ok(())
}

/// Reviews per (product, window start ms).
type Counts = BTreeMap<(String, i64), i64>;

/// Reviews of `days` days from 2015-01-01 plus `first`: products P0..P9, 1 to 3 reviews a day
/// each; returns the messages and the expected count per (product, day start).
fn synthetic_days(first: i64, days: i64) -> (Vec<(String, String)>, Counts) {
    let base = mysimbdp_tests::parse_iso_date("2015-01-01").unwrap_or(16_436);
    let mut messages = Vec::new();
    let mut counts = BTreeMap::new();
    for day in first..first + days {
        for product in 0..10 {
            let reviews = 1 + (day + product) % 3;
            let date = mysimbdp_tests::format_iso_date(base + day);
            for n in 0..reviews {
                let key = format!("P{product}");
                messages.push((
                    key.clone(),
                    format!(
                        r#"{{"review_id":"R{day}-{product}-{n}","product_id":"{key}","review_date":"{date}","star_rating":5,"helpful_votes":0,"total_votes":0}}"#
                    ),
                ));
                *counts.entry((key, (base + day) * MS_PER_DAY)).or_default() += 1;
            }
        }
    }
    (messages, counts)
}

/// At-most-once, the report's guarantee: offsets are committed as records are read and no
/// state is saved. After a `kill -9`, the windows still open at that moment are lost (they
/// never close; their rows keep what an update wrote before the crash, never more than the
/// truth); every window closed before the crash, and every window after the restart, is exact.
#[test]
fn at_most_once_loses_only_the_windows_open_at_the_crash() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let input = env.topic("reviews");
    create_topic(&input, 1)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 500\n".into();
    config.delivery = Some("at-most-once".into());
    let group = format!("mysimbdp.{}.{REVIEWS_DAILY}", env.tenant);
    const BEFORE: i64 = 20;
    let (first, mut expected) = synthetic_days(0, BEFORE);
    let (second, after) = synthetic_days(BEFORE, 20);
    expected.extend(after);
    let base = mysimbdp_tests::parse_iso_date("2015-01-01").context("a date")?;
    // The newest day before the crash is BEFORE - 1; a 2-day delay puts the watermark at its
    // start minus 2 days, which closes every day up to BEFORE - 4 and leaves three open.
    let closed_before: BTreeSet<(String, i64)> = expected
        .keys()
        .filter(|(_, start)| *start <= (base + BEFORE - 4) * MS_PER_DAY)
        .cloned()
        .collect();
    let open_at_crash: BTreeSet<(String, i64)> = expected
        .keys()
        .filter(|(_, start)| {
            (base + BEFORE - 3) * MS_PER_DAY <= *start && *start < (base + BEFORE) * MS_PER_DAY
        })
        .cloned()
        .collect();

    let mut platform = Platform::start(&env, "before", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let sent = produce(&input, first)? as i64;
    // Everything read is committed, and the closed days are written as final.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let committed = committed_offsets(&group, &input)?;
        let finals = final_windows(&env.tenant, "aggregated_reviews")?;
        if committed.get(&0) == Some(&sent) && closed_before.is_subset(&finals) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "before the crash: committed {committed:?} of {sent}, {} of {} closed days final",
            closed_before.intersection(&finals).count(),
            closed_before.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    platform.kill()?;

    let mut platform = Platform::start(&env, "after", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    produce(&input, second)?;
    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(300))?;
    let rows = read_aggregated_reviews(&env.tenant)?;
    let finals = final_windows(&env.tenant, "aggregated_reviews")?;
    platform.stop()?;

    let mut problems = Vec::new();
    for (key, want) in &expected {
        let got = rows.get(key).map(|r| r.number_of_reviews);
        if open_at_crash.contains(key) {
            if got.is_some_and(|n| n > *want) || finals.contains(key) {
                problems.push(format!(
                    "{key:?} was open at the crash: {got:?} of {want} reviews, final {}",
                    finals.contains(key)
                ));
            }
        } else if got != Some(*want) || !finals.contains(key) {
            problems.push(format!(
                "{key:?}: {got:?} reviews, expected {want}, final {}",
                finals.contains(key)
            ));
        }
    }
    ensure!(
        problems.is_empty(),
        "{} problem(s): {}",
        problems.len(),
        examples(&problems, "; ")
    );
    Ok(())
}
