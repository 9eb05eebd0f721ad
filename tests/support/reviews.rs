//! What the reviews-daily app must produce for a TSV file, computed here from the file alone
//! (own parsing, own date arithmetic, no platform code), plus a readable diff.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;
/// A valid row this many days or more behind the running maximum date is late: the generator
/// puts late rows 100–300 days behind, far beyond the app's 2-day watermark delay.
pub const LATE_MIN_DAYS_BEHIND: i64 = 50;
/// A valid row at most this many days behind is on time whatever the partitions' interleaving
/// (the watermark never passes max − 2 days); between this and `LATE_MIN_DAYS_BEHIND` a row's
/// fate would depend on the interleaving, so the expectation refuses such input.
pub const ON_TIME_MAX_DAYS_BEHIND: i64 = 2;

const COLUMNS: usize = 15;
const REVIEW_ID: usize = 2;
const PRODUCT_ID: usize = 3;
const STAR_RATING: usize = 7;
const HELPFUL_VOTES: usize = 8;
const TOTAL_VOTES: usize = 9;
const REVIEW_DATE: usize = 14;

/// (product_id, window_start in ms since the epoch, UTC).
pub type WindowKey = (String, i64);

/// One row of `aggregated_reviews` (or its expectation).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyAggregate {
    pub avg_star_rating: f64,
    pub sum_helpful_votes: i64,
    pub sum_total_votes: i64,
    pub number_of_reviews: i64,
}

/// A line the platform must send to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct MalformedRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: usize,
    /// The third column's text, when the line has at least 3 columns.
    pub review_id: Option<String>,
    pub reason: String,
}

/// A valid row the platform must send to the late topic.
#[derive(Debug, Clone)]
pub struct LateRow {
    pub line: usize,
    pub review_id: String,
    pub days_behind: i64,
}

/// The expected outcome of running reviews-daily over a TSV file.
#[derive(Debug, Clone, Default)]
pub struct ExpectedReviews {
    /// Aggregates over the on-time valid rows, per (product_id, day).
    pub windows: BTreeMap<WindowKey, DailyAggregate>,
    pub late: Vec<LateRow>,
    pub malformed: Vec<MalformedRow>,
    pub valid_rows: usize,
    pub on_time_rows: usize,
    /// On-time rows dated before the running maximum (1–2 days behind).
    pub out_of_order_rows: usize,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A strict `YYYY-MM-DD` calendar date as days since the epoch; `None` for anything else
/// (wrong shape, month 13, February 30, February 29 of a non-leap year, …).
pub fn parse_iso_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i64::from(digits(&s[0..4])?);
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// An RFC 3339 UTC timestamp (`2015-01-01T00:00:00Z`, optional fraction, `Z` or `+00:00`) as
/// ms since the epoch: how the results topic writes `window_start`.
pub fn parse_utc_timestamp_ms(s: &str) -> Option<i64> {
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let days = parse_iso_date(date)?;
    let time = time
        .strip_suffix(['Z', 'z'])
        .or_else(|| time.strip_suffix("+00:00"))?;
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (time, None),
    };
    let mut parts = hms.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.len() != 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let (h, m, sec) = (digits(h)?, digits(m)?, digits(sec)?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let millis = match fraction {
        None => 0,
        Some(f) => {
            digits(f)?;
            let mut padded: String = f.chars().take(3).collect();
            while padded.len() < 3 {
                padded.push('0');
            }
            i64::from(digits(&padded)?)
        }
    };
    Some(days * MS_PER_DAY + i64::from(h * 3600 + m * 60 + sec) * 1000 + millis)
}

/// Why a TSV line is not a valid review for reviews-daily, or its parts when it is.
fn classify(line: &str) -> std::result::Result<(String, String, [i64; 3], i64), String> {
    let cols: Vec<&str> = line.split('\t').collect();
    if cols.len() != COLUMNS {
        return Err(format!("{} columns instead of {COLUMNS}", cols.len()));
    }
    if cols[PRODUCT_ID].is_empty() {
        return Err("empty product_id".into());
    }
    let mut numbers = [0i64; 3];
    for (slot, (index, name)) in numbers.iter_mut().zip([
        (STAR_RATING, "star_rating"),
        (HELPFUL_VOTES, "helpful_votes"),
        (TOTAL_VOTES, "total_votes"),
    ]) {
        *slot = cols[index]
            .parse::<i64>()
            .map_err(|_| format!("{name} `{}` is not an integer", cols[index]))?;
    }
    let day = parse_iso_date(cols[REVIEW_DATE])
        .ok_or_else(|| format!("review_date `{}` is not a date", cols[REVIEW_DATE]))?;
    Ok((
        cols[REVIEW_ID].to_owned(),
        cols[PRODUCT_ID].to_owned(),
        numbers,
        day,
    ))
}

/// Reads a `mysimbdp gen` TSV and computes what the platform must produce: the per-(product,
/// day) aggregates of on-time valid rows, the late rows (≥ 50 days behind the running maximum
/// date of earlier valid rows, in file order) and the malformed rows. Fails if some valid row
/// is between 2 and 50 days behind, since its fate would then depend on partition interleaving.
pub fn expected_from_tsv(path: &Path) -> Result<ExpectedReviews> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut expected = ExpectedReviews::default();
    let mut sums: BTreeMap<WindowKey, [i64; 4]> = BTreeMap::new();
    let mut max_day: Option<i64> = None;
    let mut ambiguous = Vec::new();
    let mut bytes = Vec::new();
    let mut line_no = 0usize;
    loop {
        bytes.clear();
        let n = reader
            .read_until(b'\n', &mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        let line = String::from_utf8_lossy(&bytes);
        if line_no == 1 {
            if !line.starts_with("marketplace\t") {
                bail!(
                    "{}: the first line is not the TSV header: {line}",
                    path.display()
                );
            }
            continue;
        }
        match classify(&line) {
            Err(reason) => {
                let review_id = line.split('\t').nth(REVIEW_ID).map(str::to_owned);
                expected.malformed.push(MalformedRow {
                    line: line_no,
                    review_id,
                    reason,
                });
            }
            Ok((review_id, product_id, [stars, helpful, total], day)) => {
                expected.valid_rows += 1;
                let behind = max_day.map_or(0, |max| max - day);
                if behind >= LATE_MIN_DAYS_BEHIND {
                    expected.late.push(LateRow {
                        line: line_no,
                        review_id,
                        days_behind: behind,
                    });
                    continue;
                }
                if behind > ON_TIME_MAX_DAYS_BEHIND {
                    ambiguous.push(format!("line {line_no}: {behind} days behind"));
                }
                if behind > 0 {
                    expected.out_of_order_rows += 1;
                }
                expected.on_time_rows += 1;
                max_day = Some(max_day.map_or(day, |max| max.max(day)));
                let sum = sums.entry((product_id, day * MS_PER_DAY)).or_default();
                sum[0] += 1;
                sum[1] += stars;
                sum[2] += helpful;
                sum[3] += total;
            }
        }
    }
    if line_no == 0 {
        bail!("{} is empty", path.display());
    }
    if !ambiguous.is_empty() {
        bail!(
            "{}: {} valid rows are between {ON_TIME_MAX_DAYS_BEHIND} and {LATE_MIN_DAYS_BEHIND} \
             days behind the running maximum, so whether they are late would depend on how \
             partitions interleave; first: {}",
            path.display(),
            ambiguous.len(),
            ambiguous
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    expected.windows = sums
        .into_iter()
        .map(|(key, [count, stars, helpful, total])| {
            let aggregate = DailyAggregate {
                avg_star_rating: stars as f64 / count as f64,
                sum_helpful_votes: helpful,
                sum_total_votes: total,
                number_of_reviews: count,
            };
            (key, aggregate)
        })
        .collect();
    Ok(expected)
}

fn show_key((product, start): &WindowKey) -> String {
    let day = start.div_euclid(MS_PER_DAY);
    format!("({product}, {} = {start} ms)", format_iso_date(day))
}

/// Days since the epoch as a `YYYY-MM-DD` date (the inverse of [`parse_iso_date`], by the
/// civil-from-days algorithm).
pub fn format_iso_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn same(expected: &DailyAggregate, actual: &DailyAggregate) -> bool {
    expected.number_of_reviews == actual.number_of_reviews
        && expected.sum_helpful_votes == actual.sum_helpful_votes
        && expected.sum_total_votes == actual.sum_total_votes
        && (expected.avg_star_rating - actual.avg_star_rating).abs() <= 1e-9
}

/// `None` when `actual` equals `expected` (same keys; counts and sums equal; averages within
/// 1e-9), else a report: how many keys are missing, extra or different, with the first `limit`
/// of each.
pub fn diff_aggregates(
    expected: &BTreeMap<WindowKey, DailyAggregate>,
    actual: &BTreeMap<WindowKey, DailyAggregate>,
    limit: usize,
) -> Option<String> {
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let different: Vec<_> = expected
        .iter()
        .filter_map(|(k, e)| actual.get(k).filter(|a| !same(e, a)).map(|a| (k, e, a)))
        .collect();
    if missing.is_empty() && extra.is_empty() && different.is_empty() {
        return None;
    }
    let mut report = format!(
        "{} expected rows, {} actual: {} missing, {} extra, {} different\n",
        expected.len(),
        actual.len(),
        missing.len(),
        extra.len(),
        different.len()
    );
    for key in missing.iter().take(limit) {
        report.push_str(&format!(
            "  missing {}: expected {:?}\n",
            show_key(key),
            expected[*key]
        ));
    }
    for key in extra.iter().take(limit) {
        report.push_str(&format!(
            "  extra   {}: actual {:?}\n",
            show_key(key),
            actual[*key]
        ));
    }
    for (key, e, a) in different.iter().take(limit) {
        report.push_str(&format!(
            "  differs {}:\n    expected {e:?}\n    actual   {a:?}\n",
            show_key(key)
        ));
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_back() {
        for date in [
            "1970-01-01",
            "2000-02-29",
            "2015-12-31",
            "2016-03-01",
            "1969-12-31",
        ] {
            assert_eq!(format_iso_date(parse_iso_date(date).unwrap()), date);
        }
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(parse_iso_date("1970-01-01"), Some(0));
        assert_eq!(parse_iso_date("2015-01-01"), Some(16_436));
        assert_eq!(parse_iso_date("2000-02-29"), Some(11_016));
        assert_eq!(
            parse_iso_date("2016-02-29").map(format_iso_date).as_deref(),
            Some("2016-02-29")
        );
        assert_eq!(parse_iso_date("1900-02-29"), None);
        assert_eq!(parse_iso_date("2015-02-29"), None);
        assert_eq!(parse_iso_date("2015-04-31"), None);
        assert_eq!(parse_iso_date("2015-13-01"), None);
        assert_eq!(parse_iso_date("2015-00-10"), None);
        assert_eq!(parse_iso_date("2015-1-01"), None);
        assert_eq!(parse_iso_date("2015-01-01 "), None);
        assert_eq!(parse_iso_date("+015-01-01"), None);
        assert_eq!(parse_iso_date("not-a-date"), None);
        assert_eq!(parse_iso_date(""), None);
    }

    #[test]
    fn utc_timestamps() {
        assert_eq!(
            parse_utc_timestamp_ms("2015-01-01T00:00:00Z"),
            Some(16_436 * MS_PER_DAY)
        );
        assert_eq!(
            parse_utc_timestamp_ms("2015-01-01T00:00:00.000Z"),
            Some(16_436 * MS_PER_DAY)
        );
        assert_eq!(
            parse_utc_timestamp_ms("1970-01-01T00:00:01.5+00:00"),
            Some(1_500)
        );
        assert_eq!(parse_utc_timestamp_ms("2015-01-01T00:00:00"), None);
        assert_eq!(parse_utc_timestamp_ms("2015-01-01"), None);
    }

    #[test]
    fn classification() {
        let header = "marketplace\tcustomer_id\treview_id\tproduct_id\tproduct_parent\t\
                      product_title\tproduct_category\tstar_rating\thelpful_votes\ttotal_votes\t\
                      vine\tverified_purchase\treview_headline\treview_body\treview_date";
        let row = |id: &str, product: &str, stars: &str, date: &str| {
            format!("US\t1\t{id}\t{product}\t2\tT\tBooks\t{stars}\t1\t2\tN\tY\th\tb\t{date}")
        };
        let lines = [
            header.to_owned(),
            row("R1", "P1", "5", "2015-03-10"),
            row("R2", "P1", "3", "2015-03-09"), // one day behind: on time
            row("R3", "P2", "4", "2014-10-01"), // far behind: late
            row("R4", "", "4", "2015-03-10"),   // empty product_id
            row("R5", "P1", "x", "2015-03-10"), // star_rating not an integer
            row("R6", "P1", "4", "2015-02-29"), // not a date
            "US\t1\tR7\tP1".to_owned(),         // 4 columns
        ];
        let dir = std::env::temp_dir().join(format!("mysimbdp-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("classification.tsv");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let expected = expected_from_tsv(&path).unwrap();
        assert_eq!(expected.valid_rows, 3);
        assert_eq!(expected.on_time_rows, 2);
        assert_eq!(expected.out_of_order_rows, 1);
        assert_eq!(expected.late.len(), 1);
        assert_eq!(expected.late[0].review_id, "R3");
        let malformed: Vec<_> = expected
            .malformed
            .iter()
            .map(|m| m.review_id.clone().unwrap())
            .collect();
        assert_eq!(malformed, ["R4", "R5", "R6", "R7"]);
        let day = parse_iso_date("2015-03-10").unwrap() * MS_PER_DAY;
        let p1 = &expected.windows[&("P1".to_owned(), day)];
        assert_eq!((p1.number_of_reviews, p1.avg_star_rating), (1, 5.0));
        assert_eq!(expected.windows.len(), 2);
        std::fs::remove_file(&path).unwrap();
    }
}
