//! Alerts from the stream: reviews with planted critical days (and near misses) go through
//! `reviews-alerts` on the platform, and the alerts topic, read committed, holds exactly one
//! alert per critical day computed in the test from the TSV, with its key, window and counts.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    expected_alerts, generate_reviews, parse_utc_timestamp_ms, plant_reviews, produce_reviews,
    read_topic, tenant_app_wasm, AppSpec, DayKey, Plant, Platform, PlatformConfig, Services,
    TestEnv, MS_PER_DAY,
};

const APP: &str = "reviews-alerts";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Planted days: two critical ones (one exactly at the thresholds) and two near misses.
fn plants() -> Vec<Plant> {
    let plant = |product: &str, reviews, one_star| Plant {
        product_id: product.into(),
        reviews,
        one_star,
    };
    vec![
        plant("BPLANTEDA1", 14, 9),
        plant("BPLANTEDA2", 10, 5),
        plant("BNEARMISS1", 9, 9),
        plant("BNEARMISS2", 12, 5),
    ]
}

#[test]
fn planted_critical_days_raise_exactly_the_expected_alerts() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    eprintln!("tenant {} (scratch {})", env.tenant, env.scratch.display());
    let extra = ["--out-of-order", "0", "--late", "0", "--malformed", "0"];
    let (generated, _) = generate_reviews(&env, 20_000, 7, &extra)?;
    let tsv = env.path("planted.tsv");
    let day = plant_reviews(&generated, &tsv, &plants())?;
    let expected = expected_alerts(&tsv)?;
    for product in ["BPLANTEDA1", "BPLANTEDA2"] {
        ensure!(
            expected.contains_key(&(product.to_owned(), day)),
            "the planted day of {product} is not critical by the rule: the test's input is wrong"
        );
    }
    eprintln!("expected {} alert(s)", expected.len());
    produce_reviews(&env, &tsv)?;
    let app = AppSpec {
        path: tenant_app_wasm(APP)?,
        stream: "reviews".into(),
    };
    let config = PlatformConfig::new(&env.tenant, vec![app])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(APP)?;
    platform.drain(APP)?;
    platform.wait_drained(APP, DRAIN_TIMEOUT)?;
    platform.stop()?;

    let topic = format!("{}.{APP}.alerts", env.tenant);
    let records = read_topic(&topic)?;
    let mut found: BTreeMap<DayKey, (String, i64, i64)> = BTreeMap::new();
    let mut failures = Vec::new();
    for record in &records {
        let alert = record.value_json()?;
        let text = |name: &str| {
            alert[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("alert without `{name}`: {alert}"))
        };
        let product = text("product_id")?;
        let start = parse_utc_timestamp_ms(&text("window_start")?).context("window_start")?;
        let end = parse_utc_timestamp_ms(&text("window_end")?).context("window_end")?;
        let id = text("alert_id")?;
        let key = String::from_utf8_lossy(&record.key).into_owned();
        let want_id = format!("{}.{APP}/{product}/{}", env.tenant, text("window_start")?);
        if id != want_id || key != id || end - start != MS_PER_DAY {
            failures.push(format!(
                "alert {alert} keyed {key}: expected id and key {want_id} over one day"
            ));
        }
        let count = |name: &str| alert[name].as_i64().unwrap_or(-1);
        if found
            .insert(
                (product.clone(), start),
                (id, count("number_of_reviews"), count("one_star_reviews")),
            )
            .is_some()
        {
            failures.push(format!("alert for ({product}, {start}) delivered twice"));
        }
    }
    for (key, counts) in &expected {
        match found.get(key) {
            None => failures.push(format!("missing alert for {key:?} ({counts:?})")),
            Some((_, reviews, one_star)) if (*reviews, *one_star) != (counts.reviews, counts.one_star) => {
                failures.push(format!(
                    "alert for {key:?} says {reviews} reviews, {one_star} one-star; the TSV has {counts:?}"
                ))
            }
            Some(_) => {}
        }
    }
    for key in found.keys().filter(|k| !expected.contains_key(*k)) {
        failures.push(format!("unexpected alert for {key:?}"));
    }
    if !failures.is_empty() {
        bail!(
            "{} problem(s) with {topic}:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}
