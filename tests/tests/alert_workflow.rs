//! The report's Part 3 end to end, on the real services: a stream with planted critical days
//! raises exactly the expected alerts; `mysimbdp trigger` starts the Airflow DAG
//! `critical_condition` once per alert, after waiting out an Airflow that is unreachable when the
//! alerts fire; each run's files in the tenant's bucket hold exactly the all-time and seasonal
//! figures of the alert's product computed here from the TSV; the e-mail in the SMTP server's
//! store names the alert and links to them; and the trigger a platform runs itself (`[workflow]`
//! in its config), reading every alert again,
//! starts no second run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    airflow_runs_of, all_time_from_csv, all_time_from_parquet, auth_on, check_workflow_services,
    diff_maps, expected_alerts, expected_from_tsv, expected_history, format_iso_date,
    generate_reviews, http_get, kafka_bootstrap, mails_to, mysimbdp_bin, plant_reviews,
    produce_reviews, seasonal_from_csv, secret_file, state_dir, tenant_app_wasm,
    tenant_credentials, AppSpec, Plant, Platform, PlatformConfig, Relay, Services, TestEnv, Totals,
    Webhook, MS_PER_DAY, PLATFORM_USER, REVIEWS_DAILY,
};
use serde_json::Value;

const ALERTS_APP: &str = "reviews-alerts";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const TRIGGER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const RUNS_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A trigger process of this test, stopped when dropped.
struct Trigger {
    /// The `mysimbdp trigger` process, or none when a platform runs the trigger.
    child: Option<Child>,
    status_url: String,
}

impl Trigger {
    fn start(
        env: &TestEnv,
        name: &str,
        airflow_url: &str,
        group: &str,
        contact: &str,
        webhook: &str,
    ) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = env.path(&format!("{name}.toml"));
        let password = state_dir().join("airflow/admin.password");
        // The trigger reads the tenants' alerts topics as the platform.
        let login = if auth_on() {
            format!(
                "user = \"{PLATFORM_USER}\"\npassword_file = \"{}\"\n",
                secret_file("kafka-platform.password").display()
            )
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "[kafka]\nbootstrap = \"{}\"\ngroup = \"{group}\"\n{login}\n\
                 [airflow]\nurl = \"{airflow_url}\"\nuser = \"mysimbdp\"\npassword_file = \"{}\"\n\n\
                 [status]\nlisten = \"127.0.0.1:{port}\"\n\n\
                 [[tenants]]\nid = \"{}\"\ncontact = \"{contact}\"\nwebhook = \"{webhook}\"\n",
                kafka_bootstrap(),
                password.display(),
                env.tenant
            ),
        )?;
        let log = std::fs::File::create(env.path(&format!("{name}.log")))?;
        let child = Command::new(mysimbdp_bin()?)
            .arg("trigger")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting mysimbdp trigger")?;
        Ok(Self {
            child: Some(child),
            status_url: format!("http://127.0.0.1:{port}/status"),
        })
    }

    fn status(&self) -> Option<Value> {
        let mut response = ureq::get(&self.status_url).call().ok()?;
        response.body_mut().read_json().ok()
    }

    /// Waits until `done` holds for the status; fails after `timeout` with the last status.
    fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let started = Instant::now();
        loop {
            let status = self.status();
            if let Some(status) = status.as_ref().filter(|s| done(s)) {
                return Ok(status.clone());
            }
            if started.elapsed() > timeout {
                bail!("the trigger did not {what} within {timeout:?}; its status: {status:?}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Trigger {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn plants() -> Vec<Plant> {
    let plant = |product: &str, reviews, one_star| Plant {
        product_id: product.into(),
        reviews,
        one_star,
    };
    vec![
        plant("BPLANTEDW1", 15, 10),
        plant("BPLANTEDW2", 10, 5),
        plant("BNEARMISSW", 12, 5),
    ]
}

#[test]
fn an_alert_runs_the_workflow_once_and_the_tenant_gets_the_figures() -> Result<()> {
    Services::check()?;
    check_workflow_services()?;
    let env = TestEnv::new()?;
    eprintln!("tenant {} (scratch {})", env.tenant, env.scratch.display());

    // 1. Input with planted critical days, and what it must give.
    let extra = [
        "--out-of-order",
        "0",
        "--late",
        "0",
        "--malformed",
        "0",
        "--days",
        "1461",
        "--products",
        "150",
    ];
    let (generated, _) = generate_reviews(&env, 12_000, 11, &extra)?;
    let tsv = env.path("planted.tsv");
    let day = plant_reviews(&generated, &tsv, &plants())?;
    let alerts = expected_alerts(&tsv)?;
    let day_text = format!("{}T00:00:00Z", format_iso_date(day / MS_PER_DAY));
    for product in ["BPLANTEDW1", "BPLANTEDW2"] {
        ensure!(
            alerts.contains_key(&(product.to_owned(), day)),
            "the planted day of {product} is not critical by the rule: the test's input is wrong"
        );
    }
    ensure!(
        alerts.len() <= 8,
        "{} alerts: too many runs for one test",
        alerts.len()
    );
    let alert_ids: BTreeMap<String, String> = alerts
        .keys()
        .map(|(product, start)| {
            let text = format!("{}T00:00:00Z", format_iso_date(start / MS_PER_DAY));
            (
                format!("{}.{ALERTS_APP}/{product}/{text}", env.tenant),
                product.clone(),
            )
        })
        .collect();
    eprintln!(
        "expected alerts ({} on the planted day {day_text}): {:?}",
        alerts.len(),
        alert_ids.keys()
    );
    let daily = expected_from_tsv(&tsv)?;

    // 2. The stream: daily results and alerts.
    produce_reviews(&env, &tsv)?;
    let apps = vec![
        AppSpec::reviews_daily()?,
        AppSpec {
            path: tenant_app_wasm(ALERTS_APP)?,
            stream: "reviews".into(),
        },
    ];
    let config = PlatformConfig::new(&env.tenant, apps)?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    for app in [REVIEWS_DAILY, ALERTS_APP] {
        platform.wait_ready(app)?;
        platform.drain(app)?;
    }
    for app in [REVIEWS_DAILY, ALERTS_APP] {
        platform.wait_drained(app, DRAIN_TIMEOUT)?;
    }
    platform.stop()?;

    // 3. Airflow unreachable when the trigger meets the alerts: it waits and says so.
    let contact = format!("ops-{}@example.com", env.tenant);
    let relay = Relay::reserve(mysimbdp_tests::airflow_url().trim_start_matches("http://"))?;
    let group = format!("mysimbdp-tests-{}", env.tenant);
    let webhook = Webhook::start()?;
    let trigger = Trigger::start(
        &env,
        "trigger",
        &relay.url(),
        &group,
        &contact,
        &webhook.url(),
    )?;
    let waiting = trigger.wait("report Airflow unreachable", TRIGGER_TIMEOUT, |s| {
        s["waiting"]["attempts"].as_u64().unwrap_or(0) >= 2
    })?;
    eprintln!("while Airflow is unreachable: {waiting}");
    ensure!(
        waiting["waiting"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("unreachable"),
        "the status does not say Airflow is unreachable: {waiting}"
    );
    ensure!(
        airflow_runs_of(&env.tenant)?.is_empty(),
        "a run exists while Airflow was unreachable"
    );

    // 4. Airflow back: every alert triggers, once.
    relay.open()?;
    let n = alerts.len() as u64;
    trigger.wait("trigger every alert", TRIGGER_TIMEOUT, |s| {
        s["triggered"].as_u64() == Some(n) && s["waiting"].is_null()
    })?;
    let started = Instant::now();
    let runs = loop {
        let runs = airflow_runs_of(&env.tenant)?;
        let states: Vec<&str> = runs.iter().filter_map(|r| r["state"].as_str()).collect();
        if states.contains(&"failed") {
            bail!(
                "a DAG run failed: {runs:?} (task logs under {})",
                state_dir().join("airflow/logs").display()
            );
        }
        if runs.len() as u64 == n && states.iter().all(|s| *s == "success") {
            break runs;
        }
        if started.elapsed() > RUNS_TIMEOUT {
            bail!("the DAG runs did not all succeed within {RUNS_TIMEOUT:?}: {states:?}");
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        let id = run["conf"]["alert"]["alert_id"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        *per_alert.entry(id).or_default() += 1;
    }
    let want: BTreeMap<String, usize> = alert_ids.keys().map(|id| (id.clone(), 1)).collect();
    ensure!(
        per_alert == want,
        "runs per alert: {per_alert:?}, expected one each of {want:?}"
    );

    // 5. Every alert read again from the start (a new consumer group), by the trigger the
    // platform runs itself with a `[workflow]` section: no second run.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = format!(
        "[workflow]\nairflow_url = \"{}\"\nuser = \"mysimbdp\"\npassword_file = \"{}\"\n\
         group = \"{group}-again\"\nstatus_listen = \"127.0.0.1:{port}\"\n\n\
         [workflow.tenants.{}]\ncontact = \"{contact}\"\nwebhook = \"{}\"\n",
        mysimbdp_tests::airflow_url(),
        state_dir().join("airflow/admin.password").display(),
        env.tenant,
        webhook.url()
    );
    let mut platform = Platform::start(&env, "platform-with-trigger", &config)?;
    let again = Trigger {
        child: None,
        status_url: format!("http://127.0.0.1:{port}/status"),
    };
    let seen = again.wait("see every alert again", TRIGGER_TIMEOUT, |s| {
        s["already_triggered"].as_u64() == Some(n)
    })?;
    // The same status through the admin API: all of it for the operator, a tenant's own
    // alerts for its token, nothing of them for another tenant's.
    let (code, body) = platform.admin_request("GET", "/workflow")?;
    ensure!(code == 200, "GET /workflow as the operator: {code} {body}");
    let through_admin: Value = serde_json::from_str(&body)?;
    ensure!(
        through_admin["already_triggered"] == seen["already_triggered"]
            && through_admin["recent"] == seen["recent"],
        "the admin API's workflow status {through_admin} differs from the trigger's {seen}"
    );
    // Tokens `tenant add` issued (once per tenant in this process).
    let own_token = tenant_credentials(&env.tenant)?.token;
    let other_token = tenant_credentials(&format!("{}x", env.tenant))?.token;
    let (code, body) = platform.admin_request_as(&own_token, "GET", "/workflow")?;
    ensure!(code == 200, "GET /workflow as the tenant: {code} {body}");
    let own: Value = serde_json::from_str(&body)?;
    ensure!(
        own["recent"] == seen["recent"] && own.get("triggered").is_none(),
        "the tenant's view {own} is not its alerts {} without the counts",
        seen["recent"]
    );
    let (code, body) = platform.admin_request_as(&other_token, "GET", "/workflow")?;
    ensure!(
        code == 200,
        "GET /workflow as another tenant: {code} {body}"
    );
    let other: Value = serde_json::from_str(&body)?;
    ensure!(
        other["recent"] == serde_json::json!([]) && other["waiting"].is_null(),
        "another tenant sees {other}"
    );
    platform.stop()?;
    let after = airflow_runs_of(&env.tenant)?.len();
    ensure!(
        after == runs.len(),
        "{after} runs after the alerts were read again, {} before",
        runs.len()
    );
    ensure!(
        seen["triggered"] == 0,
        "the platform's trigger created a run"
    );

    // 6. The e-mail per alert, its links, and the figures behind them.
    let mails = mails_to(&contact)?;
    let mut failures = Vec::new();
    for (alert_id, product) in &alert_ids {
        let of_alert: Vec<_> = mails
            .iter()
            .filter(|m| m.header("X-Mysimbdp-Alert") == Some(alert_id))
            .collect();
        if of_alert.len() != 1 {
            failures.push(format!(
                "{} e-mails for {alert_id}, expected 1",
                of_alert.len()
            ));
            continue;
        }
        let mail = of_alert[0];
        if !mail.body.contains(alert_id.as_str())
            || !mail
                .header("Subject")
                .is_some_and(|s| s.contains(alert_id.as_str()))
        {
            failures.push(format!(
                "the e-mail does not name {alert_id}: {:?}",
                mail.header("Subject")
            ));
        }
        let link = |name: &str| -> Result<String> {
            mail.body
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("alerts/")
                        .filter(|l| l.contains(&format!("/{name}:")))
                })
                .and_then(|l| l.split_once(": ").map(|(_, url)| url.trim().to_owned()))
                .with_context(|| {
                    format!(
                        "no link to {name} in the e-mail for {alert_id}:\n{}",
                        mail.body
                    )
                })
        };
        let only: BTreeSet<String> = [product.clone()].into();
        let history = expected_history(&daily.windows, Some(&only));
        let same = |a: &Totals, b: &Totals| a.matches(b);
        let all_csv = String::from_utf8(http_get(&link("product_all_time.csv")?)?)?;
        failures.extend(diff_maps(
            &format!("{alert_id}: all-time CSV"),
            &history.all_time,
            &all_time_from_csv(&all_csv)?,
            same,
            5,
        ));
        let seasonal = String::from_utf8(http_get(&link("product_seasonality.csv")?)?)?;
        failures.extend(diff_maps(
            &format!("{alert_id}: seasonal CSV"),
            &history.seasonal,
            &seasonal_from_csv(&seasonal)?,
            same,
            5,
        ));
        let parquet = env.path("downloaded.parquet");
        std::fs::write(&parquet, http_get(&link("product_all_time.parquet")?)?)?;
        failures.extend(diff_maps(
            &format!("{alert_id}: all-time Parquet"),
            &history.all_time,
            &all_time_from_parquet(&parquet)?,
            same,
            5,
        ));
        let unsigned = link("product_all_time.csv")?;
        let unsigned = unsigned.split('?').next().unwrap_or_default();
        if http_get(unsigned).is_ok() {
            failures.push(format!("{unsigned} is readable without a signature"));
        }
    }
    // 7. The webhook: one POST per alert, with the alert and the same links.
    let mut hooks: BTreeMap<String, usize> = BTreeMap::new();
    for body in webhook.received() {
        let id = body["alert"]["alert_id"].as_str().unwrap_or("?").to_owned();
        if !body["links"]
            .as_object()
            .is_some_and(|l| l.keys().any(|k| k.ends_with("/product_all_time.csv")))
        {
            failures.push(format!(
                "the webhook's body has no link to the all-time CSV: {body}"
            ));
        }
        *hooks.entry(id).or_default() += 1;
    }
    if hooks != want {
        failures.push(format!(
            "webhook posts per alert: {hooks:?}, expected one each of {want:?}"
        ));
    }
    if !failures.is_empty() {
        bail!(
            "{} check(s) failed for tenant {}:\n\n{}",
            failures.len(),
            env.tenant,
            failures.join("\n\n")
        );
    }
    Ok(())
}
