//! What the history analytics must find, computed here from the daily aggregates that
//! `reviews.rs` computes from the TSV alone (own calendar arithmetic, no platform code), and
//! readers for the batch apps' tables and files.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};

use crate::cassandra::each_row;
use crate::reviews::{DailyAggregate, WindowKey, MS_PER_DAY};

/// Totals of a product over all its days, or over one calendar month of every year.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub avg_star_rating: f64,
    pub total_helpful_votes: i64,
    pub total_votes: i64,
    pub number_of_reviews: i64,
    pub days_with_reviews: i64,
}

/// A product's best and worst calendar months.
#[derive(Debug, Clone, PartialEq)]
pub struct Extremes {
    pub best_month: i64,
    pub best_avg_star_rating: f64,
    pub worst_month: i64,
    pub worst_avg_star_rating: f64,
    pub months_with_reviews: i64,
}

/// The three history analytics over a set of daily aggregates.
#[derive(Debug, Clone, Default)]
pub struct ExpectedHistory {
    pub all_time: BTreeMap<String, Totals>,
    pub seasonal: BTreeMap<(String, i64), Totals>,
    pub extremes: BTreeMap<String, Extremes>,
}

/// The calendar month (1–12) of a time in ms since the epoch, UTC, by counting days through
/// the years (a different method from the platform's, on purpose).
pub fn month_of(ms: i64) -> i64 {
    let mut days = ms.div_euclid(MS_PER_DAY);
    let mut year = 1970i64;
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    loop {
        let in_year = if leap(year) { 366 } else { 365 };
        if days < 0 {
            year -= 1;
            days += if leap(year) { 366 } else { 365 };
        } else if days >= in_year {
            days -= in_year;
            year += 1;
        } else {
            break;
        }
    }
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    for (i, length) in lengths.iter().enumerate() {
        if days < *length {
            return i as i64 + 1;
        }
        days -= length;
    }
    12
}

#[derive(Default, Clone, Copy)]
struct Sums {
    reviews: i64,
    stars: i64,
    helpful: i64,
    votes: i64,
    days: i64,
}

impl Sums {
    fn add(&mut self, day: &DailyAggregate) {
        self.reviews += day.number_of_reviews;
        // The day's average is its whole stars over its reviews: this recovers the stars.
        self.stars += (day.avg_star_rating * day.number_of_reviews as f64).round() as i64;
        self.helpful += day.sum_helpful_votes;
        self.votes += day.sum_total_votes;
        self.days += 1;
    }

    fn totals(&self) -> Totals {
        Totals {
            avg_star_rating: self.stars as f64 / self.reviews as f64,
            total_helpful_votes: self.helpful,
            total_votes: self.votes,
            number_of_reviews: self.reviews,
            days_with_reviews: self.days,
        }
    }
}

/// The all-time, seasonal and best/worst-month figures of the products in `only` (all when
/// `None`), from the daily aggregates.
pub fn expected_history(
    days: &BTreeMap<WindowKey, DailyAggregate>,
    only: Option<&BTreeSet<String>>,
) -> ExpectedHistory {
    let mut all: BTreeMap<String, Sums> = BTreeMap::new();
    let mut seasonal: BTreeMap<(String, i64), Sums> = BTreeMap::new();
    for ((product, start), day) in days {
        if only.is_some_and(|o| !o.contains(product)) {
            continue;
        }
        all.entry(product.clone()).or_default().add(day);
        seasonal
            .entry((product.clone(), month_of(*start)))
            .or_default()
            .add(day);
    }
    let seasonal: BTreeMap<(String, i64), Totals> =
        seasonal.into_iter().map(|(k, s)| (k, s.totals())).collect();
    let mut extremes: BTreeMap<String, Extremes> = BTreeMap::new();
    let mut by_product: BTreeMap<&str, Vec<(i64, &Totals)>> = BTreeMap::new();
    for ((product, month), totals) in &seasonal {
        by_product
            .entry(product)
            .or_default()
            .push((*month, totals));
    }
    for (product, months) in by_product {
        // Best: highest average, then more reviews, then the earlier month; worst: lowest.
        let best = months
            .iter()
            .max_by(|a, b| {
                a.1.avg_star_rating
                    .total_cmp(&b.1.avg_star_rating)
                    .then(a.1.number_of_reviews.cmp(&b.1.number_of_reviews))
                    .then(b.0.cmp(&a.0))
            })
            .copied();
        let worst = months
            .iter()
            .max_by(|a, b| {
                b.1.avg_star_rating
                    .total_cmp(&a.1.avg_star_rating)
                    .then(a.1.number_of_reviews.cmp(&b.1.number_of_reviews))
                    .then(b.0.cmp(&a.0))
            })
            .copied();
        if let (Some(best), Some(worst)) = (best, worst) {
            extremes.insert(
                product.to_owned(),
                Extremes {
                    best_month: best.0,
                    best_avg_star_rating: best.1.avg_star_rating,
                    worst_month: worst.0,
                    worst_avg_star_rating: worst.1.avg_star_rating,
                    months_with_reviews: months.len() as i64,
                },
            );
        }
    }
    ExpectedHistory {
        all_time: all.into_iter().map(|(k, s)| (k, s.totals())).collect(),
        seasonal,
        extremes,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

impl Totals {
    /// Equal, doubles to 1e-9 relative.
    pub fn matches(&self, other: &Totals) -> bool {
        close(self.avg_star_rating, other.avg_star_rating)
            && (
                self.total_helpful_votes,
                self.total_votes,
                self.number_of_reviews,
                self.days_with_reviews,
            ) == (
                other.total_helpful_votes,
                other.total_votes,
                other.number_of_reviews,
                other.days_with_reviews,
            )
    }
}

impl Extremes {
    /// Equal, doubles to 1e-9 relative.
    pub fn matches(&self, other: &Extremes) -> bool {
        close(self.best_avg_star_rating, other.best_avg_star_rating)
            && close(self.worst_avg_star_rating, other.worst_avg_star_rating)
            && (self.best_month, self.worst_month, self.months_with_reviews)
                == (
                    other.best_month,
                    other.worst_month,
                    other.months_with_reviews,
                )
    }
}

/// Every missing, extra or differing key, at most `limit` of them, or `None` when equal.
pub fn diff_maps<K: Ord + std::fmt::Debug, V: std::fmt::Debug>(
    what: &str,
    expected: &BTreeMap<K, V>,
    actual: &BTreeMap<K, V>,
    same: impl Fn(&V, &V) -> bool,
    limit: usize,
) -> Option<String> {
    let mut lines = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => lines.push(format!("missing {key:?}: expected {want:?}")),
            Some(got) if !same(want, got) => {
                lines.push(format!("{key:?}: expected {want:?}, got {got:?}"))
            }
            Some(_) => {}
        }
    }
    for (key, got) in actual {
        if !expected.contains_key(key) {
            lines.push(format!("extra {key:?}: {got:?}"));
        }
    }
    if lines.is_empty() {
        return None;
    }
    let count = lines.len();
    lines.truncate(limit);
    Some(format!(
        "{what}: {count} difference(s) ({} expected, {} found), e.g.:\n  {}",
        expected.len(),
        actual.len(),
        lines.join("\n  ")
    ))
}

fn checked(name: &str) -> Result<()> {
    let mut chars = name.chars();
    if !matches!(chars.next(), Some('a'..='z'))
        || !chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        bail!("`{name}` is not a CQL identifier");
    }
    Ok(())
}

type TotalsRow = (
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// A row of `product_all_time`.
type AllTimeRow = (
    String,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);
/// A row of `product_seasonality`.
type SeasonalRow = (
    String,
    i64,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);
/// A row of `product_best_months`.
type ExtremesRow = (
    String,
    Option<i64>,
    Option<f64>,
    Option<i64>,
    Option<f64>,
    Option<i64>,
);

fn totals(row: TotalsRow, at: &dyn Fn() -> String) -> Result<Totals> {
    let (avg, helpful, votes, reviews, days) = row;
    Ok(Totals {
        avg_star_rating: avg.with_context(at)?,
        total_helpful_votes: helpful.with_context(at)?,
        total_votes: votes.with_context(at)?,
        number_of_reviews: reviews.with_context(at)?,
        days_with_reviews: days.with_context(at)?,
    })
}

const TOTALS: &str =
    "avg_star_rating, total_helpful_votes, total_votes, number_of_reviews, days_with_reviews";

/// `<keyspace>.product_all_time`, by product.
pub fn read_all_time(keyspace: &str) -> Result<BTreeMap<String, Totals>> {
    checked(keyspace)?;
    let table = format!("{keyspace}.product_all_time");
    let mut rows = BTreeMap::new();
    each_row(
        &table,
        &format!("SELECT product_id, {TOTALS} FROM {table}"),
        |(product, a, b, c, d, e): AllTimeRow| {
            let at = || format!("{table}: a null column at {product}");
            rows.insert(product.clone(), totals((a, b, c, d, e), &at)?);
            Ok(())
        },
    )?;
    Ok(rows)
}

/// `<keyspace>.product_seasonality`, by (product, month).
pub fn read_seasonal(keyspace: &str) -> Result<BTreeMap<(String, i64), Totals>> {
    checked(keyspace)?;
    let table = format!("{keyspace}.product_seasonality");
    let mut rows = BTreeMap::new();
    each_row(
        &table,
        &format!("SELECT product_id, month, {TOTALS} FROM {table}"),
        |(product, month, a, b, c, d, e): SeasonalRow| {
            let at = || format!("{table}: a null column at ({product}, {month})");
            rows.insert((product.clone(), month), totals((a, b, c, d, e), &at)?);
            Ok(())
        },
    )?;
    Ok(rows)
}

/// `<keyspace>.product_best_months`, by product.
pub fn read_extremes(keyspace: &str) -> Result<BTreeMap<String, Extremes>> {
    checked(keyspace)?;
    let table = format!("{keyspace}.product_best_months");
    let mut rows = BTreeMap::new();
    each_row(
        &table,
        &format!(
            "SELECT product_id, best_month, best_avg_star_rating, worst_month, \
             worst_avg_star_rating, months_with_reviews FROM {table}"
        ),
        |(product, bm, ba, wm, wa, n): ExtremesRow| {
            let at = || format!("{table}: a null column at {product}");
            rows.insert(
                product.clone(),
                Extremes {
                    best_month: bm.with_context(at)?,
                    best_avg_star_rating: ba.with_context(at)?,
                    worst_month: wm.with_context(at)?,
                    worst_avg_star_rating: wa.with_context(at)?,
                    months_with_reviews: n.with_context(at)?,
                },
            );
            Ok(())
        },
    )?;
    Ok(rows)
}

/// A CSV file with a header (RFC 4180 quoting) as one map of column to text per row.
pub fn parse_csv(text: &str) -> Result<Vec<BTreeMap<String, String>>> {
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut field = String::new();
    let mut record = Vec::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    let mut rows = records.into_iter();
    let header = rows.next().context("an empty CSV file")?;
    rows.map(|r| {
        if r.len() != header.len() {
            bail!(
                "a CSV row has {} fields, the header {}",
                r.len(),
                header.len()
            );
        }
        Ok(header.iter().cloned().zip(r).collect())
    })
    .collect()
}

/// The all-time figures in a CSV written by `mysimbdp batch`, by product.
pub fn all_time_from_csv(text: &str) -> Result<BTreeMap<String, Totals>> {
    let mut out = BTreeMap::new();
    for row in parse_csv(text)? {
        let get = |name: &str| -> Result<&String> {
            row.get(name)
                .with_context(|| format!("no column `{name}` in the CSV"))
        };
        let int = |name: &str| -> Result<i64> {
            get(name)?
                .parse()
                .with_context(|| format!("`{name}` is not an integer"))
        };
        out.insert(
            get("product_id")?.clone(),
            Totals {
                avg_star_rating: get("avg_star_rating")?.parse()?,
                total_helpful_votes: int("total_helpful_votes")?,
                total_votes: int("total_votes")?,
                number_of_reviews: int("number_of_reviews")?,
                days_with_reviews: int("days_with_reviews")?,
            },
        );
    }
    Ok(out)
}

/// The seasonal figures in a CSV written by `mysimbdp batch`, by (product, month).
pub fn seasonal_from_csv(text: &str) -> Result<BTreeMap<(String, i64), Totals>> {
    let mut out = BTreeMap::new();
    for row in parse_csv(text)? {
        let get = |name: &str| -> Result<&String> {
            row.get(name)
                .with_context(|| format!("no column `{name}` in the CSV"))
        };
        let int = |name: &str| -> Result<i64> {
            get(name)?
                .parse()
                .with_context(|| format!("`{name}` is not an integer"))
        };
        out.insert(
            (get("product_id")?.clone(), int("month")?),
            Totals {
                avg_star_rating: get("avg_star_rating")?.parse()?,
                total_helpful_votes: int("total_helpful_votes")?,
                total_votes: int("total_votes")?,
                number_of_reviews: int("number_of_reviews")?,
                days_with_reviews: int("days_with_reviews")?,
            },
        );
    }
    Ok(out)
}

/// The rows of a Parquet file written by `mysimbdp batch`, each as column name to value.
pub fn parquet_rows(
    path: &std::path::Path,
) -> Result<Vec<BTreeMap<String, parquet::record::Field>>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{} is not a Parquet file", path.display()))?;
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None)? {
        let row = row?;
        rows.push(
            row.get_column_iter()
                .map(|(name, field)| (name.clone(), field.clone()))
                .collect(),
        );
    }
    Ok(rows)
}

/// The all-time figures in a Parquet file written by `mysimbdp batch`, by product.
pub fn all_time_from_parquet(path: &std::path::Path) -> Result<BTreeMap<String, Totals>> {
    use parquet::record::Field;
    let mut out = BTreeMap::new();
    for row in parquet_rows(path)? {
        let int = |name: &str| -> Result<i64> {
            match row.get(name) {
                Some(Field::Long(v)) => Ok(*v),
                other => bail!("Parquet column `{name}`: {other:?}, expected an int64"),
            }
        };
        let product = match row.get("product_id") {
            Some(Field::Str(s)) => s.clone(),
            other => bail!("Parquet column `product_id`: {other:?}, expected a string"),
        };
        let avg = match row.get("avg_star_rating") {
            Some(Field::Double(v)) => *v,
            other => bail!("Parquet column `avg_star_rating`: {other:?}, expected a double"),
        };
        out.insert(
            product,
            Totals {
                avg_star_rating: avg,
                total_helpful_votes: int("total_helpful_votes")?,
                total_votes: int("total_votes")?,
                number_of_reviews: int("number_of_reviews")?,
                days_with_reviews: int("days_with_reviews")?,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reviews::days_from_civil;

    #[test]
    fn months_of_known_days() {
        for (y, m, d) in [
            (1970, 1, 1),
            (1999, 12, 31),
            (2000, 2, 29),
            (2015, 3, 1),
            (1969, 7, 20),
        ] {
            assert_eq!(
                month_of(days_from_civil(y, m, d) * MS_PER_DAY),
                i64::from(m)
            );
        }
    }

    #[test]
    fn csv_quoting() {
        let rows = parse_csv("a,b\n\"x,\"\"y\"\"\",2\n").expect("valid");
        assert_eq!(rows[0]["a"], "x,\"y\"");
        assert_eq!(rows[0]["b"], "2");
    }
}
