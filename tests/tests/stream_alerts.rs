//! Alerts from the stream: reviews with planted critical days (and near misses) go through
//! `reviews-alerts` on the platform, and the alerts topic, read committed, holds exactly one
//! alert per critical day computed in the test from the TSV, with its key, window and counts.

use std::time::Duration;

use anyhow::{ensure, Result};
use mysimbdp_tests::{
    check_alerts, critical_plants, expected_alerts, generate_reviews, plant_reviews,
    produce_reviews, tenant_app_wasm, AppSpec, Platform, PlatformConfig, Services, TestEnv,
};

const APP: &str = "reviews-alerts";
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[test]
fn planted_critical_days_raise_exactly_the_expected_alerts() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    eprintln!("tenant {} (scratch {})", env.tenant, env.scratch.display());
    let extra = ["--out-of-order", "0", "--late", "0", "--malformed", "0"];
    let (generated, _) = generate_reviews(&env, 20_000, 7, &extra)?;
    let tsv = env.path("planted.tsv");
    let day = plant_reviews(&generated, &tsv, &critical_plants())?;
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

    check_alerts(&env.tenant, APP, &expected)
}
