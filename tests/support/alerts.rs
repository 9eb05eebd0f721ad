//! The critical condition of `reviews-alerts`, planted into a TSV and computed back from it
//! independently: a product's day with at least 10 reviews, at least half of them one-star.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use crate::kafka::read_topic;
use crate::reviews::{parse_iso_date, parse_utc_timestamp_ms, MS_PER_DAY};

/// The rule, restated from the app's documentation.
pub const ALERT_MIN_REVIEWS: i64 = 10;

/// (product_id, day start in ms).
pub type DayKey = (String, i64);

/// Counts of one product's day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayCounts {
    pub reviews: i64,
    pub one_star: i64,
}

impl DayCounts {
    /// Whether the day is critical: enough reviews, at least half of them one-star.
    pub fn is_alert(&self) -> bool {
        self.reviews >= ALERT_MIN_REVIEWS && 2 * self.one_star >= self.reviews
    }
}

/// A product and day to plant, with how many reviews and how many of them one-star.
#[derive(Debug, Clone)]
pub struct Plant {
    pub product_id: String,
    pub reviews: usize,
    pub one_star: usize,
}

/// Planted days for `plant_reviews`: two critical ones (one exactly at the thresholds) and two
/// near misses.
pub fn critical_plants() -> Vec<Plant> {
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

/// Copies `tsv` to `out` with the planted reviews inserted after the middle data line, dated
/// as that line (the file must be in date order, as `gen --out-of-order 0 --late 0` writes it).
/// Returns the planted day's start in ms.
pub fn plant_reviews(tsv: &Path, out: &Path, plants: &[Plant]) -> Result<i64> {
    let text =
        std::fs::read_to_string(tsv).with_context(|| format!("cannot read {}", tsv.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() > 2, "{} has no data lines", tsv.display());
    let middle = lines.len() / 2;
    let template: Vec<&str> = lines[middle].split('\t').collect();
    ensure!(
        template.len() == 15,
        "line {} has {} columns, not 15",
        middle + 1,
        template.len()
    );
    let day = parse_iso_date(template[14]).context("the middle line's review_date")? * MS_PER_DAY;
    let mut body = String::with_capacity(text.len() + 4096);
    for (i, line) in lines.iter().enumerate() {
        body.push_str(line);
        body.push('\n');
        if i != middle {
            continue;
        }
        for (p, plant) in plants.iter().enumerate() {
            for r in 0..plant.reviews {
                let mut columns: Vec<String> = template.iter().map(|c| (*c).to_owned()).collect();
                columns[2] = format!("RPLANTED{p}X{r}");
                columns[3] = plant.product_id.clone();
                columns[7] = if r < plant.one_star { "1" } else { "5" }.into();
                body.push_str(&columns.join("\t"));
                body.push('\n');
            }
        }
    }
    std::fs::write(out, body).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(day)
}

/// Every product's day in the TSV with its counts (every data line must be valid).
pub fn day_counts(tsv: &Path) -> Result<BTreeMap<DayKey, DayCounts>> {
    let text =
        std::fs::read_to_string(tsv).with_context(|| format!("cannot read {}", tsv.display()))?;
    let mut days: BTreeMap<DayKey, DayCounts> = BTreeMap::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let columns: Vec<&str> = line.split('\t').collect();
        if columns.len() != 15 {
            bail!("line {}: {} columns", n + 1, columns.len());
        }
        let day = parse_iso_date(columns[14]).with_context(|| format!("line {}: date", n + 1))?;
        let stars: i64 = columns[7]
            .parse()
            .with_context(|| format!("line {}: stars", n + 1))?;
        let counts = days
            .entry((columns[3].to_owned(), day * MS_PER_DAY))
            .or_default();
        counts.reviews += 1;
        counts.one_star += i64::from(stars == 1);
    }
    Ok(days)
}

/// The days that must raise an alert.
pub fn expected_alerts(tsv: &Path) -> Result<BTreeMap<DayKey, DayCounts>> {
    Ok(day_counts(tsv)?
        .into_iter()
        .filter(|(_, c)| c.is_alert())
        .collect())
}

/// Reads `tenant`'s alerts topic of `app` (read committed) and checks that it holds exactly one
/// alert per `expected` day, keyed and identified by its app, product and window, over one day,
/// with the day's counts; every problem found is in the error.
pub fn check_alerts(tenant: &str, app: &str, expected: &BTreeMap<DayKey, DayCounts>) -> Result<()> {
    let topic = format!("{tenant}.{app}.alerts");
    let records = read_topic(&topic)?;
    let mut found: BTreeMap<DayKey, (i64, i64)> = BTreeMap::new();
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
        let want_id = format!("{tenant}.{app}/{product}/{}", text("window_start")?);
        if id != want_id || key != id || end - start != MS_PER_DAY {
            failures.push(format!(
                "alert {alert} keyed {key}: expected id and key {want_id} over one day"
            ));
        }
        let count = |name: &str| alert[name].as_i64().unwrap_or(-1);
        let counts = (count("number_of_reviews"), count("one_star_reviews"));
        if found.insert((product.clone(), start), counts).is_some() {
            failures.push(format!("alert for ({product}, {start}) delivered twice"));
        }
    }
    for (key, counts) in expected {
        match found.get(key) {
            None => failures.push(format!("missing alert for {key:?} ({counts:?})")),
            Some(&(reviews, one_star)) if (reviews, one_star) != (counts.reviews, counts.one_star) => {
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
