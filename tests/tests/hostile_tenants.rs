//! Hostile tenants beside a well-behaved one, on one platform with real Kafka and Cassandra.
//! Tenant A runs reviews-daily on a messy stream. Other tenants deploy apps that must be
//! refused at load (a 1 ms slide, a `describe()` that sleeps), or are contained while they run:
//! a socket flood, a sleep in `accumulate`, a key over the key quota, a key of 100 KB that the
//! quota allows but Cassandra refuses, a result row of 2 MiB, a record that fits Kafka but whose
//! dead-letter copy must be cut, a review dated 9999-12-31, epochs at the ends of `i64`, an app
//! that traps on every record,
//! an app that burns CPU beyond its share. Each is refused or contained with a reason an
//! operator can read, the platform's peak memory stays bounded, and tenant A's results are
//! exact. The app stopped for failing is deployed again and removed, without a restart of the
//! platform.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_reviews_outputs, create_topic, generate_reviews, parse_iso_date, produce,
    produce_reviews, read_daily_reviews, read_topic, sum_column, tenant_app_wasm, AppSpec,
    Platform, PlatformConfig, Repeats, Services, TestEnv, AGGREGATED_REVIEWS, MS_PER_DAY,
    REVIEWS_DAILY,
};
use serde_json::Value;

#[path = "../../host/tests/common/contract.rs"]
mod contract;

const MESSY: &[&str] = &["--late", "0.002", "--malformed", "0.002"];
/// The platform's peak resident memory with every hostile app beside tenant A.
const MEMORY_BOUND: u64 = 1 << 30;
const ORDERS: usize = 2_000;
const NOTHING: i64 = 0;
const PANIC: i64 = 3;
const SLOW: i64 = 8;
const SOCKET_FLOOD: i64 = 9;
const SLEEP: i64 = 10;
const LARGE_ROW: i64 = 11;
const HUGE_STATE: i64 = 12;
/// Above Cassandra's 64 KiB partition key limit, so that a 100 KB key reaches the sink.
const MAX_KEY_BYTES: usize = 150_000;
/// Only turns a hang into a failure.
const LONG: Duration = Duration::from_secs(600);

fn order(i: usize, act: i64) -> (String, String) {
    let key = format!("k{}", i % 50);
    (
        key.clone(),
        format!(r#"{{"key":"{key}","act":{act},"id":{i}}}"#),
    )
}

/// Deploys `crate_name`'s component as a new app of `tenant` on `stream`.
fn deploy(
    env: &TestEnv,
    platform: &Platform,
    tenant: &str,
    crate_name: &str,
    stream: &str,
) -> Result<mysimbdp_tests::CommandOutput> {
    let path = tenant_app_wasm(crate_name)?.display().to_string();
    let args = [
        "deploy", "--tenant", tenant, "--path", &path, "--stream", stream,
    ];
    platform.operate(env, &format!("deploy-{tenant}-{crate_name}"), &args)
}

fn drain(platform: &mut Platform, tenant: &str, app: &str) -> Result<Value> {
    let (code, body) = platform.admin_request("POST", &format!("/apps/{tenant}/{app}/drain"))?;
    ensure!(
        (200..300).contains(&code),
        "drain {tenant}/{app}: {code} {body}"
    );
    platform.wait_for_app(tenant, app, "drained", LONG, |s| {
        s["state"] == "drained" || s["state"] == "failed"
    })
}

#[test]
fn hostile_tenants_are_refused_or_contained_and_a_neighbour_stays_exact() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, 40_000, 1313, MESSY)?;
    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = format!(
        "[limits]\nmemory_mb = 64\ncall_deadline_ms = 1000\nmax_failures = 3\n\
         max_key_bytes = {MAX_KEY_BYTES}\nmax_cpu_cores = 0.1\n\n[checkpoint]\ninterval_ms = 1000\n"
    );
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let [b, c, d, e, f, g, h] =
        ["b", "c", "d", "e", "f", "g", "h"].map(|t| format!("{}{t}", env.tenant));
    let mut failures = Vec::new();

    // Refused at load, with the reason; nothing of them runs.
    for (app, reason) in [
        ("hostile-window", "max_windows_per_record"),
        ("hostile-describe", "may not wait"),
    ] {
        let answer = deploy(&env, &platform, &b, app, "ticks")?;
        if answer.status.success() || !answer.stderr.contains(reason) {
            failures.push(format!(
                "{app} should be refused with `{reason}`: {}",
                answer.describe()
            ));
        }
    }

    // Tenant f: hand-written components that a Rust guest could not be, uploaded as files.
    for (name, core, reason) in [
        ("multi-memory", contract::MULTI_MEMORY, "memory limit"),
        ("table-grow", contract::TABLE_GROW, "growing a table"),
        ("huge-describe", contract::HUGE_DESCRIBE, "too much data"),
    ] {
        let path = env.path(&format!("{name}.wasm"));
        std::fs::write(&path, contract::contract_component(core))?;
        let path = path.display().to_string();
        let args = [
            "deploy", "--tenant", &f, "--path", &path, "--stream", "ticks",
        ];
        let answer = platform.operate(&env, &format!("deploy-{f}-{name}"), &args)?;
        if answer.status.success() || !answer.stderr.contains(reason) {
            failures.push(format!(
                "the {name} component should be refused with `{reason}`: {}",
                answer.describe()
            ));
        }
    }

    // Tenant b, among good orders: a socket flood, a sleep, a key over the quota, a 100 KB key
    // within it, a 2 MiB result row and a 900 KB record.
    let orders = format!("{b}.orders");
    create_topic(&orders, 4)?;
    let huge_key = "k".repeat(MAX_KEY_BYTES + 1);
    let cassandra_key = "c".repeat(100_000);
    let pad = "x".repeat(900_000);
    let specials: BTreeMap<usize, (String, String, &str)> = BTreeMap::from([
        (
            100,
            (
                order(100, SOCKET_FLOOD).0,
                order(100, SOCKET_FLOOD).1,
                "is not granted",
            ),
        ),
        (
            200,
            (order(200, SLEEP).0, order(200, SLEEP).1, "may not wait"),
        ),
        (
            300,
            (
                "big".into(),
                format!(r#"{{"key":"{huge_key}","act":0,"id":300}}"#),
                "max_key_bytes",
            ),
        ),
        (
            310,
            (
                "cassandra".into(),
                format!(r#"{{"key":"{cassandra_key}","act":0,"id":310}}"#),
                "Cassandra refused",
            ),
        ),
        (
            320,
            (
                "large".into(),
                format!(r#"{{"key":"large","act":{LARGE_ROW},"id":320}}"#),
                "max_result_bytes",
            ),
        ),
        (
            400,
            (
                "k1".into(),
                format!(r#"{{"key":"k1","act":0,"id":400,"pad":"{pad}"}}"#),
                "max_record_bytes",
            ),
        ),
    ]);
    produce(
        &orders,
        (0..ORDERS).map(|i| match specials.get(&i) {
            Some((key, value, _)) => (key.clone(), value.clone()),
            None => order(i, NOTHING),
        }),
    )?;
    deploy(&env, &platform, &b, "hostile", "orders")?.ensure_success("deploy b")?;

    // Tenant c: reviews-daily, whose stream starts with a review dated 9999-12-31.
    let reviews_c = format!("{c}.reviews");
    create_topic(&reviews_c, 1)?;
    let review = |id: &str, product: &str, day: &str| {
        let value = format!(
            r#"{{"review_id":"{id}","product_id":"{product}","review_date":"{day}","star_rating":4,"helpful_votes":1,"total_votes":2}}"#
        );
        (product.to_owned(), value)
    };
    let mut stream_c = vec![review("F", "P9", "9999-12-31")];
    for day in 1..=20 {
        stream_c.push(review(
            &format!("R{day}"),
            "P1",
            &format!("2015-03-{day:02}"),
        ));
    }
    produce(&reviews_c, stream_c)?;
    deploy(&env, &platform, &c, "reviews-daily", "reviews")?.ensure_success("deploy c")?;

    // Tenant d: every record panics. Tenant e: every record burns CPU.
    let orders_d = format!("{d}.orders");
    create_topic(&orders_d, 1)?;
    produce(&orders_d, (0..50).map(|i| order(i, PANIC)))?;
    deploy(&env, &platform, &d, "hostile", "orders")?.ensure_success("deploy d")?;
    let orders_e = format!("{e}.orders");
    create_topic(&orders_e, 4)?;
    produce(&orders_e, (0..20_000).map(|i| order(i, SLOW)))?;
    deploy(&env, &platform, &e, "hostile", "orders")?.ensure_success("deploy e")?;

    // Tenant g: one record makes its window's state 40 MiB, whose snapshot cannot fit.
    let orders_g = format!("{g}.orders");
    create_topic(&orders_g, 1)?;
    produce(
        &orders_g,
        (0..100).map(|i| order(i, if i == 50 { HUGE_STATE } else { NOTHING })),
    )?;
    deploy(&env, &platform, &g, "hostile", "orders")?.ensure_success("deploy g")?;

    // Tenant h: epoch-millis times at the ends of i64 among twenty of today.
    let ticks_h = format!("{h}.ticks");
    create_topic(&ticks_h, 1)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let tick = |i: usize, at: i64| {
        (
            "k".to_owned(),
            format!(r#"{{"key":"k","n":{i},"at":{at}}}"#),
        )
    };
    let mut stream_h: Vec<(String, String)> = (0..20)
        .map(|i| tick(i, now_ms - 60_000 + i as i64))
        .collect();
    stream_h.insert(5, tick(100, i64::MAX - 1));
    stream_h.insert(10, tick(101, i64::MIN + 1));
    produce(&ticks_h, stream_h)?;
    deploy(&env, &platform, &h, "ticks-epoch", "ticks")?.ensure_success("deploy h")?;

    // Everyone works through their input.
    platform.drain(REVIEWS_DAILY)?;
    let a_status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    let b_status = drain(&mut platform, &b, "hostile")?;
    let c_status = drain(&mut platform, &c, REVIEWS_DAILY)?;
    let d_status =
        platform.wait_for_app(&d, "hostile", "stopped", LONG, |s| s["state"] == "failed")?;
    let e_status = drain(&mut platform, &e, "hostile")?;
    let h_status = drain(&mut platform, &h, "ticks-epoch")?;
    let g_status =
        platform.wait_for_app(&g, "hostile", "stopped", LONG, |s| s["state"] == "failed")?;
    let peak = platform.peak_memory()?;
    eprintln!("a {a_status}\nb {b_status}\nc {c_status}\nd {d_status}\ne {e_status}\ng {g_status}");
    eprintln!("peak resident memory {} MB", peak >> 20);

    if peak >= MEMORY_BOUND {
        failures.push(format!("peak resident memory {} MB", peak >> 20));
    }
    for f in check_reviews_outputs(&env, &expected, Repeats::Forbidden) {
        failures.push(format!("tenant a: {f}"));
    }
    if let Err(error) = check_b(&b, &b_status, &specials) {
        failures.push(format!("tenant b: {error:#}"));
    }
    if let Err(error) = check_c(&c) {
        failures.push(format!("tenant c: {error:#}"));
    }
    let reason = d_status["last_error"].as_str().unwrap_or_default();
    if !(reason.contains("failed 3 times") && reason.contains("panic")) {
        failures.push(format!(
            "tenant d should be stopped with the reason: {d_status}"
        ));
    }
    let reason = g_status["last_error"].as_str().unwrap_or_default();
    if !reason.contains("`snapshot`") {
        failures.push(format!(
            "tenant g should be stopped for its snapshot: {g_status}"
        ));
    }
    if let Err(error) = check_h(&h, &h_status) {
        failures.push(format!("tenant h: {error:#}"));
    }
    if let Err(error) = restart_and_remove(&env, &mut platform, &d) {
        failures.push(format!("tenant d after its failure: {error:#}"));
    }
    if e_status["state"] != "drained" || sum_column(&e, "hostile", "records")? != 20_000 {
        failures.push(format!(
            "tenant e should count its 20000 records: {e_status}"
        ));
    }
    if e_status["cpu_throttled_ms"].as_u64().unwrap_or(0) == 0 {
        failures.push(format!(
            "tenant e burns more than its 0.1 core and should have been throttled: {e_status}"
        ));
    }
    platform.stop()?;
    if !failures.is_empty() {
        bail!(
            "{} check(s) failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    Ok(())
}

/// Exactly the hostile records are dead letters, each with its reason (the 900 KB one cut to
/// fit, and saying so), counted once in the status; every other record is counted once in
/// Cassandra, where the two refused rows are not.
fn check_b(
    tenant: &str,
    status: &Value,
    specials: &BTreeMap<usize, (String, String, &str)>,
) -> Result<()> {
    ensure!(status["state"] == "drained", "{status}");
    let topic = format!("{tenant}.hostile.dead-letters");
    let mut found = BTreeMap::new();
    for record in read_topic(&topic)? {
        let reason = record.header("mysimbdp-reason").unwrap_or_default();
        let id = specials
            .iter()
            .find(|(_, (_, _, wanted))| reason.contains(wanted))
            .map(|(id, _)| *id)
            .with_context(|| format!("an unexpected dead letter: {reason}"))?;
        ensure!(
            found.insert(id, record).is_none(),
            "record {id} twice: {reason}"
        );
    }
    ensure!(
        found.len() == specials.len(),
        "dead letters for {:?}, expected {:?}",
        found.keys().collect::<Vec<_>>(),
        specials.keys().collect::<Vec<_>>()
    );
    let cut = &found[&400];
    ensure!(
        cut.value.len() <= 512 * 1024 && cut.header("mysimbdp-truncated").is_some(),
        "the 900 KB record's dead letter: {} bytes, headers {:?}",
        cut.value.len(),
        cut.headers.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    ensure!(
        status["dead_letters"] == specials.len() as u64,
        "status counts {} dead letters, the topic holds {}",
        status["dead_letters"],
        specials.len()
    );
    let counted = sum_column(tenant, "hostile", "records")?;
    ensure!(
        counted == (ORDERS - specials.len()) as i64,
        "{counted} counted, expected {}",
        ORDERS - specials.len()
    );
    Ok(())
}

/// The review from the future is a dead letter with the reason; the twenty that follow it,
/// one a day, all count: it moved no watermark.
fn check_c(tenant: &str) -> Result<()> {
    let letters = read_topic(&format!("{tenant}.{REVIEWS_DAILY}.dead-letters"))?;
    ensure!(
        letters.len() == 1,
        "{} dead letters, expected 1",
        letters.len()
    );
    let reason = letters[0].header("mysimbdp-reason").unwrap_or_default();
    ensure!(
        reason.contains("ahead of the platform's clock"),
        "reason: {reason}"
    );
    let rows = read_daily_reviews(tenant, AGGREGATED_REVIEWS)?;
    let first = parse_iso_date("2015-03-01").context("a date")?;
    for day in 0..20 {
        let row = rows.get(&("P1".to_owned(), (first + day) * MS_PER_DAY));
        ensure!(
            row.is_some_and(|r| r.number_of_reviews == 1),
            "day {day}: {row:?}"
        );
    }
    ensure!(rows.len() == 20, "{} rows, expected 20", rows.len());
    ensure!(
        read_topic(&format!("{tenant}.{REVIEWS_DAILY}.late"))?.is_empty(),
        "no review of tenant c is late"
    );
    Ok(())
}

/// The two epochs at the ends of i64 are dead letters for their year; the twenty others count.
fn check_h(tenant: &str, status: &Value) -> Result<()> {
    ensure!(status["state"] == "drained", "{status}");
    let letters = read_topic(&format!("{tenant}.ticks-epoch.dead-letters"))?;
    let reasons: Vec<String> = letters
        .iter()
        .map(|l| l.header("mysimbdp-reason").unwrap_or_default())
        .collect();
    ensure!(
        reasons.len() == 2 && reasons.iter().all(|r| r.contains("9999")),
        "dead letters: {reasons:?}"
    );
    let counted = sum_column(tenant, "ticks", "ticks")?;
    ensure!(counted == 20, "{counted} ticks counted, expected 20");
    Ok(())
}

/// A failed app can be deployed again without a restart of the platform (here it fails again
/// on the same records), and removed.
fn restart_and_remove(env: &TestEnv, platform: &mut Platform, tenant: &str) -> Result<()> {
    let again = deploy(env, platform, tenant, "hostile", "orders")?;
    again.ensure_success("deploy a failed app again")?;
    ensure!(again.stdout.contains("started"), "{}", again.describe());
    platform.wait_for_app(tenant, "hostile", "failing again", LONG, |s| {
        s["state"] == "failed"
    })?;
    let removed = platform.operate(
        env,
        &format!("remove-{tenant}"),
        &["remove", "--tenant", tenant, "--app", "hostile"],
    )?;
    removed.ensure_success("remove a failed app")?;
    ensure!(
        removed.stdout.contains("had ended"),
        "{}",
        removed.describe()
    );
    let (code, _) = platform.admin_request("GET", &format!("/apps/{tenant}/hostile"))?;
    ensure!(code == 404, "a removed app answers {code}");
    Ok(())
}
