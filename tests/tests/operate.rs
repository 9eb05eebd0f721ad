//! An operator's day on a running platform: the admin API refuses anyone without the token; a
//! state-incompatible version is refused with the reason while the old one goes on, and takes
//! over with `--reset-state`; a new app is started by `app deploy --stream` and unloaded by
//! `app remove` after its open windows are emitted as final. A restarted platform runs what the
//! operator deployed, rolled back and removed, not what its config file named.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use mysimbdp_tests::{
    create_topic, generate_reviews, produce, produce_reviews, sum_column, tenant_app_wasm, AppSpec,
    Platform, PlatformConfig, Services, TestEnv, REVIEWS_DAILY,
};

const ORDERS: usize = 2_000;

/// The HTTP status of a request with the given bearer token, or none.
fn status_with(url: &str, method: &str, token: Option<&str>) -> Result<u16> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = match (method, token) {
        ("POST", Some(t)) => agent
            .post(url)
            .header("Authorization", &format!("Bearer {t}"))
            .send_empty(),
        ("POST", None) => agent.post(url).send_empty(),
        (_, Some(t)) => agent
            .get(url)
            .header("Authorization", &format!("Bearer {t}"))
            .call(),
        (_, None) => agent.get(url).call(),
    }
    .with_context(|| format!("{method} {url}"))?;
    Ok(response.status().as_u16())
}

/// `ORDERS` records the hostile app only counts, over 50 keys.
fn send_orders(topic: &str) -> Result<()> {
    produce(
        topic,
        (0..ORDERS).map(|i| {
            let key = format!("k{}", i % 50);
            (key.clone(), format!(r#"{{"key":"{key}","act":0}}"#))
        }),
    )?;
    Ok(())
}

#[test]
fn operators_need_the_token_and_deploy_refuse_reset_start_and_remove_apps() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let (tsv, _) = generate_reviews(&env, 20_000, 31, &[])?;
    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;

    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let base = platform.admin_url().to_owned();
    let app_url = format!("{base}/apps/{}/{REVIEWS_DAILY}", env.tenant);

    // The token.
    ensure!(status_with(&format!("{base}/apps"), "GET", None)? == 401);
    ensure!(status_with(&app_url, "GET", Some("wrong-token-123"))? == 401);
    ensure!(status_with(&format!("{app_url}/drain"), "POST", Some("wrong-token-123"))? == 401);
    ensure!(status_with(&format!("{base}/metrics"), "GET", None)? == 200);
    let status = platform.status(REVIEWS_DAILY)?;
    ensure!(
        status["state"] == "running",
        "a refused drain changed nothing: {status}"
    );

    // A state-incompatible version: refused, then taken over with --reset-state. Refused only
    // when there is state to lose, so first wait until the app holds open windows.
    platform.wait_for_app(
        &env.tenant,
        REVIEWS_DAILY,
        "open windows",
        Duration::from_secs(120),
        |s| s["open_windows"].as_u64().unwrap_or(0) > 0,
    )?;
    let v3 = tenant_app_wasm("reviews-daily-v3")?.display().to_string();
    let deploy = ["deploy", "--tenant", &env.tenant, "--path", &v3];
    let refused = platform.operate(&env, "deploy-v3", &deploy)?;
    ensure!(!refused.status.success(), "{}", refused.describe());
    ensure!(
        refused.stderr.contains("state version 2")
            && refused.stderr.contains("--reset-state")
            && refused.stderr.contains("the running version goes on"),
        "{}",
        refused.describe()
    );
    ensure!(platform.status(REVIEWS_DAILY)?["version"] == "1.0.0");
    let mut reset = deploy.to_vec();
    reset.push("--reset-state");
    let taken = platform.operate(&env, "deploy-v3-reset", &reset)?;
    taken.ensure_success("deploy --reset-state")?;
    ensure!(
        taken.stdout.contains("version 3.0.0 took over")
            && taken.stdout.contains("keys start fresh, starting from 20"),
        "{}",
        taken.describe()
    );
    ensure!(platform.status(REVIEWS_DAILY)?["version"] == "3.0.0");

    // A new app, started and removed while the platform runs.
    let orders = env.topic("orders");
    create_topic(&orders, 4)?;
    let hostile = tenant_app_wasm("hostile")?.display().to_string();
    let started = platform.operate(
        &env,
        "deploy-new",
        &[
            "deploy",
            "--tenant",
            &env.tenant,
            "--path",
            &hostile,
            "--stream",
            "orders",
        ],
    )?;
    started.ensure_success("deploy a new app")?;
    ensure!(started.stdout.contains("started"), "{}", started.describe());
    send_orders(&orders)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = platform.status("hostile")?;
        if status["records_processed"] == ORDERS as u64 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the new app did not process: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let listed = platform.operate(&env, "list", &["list"])?;
    ensure!(listed.stdout.contains("\"hostile\"") && listed.stdout.contains(REVIEWS_DAILY));
    let removed = platform.operate(
        &env,
        "remove",
        &["remove", "--tenant", &env.tenant, "--app", "hostile"],
    )?;
    removed.ensure_success("remove")?;
    ensure!(
        removed.stdout.contains("emitted as final"),
        "{}",
        removed.describe()
    );
    let (code, _) = platform.admin_request("GET", &format!("/apps/{}/hostile", env.tenant))?;
    ensure!(code == 404, "a removed app is gone: {code}");
    let counted = sum_column(&env.tenant, "hostile", "records")?;
    ensure!(
        counted == ORDERS as i64,
        "{counted} of {ORDERS} counted in the final rows"
    );
    ensure!(platform.status(REVIEWS_DAILY)?["state"] == "running");
    platform.stop()?;
    Ok(())
}

/// Starts the platform on `config` and waits until each of `apps` answers.
fn start_ready(env: &TestEnv, config: &PlatformConfig, apps: &[&str]) -> Result<Platform> {
    let mut platform = Platform::start(env, "restarted", config)?;
    for app in apps {
        platform.wait_ready(app)?;
    }
    Ok(platform)
}

#[test]
fn a_restarted_platform_runs_what_the_operator_left_and_can_still_roll_back() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    create_topic(&env.topic("reviews"), 4)?;
    let orders = env.topic("orders");
    create_topic(&orders, 4)?;
    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let tenant = env.tenant.as_str();

    // A hot swap to 2.0 and a new app, then a restart: both as the operator left them.
    let mut platform = start_ready(&env, &config, &[REVIEWS_DAILY])?;
    let v2 = tenant_app_wasm("reviews-daily-v2")?.display().to_string();
    platform
        .operate(
            &env,
            "deploy-v2",
            &["deploy", "--tenant", tenant, "--path", &v2],
        )?
        .ensure_success("deploy 2.0")?;
    let hostile = tenant_app_wasm("hostile")?.display().to_string();
    let deploy_new = [
        "deploy", "--tenant", tenant, "--path", &hostile, "--stream", "orders",
    ];
    platform
        .operate(&env, "deploy-new", &deploy_new)?
        .ensure_success("start a new app")?;
    platform.stop()?;

    let mut platform = start_ready(&env, &config, &[REVIEWS_DAILY, "hostile"])?;
    let version = platform.status(REVIEWS_DAILY)?["version"].clone();
    ensure!(
        version == "2.0.0",
        "after a restart {REVIEWS_DAILY} runs {version}, not the 2.0.0 deployed"
    );
    send_orders(&orders)?;
    platform.wait_until(
        "hostile",
        "reading its stream after the restart",
        Duration::from_secs(120),
        |s| s["records_processed"] == ORDERS as u64,
    )?;

    // 1.0 deployed again and rolled back (to 2.0, the build the restart loaded), and the new
    // app removed, then a restart: 2.0, and no new app.
    let v1 = AppSpec::reviews_daily()?.path.display().to_string();
    platform
        .operate(
            &env,
            "deploy-v1",
            &["deploy", "--tenant", tenant, "--path", &v1],
        )?
        .ensure_success("deploy 1.0")?;
    ensure!(platform.status(REVIEWS_DAILY)?["version"] == "1.0.0");
    platform
        .operate(
            &env,
            "rollback",
            &["rollback", "--tenant", tenant, "--app", REVIEWS_DAILY],
        )?
        .ensure_success("rollback")?;
    platform
        .operate(
            &env,
            "remove",
            &["remove", "--tenant", tenant, "--app", "hostile"],
        )?
        .ensure_success("remove")?;
    platform.stop()?;

    let mut platform = start_ready(&env, &config, &[REVIEWS_DAILY])?;
    let version = platform.status(REVIEWS_DAILY)?["version"].clone();
    ensure!(
        version == "2.0.0",
        "after the rollback to 2.0.0 and a restart {REVIEWS_DAILY} runs {version}"
    );
    let (code, body) = platform.admin_request("GET", &format!("/apps/{tenant}/hostile"))?;
    ensure!(
        code == 404,
        "the removed app is back after a restart: {code} {body}"
    );

    // After a restart a rollback still has the build before: 1.0, the one rolled back from;
    // and that rollback outlives the next restart too.
    let rollback = ["rollback", "--tenant", tenant, "--app", REVIEWS_DAILY];
    platform
        .operate(&env, "rollback-after-restart", &rollback)?
        .ensure_success("rollback after a restart")?;
    let version = platform.status(REVIEWS_DAILY)?["version"].clone();
    ensure!(
        version == "1.0.0",
        "a rollback after the restart went to {version}, not 1.0.0"
    );
    platform.stop()?;
    let mut platform = start_ready(&env, &config, &[REVIEWS_DAILY])?;
    ensure!(platform.status(REVIEWS_DAILY)?["version"] == "1.0.0");
    platform
        .operate(&env, "rollback-again", &rollback)?
        .ensure_success("rollback after the second restart")?;
    let version = platform.status(REVIEWS_DAILY)?["version"].clone();
    ensure!(
        version == "2.0.0",
        "the second rollback went to {version}, not back to 2.0.0"
    );
    platform.stop()?;
    Ok(())
}

/// `GET /apps/<tenant>/<app>?until=<state>` (what `app drain --wait` asks) answers when the app
/// is in that state, not before: an app held paused cannot drain, so a wait for `drained`
/// ends at its timeout in the state the app is in; once resumed, a wait for `drained` is
/// answered with the drained status as soon as it comes, long before its own timeout, and its
/// last checkpoint covers every record processed. A state the platform does not know is
/// refused with the ones it does.
#[test]
fn a_status_request_waits_for_the_state_it_names() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let reviews = 5_000;
    let (tsv, _) = generate_reviews(&env, reviews, 47, &[])?;
    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let app = format!("/apps/{}/{REVIEWS_DAILY}", env.tenant);

    let (code, body) = platform.admin_request("GET", &format!("{app}?until=drainde"))?;
    ensure!(
        code == 400 && body.contains("until") && body.contains("drained"),
        "an unknown state: {code} {body}"
    );

    // A wait for `drained` of at most `timeout`: the HTTP status, the app's, and how long the
    // answer took.
    let wait_drained = |timeout: Duration| -> Result<(u16, serde_json::Value, Duration)> {
        let asked = Instant::now();
        let query = format!("{app}?until=drained&timeout={}", timeout.as_secs());
        let (code, body) = platform.admin_request("GET", &query)?;
        let status = serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))?;
        Ok((code, status, asked.elapsed()))
    };

    platform.act(REVIEWS_DAILY, "pause")?;
    platform.drain(REVIEWS_DAILY)?;
    let (code, status, waited) = wait_drained(Duration::from_secs(2))?;
    ensure!(
        code == 200 && status["state"] == "paused",
        "a paused app asked to drain: {code} {status}"
    );
    ensure!(
        waited >= Duration::from_secs(2),
        "answered after {waited:?}, neither in the state asked for nor at the timeout"
    );

    platform.act(REVIEWS_DAILY, "resume")?;
    let timeout = Duration::from_secs(300);
    let (code, status, waited) = wait_drained(timeout)?;
    ensure!(
        code == 200 && status["state"] == "drained",
        "a resumed app's drain: {code} {status}"
    );
    ensure!(
        waited < timeout,
        "the drained status came only at the request's timeout ({waited:?}): the change was not told"
    );
    ensure!(
        status["records_in"] == u64::from(reviews),
        "every review read before the drain ended: {status}"
    );
    ensure!(
        status["records_processed"].as_u64() > Some(0)
            && status["records_committed"] == status["records_processed"],
        "a drained app's last checkpoint covers every record it processed: {status}"
    );
    platform.stop()?;
    Ok(())
}
