//! Hot swap under a steady stream, through real Kafka and Cassandra: while reviews arrive, an
//! operator deploys the app again and rolls it back many times; every take-over carries the open
//! windows' state, so the drained results equal an expectation computed from the TSV alone. A
//! file that is not a component is refused and the running version goes on.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use mysimbdp_tests::{
    create_topic, diff_aggregates, expected_from_tsv, mysimbdp_bin, read_aggregated_reviews,
    reviews_daily_wasm, run_command, AppSpec, Platform, PlatformConfig, Services, TestEnv,
    KAFKA_BOOTSTRAP, REVIEWS_DAILY,
};

const ROWS: u32 = 60_000;
const MIN_SWAPS: usize = 20;

/// `mysimbdp app ...` against the platform, as an operator runs it.
fn operator(platform: &Platform, args: &[&str]) -> Command {
    let mut command = Command::new(mysimbdp_bin().expect("the binary"));
    command
        .arg("app")
        .args(args)
        .args(["--admin", platform.admin_url()])
        .env("MYSIMBDP_ADMIN_TOKEN", platform.token());
    command
}

#[test]
fn swaps_under_a_steady_stream_keep_results_exact() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let bin = mysimbdp_bin()?;
    let wasm = reviews_daily_wasm()?;
    let tsv = env.path("reviews.tsv");
    let mut gen = Command::new(&bin);
    gen.arg("gen")
        .arg("--out")
        .arg(&tsv)
        .args(["--rows", &ROWS.to_string(), "--seed", "77"]);
    run_command(&env, "gen", &mut gen, Duration::from_secs(300))?.ensure_success("gen")?;
    let expected = expected_from_tsv(&tsv)?;
    create_topic(&env.topic("reviews"), 4)?;

    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;

    let mut producer = Command::new(&bin)
        .arg("produce")
        .arg("--file")
        .arg(&tsv)
        .args([
            "--tenant",
            &env.tenant,
            "--bootstrap",
            KAFKA_BOOTSTRAP,
            "--rate",
            "8000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mysimbdp produce")?;

    let v1 = wasm.display().to_string();
    let v2 = wasm
        .with_file_name("reviews_daily_v2.wasm")
        .display()
        .to_string();
    ensure!(
        Path::new(&v2).is_file(),
        "{v2} is missing: run `just build-apps`"
    );
    let mut took_over: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut swaps = 0;
    let mut streaming_swaps = 0;
    while swaps < MIN_SWAPS || producer.try_wait()?.is_none() {
        ensure!(
            Instant::now() < deadline,
            "swapping took longer than 10 minutes"
        );
        // 1.0 → 2.0 → rollback to 1.0 → 2.0 …
        let mut command = match swaps % 3 {
            0 => operator(
                &platform,
                &["deploy", "--tenant", &env.tenant, "--path", &v2],
            ),
            1 => operator(
                &platform,
                &["rollback", "--tenant", &env.tenant, "--app", REVIEWS_DAILY],
            ),
            _ => operator(
                &platform,
                &["deploy", "--tenant", &env.tenant, "--path", &v1],
            ),
        };
        let name = format!("swap-{swaps}");
        let output = run_command(&env, &name, &mut command, Duration::from_secs(150))?;
        output.ensure_success(&name)?;
        ensure!(
            output.stdout.contains("took over"),
            "{name}: {}",
            output.describe()
        );
        // "version X took over from Y ...": X ran from here on.
        took_over.extend(output.stdout.split_whitespace().nth(1).map(str::to_owned));
        if producer.try_wait()?.is_none() {
            streaming_swaps += 1;
        }
        swaps += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    ensure!(producer.wait()?.success(), "mysimbdp produce failed");
    ensure!(
        streaming_swaps >= 5,
        "only {streaming_swaps} swaps happened while records arrived"
    );
    ensure!(
        took_over.contains("1.0.0") && took_over.contains("2.0.0"),
        "both versions should have run: {took_over:?}"
    );

    let garbage = env.path("garbage.wasm");
    std::fs::write(&garbage, b"not a component")?;
    let garbage_path = garbage.display().to_string();
    let mut bad = operator(
        &platform,
        &["deploy", "--tenant", &env.tenant, "--path", &garbage_path],
    );
    let refused = run_command(&env, "bad-deploy", &mut bad, Duration::from_secs(60))?;
    ensure!(
        !refused.status.success(),
        "a garbage deploy succeeded: {}",
        refused.describe()
    );
    ensure!(
        refused.stderr.contains("is not a WebAssembly component"),
        "{}",
        refused.describe()
    );

    let status = platform.status(REVIEWS_DAILY)?;
    ensure!(
        status["state"] == "running",
        "after the refused deploy: {status}"
    );
    ensure!(
        status["swaps"] == swaps as u64,
        "{swaps} take-overs, status says {status}"
    );

    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    let actual = read_aggregated_reviews(&env.tenant)?;
    if let Some(diff) = diff_aggregates(&expected.windows, &actual, 10) {
        anyhow::bail!("after {swaps} swaps ({streaming_swaps} while streaming): {diff}");
    }
    ensure!(
        status["late"] == expected.late.len() as u64,
        "late: {status}"
    );
    ensure!(
        status["dead_letters"] == expected.malformed.len() as u64,
        "dead letters: {status}"
    );
    platform.stop()?;
    Ok(())
}
