//! The dashboard at `/ui`, driven in headless Chromium (Debian's `chromium`, through Playwright
//! for Python, `tests/browser/test_dashboard.py`) against a platform on real Kafka and Cassandra:
//! a wrong token is refused, the operator signs in and sees the records-processed counter rise
//! while the stream runs, finds a malformed record's reason (read here from the dead-letter
//! topic) in the page's dead-letter list, hot-swaps a new version by uploading it from the page
//! and sees the swap with its pause in the history, rolls back, drains, and the page saves wide
//! and narrow screenshots under `target/dashboard/`. The drained results equal an expectation
//! computed from the TSV alone.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    create_topic, diff_aggregates, generate_reviews, read_aggregated_reviews, read_topic,
    reviews_daily_wasm, send_part, split_tsv, target_dir, workspace_dir, AppSpec, Platform,
    PlatformConfig, Services, TestEnv, REVIEWS_DAILY,
};
use serde_json::Value;

const ROWS: u32 = 8_000;
const PARTS: usize = 4;

/// The venv `scripts/browser-prereqs.sh` makes.
fn browser_python() -> Result<PathBuf> {
    let python = workspace_dir().join(".state/browser-venv/bin/python");
    ensure!(
        python.is_file(),
        "{} is missing: run scripts/browser-prereqs.sh (`just test` does)",
        python.display()
    );
    Ok(python)
}

fn chromium() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MYSIMBDP_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let path = PathBuf::from("/usr/bin/chromium");
    ensure!(
        path.is_file(),
        "no /usr/bin/chromium: apt-get install --no-install-recommends chromium \
         (scripts/browser-prereqs.sh does as root), or set MYSIMBDP_CHROMIUM"
    );
    Ok(path)
}

/// The HTTP status of a GET with the given bearer token.
fn status_with_token(url: &str, token: &str) -> Result<u16> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let response = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .with_context(|| format!("GET {url}"))?;
    Ok(response.status().as_u16())
}

/// A dead letter of a row the TSV alone calls malformed, once the dead-letter topic holds one:
/// its reason and source headers.
fn a_malformed_rows_dead_letter(
    env: &TestEnv,
    malformed_ids: &[String],
) -> Result<(String, String)> {
    let topic = env.topic(&format!("{REVIEWS_DAILY}.dead-letters"));
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let records = read_topic(&topic)?;
        let found = records.iter().rev().find(|r| {
            malformed_ids
                .iter()
                .any(|id| r.value.windows(id.len()).any(|w| w == id.as_bytes()))
        });
        if let Some(record) = found {
            let reason = record
                .header("mysimbdp-reason")
                .context("a dead letter without a reason")?;
            let source = record
                .header("mysimbdp-source")
                .context("a dead letter without a source")?;
            return Ok((reason, source));
        }
        ensure!(
            Instant::now() < deadline,
            "{topic}: no dead letter of a malformed row after 300 s ({} records)",
            records.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn an_operator_watches_and_steers_an_app_in_the_browser() -> Result<()> {
    Services::check()?;
    let python = browser_python()?;
    let chromium = chromium()?;
    let env = TestEnv::new()?;
    let wasm = reviews_daily_wasm()?;
    let v2 = wasm.with_file_name("reviews_daily_v2.wasm");
    ensure!(
        v2.is_file(),
        "{} is missing: run `just build-apps`",
        v2.display()
    );
    // No late rows: this test is about the page, and which rows of a stream spread over two
    // partitions count as late depends on how their reads interleave (README, "Not yet");
    // `lateness.rs` decides lateness on one partition, exactly.
    let (tsv, expected) = generate_reviews(&env, ROWS, 1616, &["--late", "0"])?;
    let parts = split_tsv(&env, &tsv, PARTS)?;
    ensure!(parts.len() == PARTS, "{} parts", parts.len());
    let first_part_rows = ROWS as usize / PARTS;
    // Malformed rows of the first part (line 1 is the header).
    let malformed_ids: Vec<String> = expected
        .malformed
        .iter()
        .filter(|row| row.line <= first_part_rows)
        .filter_map(|row| row.review_id.clone())
        .filter(|id| id.len() >= 6)
        .collect();
    ensure!(
        !malformed_ids.is_empty(),
        "the first part has no malformed row with a review id: pick another seed"
    );
    create_topic(&env.topic("reviews"), 2)?;

    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;

    // The endpoints the page uses refuse a wrong token; the page itself holds no data.
    let app_path = format!("/apps/{}/{REVIEWS_DAILY}", env.tenant);
    for path in [
        "/apps".to_owned(),
        app_path.clone(),
        format!("{app_path}/recent"),
    ] {
        let url = format!("{}{path}", platform.admin_url());
        ensure!(
            status_with_token(&url, "wrong")? == 401,
            "{path} answered a wrong token"
        );
        ensure!(
            status_with_token(&url, platform.token())? == 200,
            "{path} refused the token"
        );
    }

    send_part(&env, &parts[0])?;
    let (reason, source) = a_malformed_rows_dead_letter(&env, &malformed_ids)?;
    eprintln!("dead letter to find in the page: {source}: {reason}");

    // Screenshots of an earlier run never pass for this one's.
    let shots = target_dir().join("dashboard");
    let _ = std::fs::remove_dir_all(&shots);
    let mut script = Command::new(&python)
        .arg(workspace_dir().join("tests/browser/test_dashboard.py"))
        .env("DASH_URL", platform.admin_url())
        .env("DASH_TOKEN", platform.token())
        .env("DASH_TENANT", &env.tenant)
        .env("DASH_APP", REVIEWS_DAILY)
        .env("DASH_V2_WASM", &v2)
        .env("DASH_DEAD_REASON", &reason)
        .env("DASH_DEAD_SOURCE", &source)
        .env("DASH_SHOTS", &shots)
        .env("DASH_CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let mut to_script = script.stdin.take().context("the script's stdin")?;
    let from_script = BufReader::new(script.stdout.take().context("the script's stdout")?);
    let mut next_part = 1;
    let mut result = None;
    for line in from_script.lines() {
        let line = line.context("reading the script's output")?;
        eprintln!("browser: {line}");
        if line.starts_with("counter ") {
            send_part(&env, &parts[next_part])?;
            next_part += 1;
            writeln!(to_script, "sent")?;
        } else if line == "rest" {
            for part in &parts[next_part..] {
                send_part(&env, part)?;
            }
            next_part = parts.len();
            writeln!(to_script, "sent")?;
        } else if let Some(json) = line.strip_prefix("result ") {
            result = Some(serde_json::from_str::<Value>(json)?);
        }
    }
    let exit = script.wait()?;
    ensure!(
        exit.success(),
        "the browser script failed ({exit}); platform log: {}",
        platform.log_tail(30)
    );
    let Some(result) = result else {
        bail!("the browser script gave no result")
    };
    eprintln!("browser result: {result:#}");

    let seen = &result["processed_seen"];
    ensure!(
        seen[1].as_u64() > seen[0].as_u64(),
        "the counter did not rise: {seen}"
    );
    let row = result["dead_letter_row"].as_str().unwrap_or_default();
    ensure!(
        row.contains(&reason) && row.contains(&source),
        "dead-letter row: {row}"
    );
    let answer = result["deploy_answer"].as_str().unwrap_or_default();
    ensure!(
        answer.contains("version 2.0.0 took over from 1.0.0"),
        "{answer}"
    );
    let pause = result["history_deploy_pause"].as_str().unwrap_or_default();
    let pause_ms: f64 = pause
        .strip_suffix(" ms")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("the history shows no pause: {pause:?}"))?;
    ensure!(pause_ms >= 0.0, "pause {pause}");
    ensure!(
        result["rollback_answer"]
            .as_str()
            .unwrap_or_default()
            .contains("version 1.0.0 took over from 2.0.0"),
        "{}",
        result["rollback_answer"]
    );
    ensure!(
        result["results_rows"].as_u64().unwrap_or(0) > 0,
        "no result rows shown"
    );
    ensure!(
        result["state_after_drain"]
            .as_str()
            .is_some_and(|s| s.contains("drained")),
        "{result}"
    );
    for shot in ["wide", "narrow"] {
        let path = result[shot]["path"].as_str().unwrap_or_default();
        let colours = result[shot]["colours"].as_u64().unwrap_or(0);
        ensure!(
            std::fs::metadata(path).is_ok_and(|m| m.len() > 10_000),
            "screenshot {path} is missing or tiny"
        );
        ensure!(
            colours > 50,
            "{shot} screenshot {path} looks blank: {colours} colours"
        );
        eprintln!("screenshot ({shot}): {path}");
    }
    ensure!(
        result["narrow_overflow_px"].as_i64() == Some(0),
        "the narrow page scrolls sideways: {}",
        result["narrow_overflow_px"]
    );
    ensure!(
        result["token_in_url"] == false
            && result["token_in_page"] == false
            && result["storage_items"] == 0,
        "the token leaked: {result}"
    );
    ensure!(
        result["api_requests"]["without"] == 0
            && result["api_requests"]["with"].as_u64().unwrap_or(0) > 0,
        "API calls without the token: {}",
        result["api_requests"]
    );
    ensure!(
        result["page_errors"].as_array().is_some_and(Vec::is_empty),
        "errors in the page: {}",
        result["page_errors"]
    );
    ensure!(
        result["status_line"]
            .as_str()
            .is_some_and(|s| s.starts_with("updated")),
        "the page's last poll failed: {}",
        result["status_line"]
    );
    ensure!(result["signed_out_hides_dashboard"] == true, "{result}");

    // The swaps from the page kept the results exact.
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    ensure!(status["swaps"] == 2, "two take-overs: {status}");
    let actual = read_aggregated_reviews(&env.tenant)?;
    if let Some(diff) = diff_aggregates(&expected.windows, &actual, 10) {
        bail!("after the swaps from the page: {diff}");
    }
    platform.stop()?;
    Ok(())
}
