//! The commit protocol, crashed on purpose at each of its points, twice: the platform aborts (as a
//! power cut would) after the sinks wrote and before the checkpoint, in the middle of a
//! checkpoint, after the checkpoint and before the Kafka commit, after the commit, and while
//! it is being given its partitions. After each crash the next run resumes exactly from the
//! offsets the last commit named (so it re-reads only what that commit did not cover), and in
//! the end every sink holds every record once: Cassandra equals the expectation, and read
//! committed, the results topic holds one sequence of updates per window with nothing
//! repeated, the late and dead-letter topics exactly their records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use mysimbdp_tests::{
    check_reviews_outputs, committed_offsets, create_topic, generate_reviews, send_part, split_tsv,
    AppSpec, Platform, PlatformConfig, Repeats, Services, TestEnv, REVIEWS_DAILY,
};

/// Each crash point, armed for the pass that comes after one committed checkpoint of its run.
const POINTS: [(&str, u32); 5] = [
    ("before-checkpoint", 2),
    ("mid-checkpoint", 2),
    ("before-commit", 2),
    ("after-commit", 2),
    ("rebalance", 1),
];
const MESSY: &[&str] = &[
    "--late",
    "0.003",
    "--malformed",
    "0.003",
    "--out-of-order",
    "0.05",
];

#[test]
fn a_crash_at_each_commit_point_repeats_nothing_and_loses_nothing() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, 60_000, 9001, MESSY)?;
    let input = env.topic("reviews");
    create_topic(&input, 4)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 500\n".into();
    let group = format!("mysimbdp.{}.{REVIEWS_DAILY}", env.tenant);
    let parts = split_tsv(&env, &tsv, 4 * POINTS.len() + 1)?;
    let mut parts = parts.iter();

    let mut committed = BTreeMap::new();
    let mut ever_committed = false;
    // Every point twice: the second time with state and offsets the first crash left.
    for (run, (point, pass)) in POINTS.iter().chain(POINTS.iter()).enumerate() {
        let crash_at = format!("{point}@{pass}");
        let mut platform = Platform::start_with_env(
            &env,
            &format!("run-{run}-{point}"),
            &config,
            &[("MYSIMBDP_CRASH_AT", &crash_at)],
        )?;
        if *point != "rebalance" {
            platform.wait_ready(REVIEWS_DAILY)?;
            platform.wait_resumed_at(&committed)?;
            // One part, a committed checkpoint of it, then another part: the armed pass comes
            // with the second, or with the updates of the first.
            if let Some(part) = parts.next() {
                send_part(&env, part)?;
            }
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                if platform.exit_status()?.is_some() {
                    break;
                }
                let status = platform.status(REVIEWS_DAILY);
                if status.is_ok_and(|s| s["checkpoints"].as_u64() >= Some(1)) {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "run {run}: no checkpoint within 180 s\n{}",
                    platform.log_tail(40)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Some(part) = parts.next() {
                send_part(&env, part)?;
            }
        }
        let exit = platform.wait_exit(Duration::from_secs(300))?;
        ensure!(!exit.success(), "run {run} ended without crashing: {exit}");
        let log = std::fs::read_to_string(platform.log_path())?;
        ensure!(
            log.contains(&format!("crash point {point} reached")),
            "run {run} did not crash at {point}:\n{}",
            platform.log_tail(40)
        );
        committed = committed_offsets(&group, &input)?;
        ever_committed |= committed.values().any(|o| *o > 0);
        eprintln!("crashed at {crash_at}; the last commit named offsets {committed:?}");
    }
    ensure!(ever_committed, "no run ever committed an offset");

    let mut platform = Platform::start(&env, "run-last", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.wait_resumed_at(&committed)?;
    for part in parts {
        send_part(&env, part)?;
    }
    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    eprintln!("drained: {status}");
    let failures = check_reviews_outputs(&env, &expected, Repeats::Forbidden);
    platform.stop()?;
    if !failures.is_empty() {
        bail!(
            "after a crash at every commit point, {} check(s) failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    Ok(())
}
