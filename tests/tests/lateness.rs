//! Lateness at its boundary, end to end: on one partition, after a review of day D, reviews of
//! D-1, D-2, D-3 and D-4 arrive. With a 2-day watermark delay the watermark is D-2, so a day
//! ending at or before it is closed: D-3 and D-4 are late for reviews-daily (no allowed
//! lateness), only D-4 for reviews-lenient (one day allowed). A wrong delay or lateness moves
//! a row from one side to the other, and this test fails.
//!
//! And nothing is late only because every partition was silent before the input began: one
//! partition's records arriving first do not close the windows of another's, however long the
//! app waited for its input.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    create_topic, parse_iso_date, produce, produce_to_partition, read_daily_reviews, read_topic,
    tenant_app_wasm, AppSpec, Platform, PlatformConfig, Services, TestEnv, AGGREGATED_REVIEWS,
    MS_PER_DAY, REVIEWS_DAILY,
};

const LENIENT: &str = "reviews-lenient";
/// Review id, product, day: the newest first, then one, two, three and four days behind it.
const REVIEWS: [(&str, &str, &str); 5] = [
    ("R0", "P0", "2015-08-31"),
    ("R1", "P1", "2015-08-30"),
    ("R2", "P2", "2015-08-29"),
    ("R3", "P3", "2015-08-28"),
    ("R4", "P4", "2015-08-27"),
];

fn message(id: &str, product: &str, day: &str) -> (String, String) {
    let value = format!(
        r#"{{"review_id":"{id}","product_id":"{product}","review_date":"{day}","star_rating":4,"helpful_votes":1,"total_votes":2}}"#
    );
    (product.to_owned(), value)
}

/// Which of `sent` (id, product, day) an app counted (its table's (product, day) rows) and
/// which it sent late.
fn fates(
    env: &TestEnv,
    app: &str,
    table: &str,
    sent: &[(&str, &str, &str)],
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let rows = read_daily_reviews(&env.tenant, table)?;
    let mut counted = BTreeSet::new();
    for &(id, product, day) in sent {
        let start = parse_iso_date(day).context("a test date")? * MS_PER_DAY;
        if let Some(row) = rows.get(&(product.to_owned(), start)) {
            if row.number_of_reviews != 1 {
                bail!(
                    "{app}: ({product}, {day}) counts {} reviews",
                    row.number_of_reviews
                );
            }
            counted.insert(id.to_owned());
        }
    }
    if rows.len() != counted.len() {
        bail!(
            "{app}: {} rows in {table}, {} of them expected",
            rows.len(),
            counted.len()
        );
    }
    let mut late = BTreeSet::new();
    for record in read_topic(&env.topic(&format!("{app}.late")))? {
        let value = record.value_json()?;
        let id = value["review_id"]
            .as_str()
            .context("a late record without its id")?;
        if !late.insert(id.to_owned()) {
            bail!("{app}: review {id} is on the late topic twice");
        }
    }
    Ok((counted, late))
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_review_is_late_exactly_when_its_day_closed() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let input = env.topic("reviews");
    create_topic(&input, 1)?;
    let apps = vec![
        AppSpec::reviews_daily()?,
        AppSpec {
            path: tenant_app_wasm(LENIENT)?,
            stream: "reviews".into(),
        },
    ];
    let config = PlatformConfig::new(&env.tenant, apps)?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.wait_ready(LENIENT)?;
    produce(&input, REVIEWS.iter().map(|(id, p, d)| message(id, p, d)))?;
    for app in [REVIEWS_DAILY, LENIENT] {
        platform.drain(app)?;
        platform.wait_drained(app, Duration::from_secs(300))?;
    }

    let mut failures = Vec::new();
    let checks = [
        (
            REVIEWS_DAILY,
            AGGREGATED_REVIEWS,
            ["R0", "R1", "R2"].as_slice(),
            ["R3", "R4"].as_slice(),
        ),
        (
            LENIENT,
            "lenient_reviews",
            &["R0", "R1", "R2", "R3"],
            &["R4"],
        ),
    ];
    for (app, table, on_time, late) in checks {
        let (counted, sent_late) = fates(&env, app, table, &REVIEWS)?;
        if counted != ids(on_time) || sent_late != ids(late) {
            failures.push(format!(
                "{app}: counted {counted:?} and sent late {sent_late:?}; expected counted \
                 {on_time:?}, late {late:?}"
            ));
        }
    }
    platform.stop()?;
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

#[test]
fn a_partition_is_not_idle_before_the_input_begins() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let input = env.topic("reviews");
    create_topic(&input, 2)?;
    let idle = Duration::from_secs(10);
    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = format!(
        "[runner]\nidle_partition_timeout_ms = {}\n",
        idle.as_millis()
    );
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.wait_owning(REVIEWS_DAILY, 2)?;
    // Nothing arrives for longer than the idle timeout; then partition 0's records come
    // first, and partition 1's, days older, a moment after they were read.
    std::thread::sleep(idle + Duration::from_secs(2));
    let first = [("A0", "P0", "2015-08-20"), ("A1", "P0", "2015-08-31")];
    let then = [("B0", "P1", "2015-08-25")];
    let messages = |reviews: &[(&str, &str, &str)]| {
        reviews
            .iter()
            .map(|(id, product, day)| message(id, product, day))
            .collect::<Vec<_>>()
    };
    produce_to_partition(&input, 0, messages(&first))?;
    platform.wait_until(
        REVIEWS_DAILY,
        "reading partition 0's records",
        Duration::from_secs(60),
        |s| s["records_in"] == 2,
    )?;
    produce_to_partition(&input, 1, messages(&then))?;
    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(300))?;
    let all: Vec<_> = first.iter().chain(&then).copied().collect();
    let (counted, late) = fates(&env, REVIEWS_DAILY, AGGREGATED_REVIEWS, &all)?;
    platform.stop()?;
    ensure!(
        counted == ids(&["A0", "A1", "B0"]) && late.is_empty(),
        "counted {counted:?}, sent late {late:?}: partition 1 held the watermark until its first \
         record, having been silent only because the input had not begun"
    );
    Ok(())
}
