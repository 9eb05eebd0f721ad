//! Tenants' admin tokens on a running platform: the operator issues one per tenant with
//! `mysimbdp tenant add`; with tenant A's token every request about tenant B's apps is answered
//! 403 and changes nothing, A sees and steers only its own apps, and cannot issue tokens; a
//! rotated or removed token stops working; A added again still cannot write its app's results
//! topic (the walls outlive `tenant remove`) but writes its input; B, with its own token, drains
//! its app and its rows are exact.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    auth_on, create_topic, parse_iso_date, produce, read_daily_reviews, remember_tenant, send_as,
    tenant_app_wasm, wait_for_kafka_login, AppSpec, CommandOutput, Platform, PlatformConfig,
    Services, TenantCredentials, TestEnv, AGGREGATED_REVIEWS, MS_PER_DAY, REVIEWS_DAILY,
};
use rdkafka::error::RDKafkaErrorCode;
use serde_json::Value;

const DAYS: i64 = 20;

/// `mysimbdp tenant add|rotate|remove --tenant T` as the operator; the new token, if any.
fn tenant(env: &TestEnv, platform: &Platform, action: &str, tenant: &str) -> Result<CommandOutput> {
    platform.command_as(
        env,
        &format!("tenant-{action}-{tenant}"),
        platform.token(),
        &["tenant", action, "--tenant", tenant],
    )
}

fn token_of(output: &CommandOutput) -> Result<String> {
    ensure!(output.status.success(), "{}", output.describe());
    let token = TenantCredentials::parse(&output.stdout)?.token;
    ensure!(
        !token.is_empty() && !token.contains(' '),
        "{}",
        output.describe()
    );
    Ok(token)
}

#[test]
fn a_tenant_token_reaches_only_its_own_apps() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let a = env.tenant.clone();
    let b = format!("{a}b");
    create_topic(&env.topic("reviews"), 1)?;
    let config = PlatformConfig::new(&a, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;

    // Tenant B: reviews-daily on twenty days of one product.
    let reviews_b = format!("{b}.reviews");
    create_topic(&reviews_b, 1)?;
    produce(
        &reviews_b,
        (1..=DAYS).map(|day| {
            (
                "P1".to_owned(),
                format!(
                    r#"{{"review_id":"R{day}","product_id":"P1","review_date":"2015-03-{day:02}","star_rating":4,"helpful_votes":1,"total_votes":2}}"#
                ),
            )
        }),
    )?;
    let path = tenant_app_wasm(REVIEWS_DAILY)?.display().to_string();
    platform
        .operate(
            &env,
            "deploy-b",
            &[
                "deploy", "--tenant", &b, "--path", &path, "--stream", "reviews",
            ],
        )?
        .ensure_success("deploy b")?;

    let token_a = token_of(&tenant(&env, &platform, "add", &a)?)?;
    // B has credentials already: the harness issued them (`tenant add --config`) to send B's
    // reviews as B; through the API the operator gives it new ones, which the harness then uses.
    let rotated_b = tenant(&env, &platform, "rotate", &b)?;
    let token_b = token_of(&rotated_b)?;
    remember_tenant(&b, TenantCredentials::parse(&rotated_b.stdout)?);
    let mut failures = Vec::new();
    // A failure unless `token`'s request answers `code`.
    let answer = |platform: &Platform, what: &str, token: &str, method: &str, path: &str, code| {
        match platform.admin_request_as(token, method, path) {
            Ok((got, _)) if got == code => None,
            Ok((got, body)) => Some(format!(
                "{what}: {method} {path} answered {got} ({body}), expected {code}"
            )),
            Err(error) => Some(format!("{what}: {method} {path}: {error:#}")),
        }
    };
    let app_a = format!("/apps/{a}/{REVIEWS_DAILY}");
    let app_b = format!("/apps/{b}/{REVIEWS_DAILY}");
    for (method, path) in [
        ("GET", app_b.clone()),
        ("GET", format!("{app_b}/recent")),
        ("POST", format!("{app_b}/drain")),
        ("POST", format!("{app_b}/pause")),
        ("POST", format!("{app_b}/rollback")),
        ("POST", format!("{app_b}/remove")),
        ("POST", format!("/apps/{b}/deploy")),
    ] {
        failures.extend(answer(&platform, "A about B", &token_a, method, &path, 403));
    }
    failures.extend(answer(
        &platform,
        "A about itself",
        &token_a,
        "GET",
        &app_a,
        200,
    ));
    failures.extend(answer(
        &platform,
        "A issuing a token",
        &token_a,
        "POST",
        &format!("/tenants/{a}/token"),
        403,
    ));
    failures.extend(answer(
        &platform,
        "a made-up token",
        &format!("{a}.{}", "0".repeat(64)),
        "GET",
        &app_a,
        401,
    ));

    // What A lists, and what the CLI does with A's token.
    let (_, listed) = platform.admin_request_as(&token_a, "GET", "/apps")?;
    let listed: Value = serde_json::from_str(&listed)?;
    let tenants: Vec<&str> = listed
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|app| app["tenant"].as_str())
        .collect();
    if tenants != [a.as_str()] {
        failures.push(format!("A's token lists the apps of {tenants:?}"));
    }
    let cli = platform.command_as(
        &env,
        "a-drains-b",
        &token_a,
        &["app", "drain", "--tenant", &b, "--app", REVIEWS_DAILY],
    )?;
    if cli.status.success() || !cli.stderr.contains("403") {
        failures.push(format!(
            "the CLI with A's token drained B: {}",
            cli.describe()
        ));
    }
    let b_status = platform.status_of(&b, REVIEWS_DAILY)?;
    if b_status["state"] != "running" {
        failures.push(format!("B's app changed under A's attempts: {b_status}"));
    }

    // Tokens are added once, rotated, removed.
    let again = tenant(&env, &platform, "add", &a)?;
    if again.status.success() || !again.stderr.contains("tenant rotate") {
        failures.push(format!(
            "a second add should point at rotate: {}",
            again.describe()
        ));
    }
    let rotated = token_of(&tenant(&env, &platform, "rotate", &a)?)?;
    failures.extend(answer(
        &platform,
        "A's old token",
        &token_a,
        "GET",
        &app_a,
        401,
    ));
    failures.extend(answer(
        &platform,
        "A's new token",
        &rotated,
        "GET",
        &app_a,
        200,
    ));
    tenant(&env, &platform, "remove", &a)?.ensure_success("remove a's token")?;
    failures.extend(answer(
        &platform,
        "A's removed token",
        &rotated,
        "GET",
        &app_a,
        401,
    ));

    // A added again: its app's outputs stay walled off (the walls outlive `tenant remove`),
    // while it writes its input again.
    if auth_on() {
        let readded = tenant(&env, &platform, "add", &a)?;
        ensure!(readded.status.success(), "{}", readded.describe());
        let credentials = TenantCredentials::parse(&readded.stdout)?;
        wait_for_kafka_login(&credentials)?;
        let kafka_a = credentials.kafka_client()?;
        let record = [(
            "P1".to_owned(),
            r#"{"review_id":"X","product_id":"P1","review_date":"2015-03-01","star_rating":1,"helpful_votes":0,"total_votes":0}"#.to_owned(),
        )];
        let results = send_as(&kafka_a, &format!("{a}.{REVIEWS_DAILY}.results"), &record)?;
        if results != [Some(RDKafkaErrorCode::TopicAuthorizationFailed)] {
            failures.push(format!(
                "A added again wrote its app's results: {results:?}, expected \
                 TopicAuthorizationFailed"
            ));
        }
        let input = send_as(&kafka_a, &env.topic("reviews"), &record)?;
        if input != [None] {
            failures.push(format!(
                "A added again could not write its input: {input:?}"
            ));
        }
    }

    // B steers its own app with its own token; its rows are exact.
    let drained = platform.command_as(
        &env,
        "b-drains-b",
        &token_b,
        &[
            "app",
            "drain",
            "--tenant",
            &b,
            "--app",
            REVIEWS_DAILY,
            "--wait",
        ],
    )?;
    if !drained.status.success() {
        failures.push(format!("B could not drain its app: {}", drained.describe()));
    }
    platform.wait_for_app(
        &b,
        REVIEWS_DAILY,
        "drained",
        Duration::from_secs(300),
        |s| s["state"] == "drained",
    )?;
    platform.stop()?;
    let rows = read_daily_reviews(&b, AGGREGATED_REVIEWS)?;
    let first = parse_iso_date("2015-03-01").context("a date")?;
    let exact = rows.len() == DAYS as usize
        && (0..DAYS).all(|d| {
            rows.get(&("P1".to_owned(), (first + d) * MS_PER_DAY))
                .is_some_and(|r| r.number_of_reviews == 1)
        });
    if !exact {
        failures.push(format!("B's rows: {rows:?}"));
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
