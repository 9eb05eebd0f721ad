//! `mysimbdp app test` as a tenant runs it: reviews-daily on a small TSV, in file and in
//! event-time order, against expected rows this test computes on its own; a wrong expectation
//! fails with the difference; a panicking app is named by its own function.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// (product, star rating, helpful votes, total votes, date); `None` stars: a mistyped rating.
type Review = (&'static str, Option<i64>, i64, i64, &'static str);

const REVIEWS: [Review; 8] = [
    ("B0000000AA", Some(5), 1, 2, "2015-03-01"),
    ("B0000000AA", Some(3), 0, 1, "2015-03-01"),
    ("B0000000BB", Some(4), 2, 2, "2015-03-01"),
    ("B0000000AA", Some(4), 1, 1, "2015-03-02"),
    ("B0000000BB", None, 0, 0, "2015-03-02"),
    ("B0000000AA", Some(2), 0, 0, "2015-03-05"),
    // Three days behind the newest: late in file order (2-day watermark delay, daily windows).
    ("B0000000BB", Some(1), 0, 0, "2015-03-01"),
    ("B0000000CC", Some(5), 3, 4, "2015-03-04"),
];

const DAY_MS: i64 = 86_400_000;

fn tsv_line((product, stars, helpful, total, date): Review) -> String {
    let stars = stars.map_or("five".to_owned(), |s| s.to_string());
    let cells = [
        "US",
        "1",
        "R1",
        product,
        "2",
        "A title",
        "Books",
        &stars,
        &helpful.to_string(),
        &total.to_string(),
        "N",
        "Y",
        "Headline",
        "Body.",
        date,
    ];
    cells.join("\t")
}

fn days(date: &str) -> i64 {
    let mut parts = date.split('-').map(|p| p.parse::<i64>().unwrap());
    let (y, m, d) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    // Days from civil (Howard Hinnant's algorithm), independent of the platform's parser.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The rows reviews-daily must write, computed here: sums per (product, day) of the on-time,
/// well-formed reviews; in file order a review is late when its day ended at or before the
/// newest day seen minus the 2-day delay.
fn expected(file_order: bool) -> BTreeMap<(String, i64), (i64, i64, i64, i64)> {
    let mut newest = i64::MIN;
    let mut rows: BTreeMap<(String, i64), (i64, i64, i64, i64)> = BTreeMap::new();
    for (product, stars, helpful, total, date) in REVIEWS {
        let Some(stars) = stars else { continue };
        let day = days(date);
        if file_order && newest != i64::MIN && (day + 1) * DAY_MS <= (newest - 2) * DAY_MS {
            continue;
        }
        newest = newest.max(day);
        let row = rows.entry((product.to_owned(), day)).or_default();
        row.0 += 1;
        row.1 += stars;
        row.2 += helpful;
        row.3 += total;
    }
    rows
}

fn expected_csv(rows: &BTreeMap<(String, i64), (i64, i64, i64, i64)>) -> String {
    let mut csv = "product_id,window_start,avg_star_rating,sum_helpful_votes,sum_total_votes,number_of_reviews,final\n".to_owned();
    for ((product, day), (n, stars, helpful, total)) in rows {
        // The window start as epoch milliseconds: the tool reads that as well as RFC 3339.
        csv.push_str(&format!(
            "{product},{},{},{helpful},{total},{n},true\n",
            day * DAY_MS,
            *stars as f64 / *n as f64
        ));
    }
    csv
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mysimbdp-app-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn app_test(app: &Path, input: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mysimbdp"))
        .args(["app", "test", "--app"])
        .arg(app)
        .arg("--input")
        .arg(input)
        .args(extra)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sample(dir: &Dir) -> PathBuf {
    let mut tsv = mysimbdp_host::cli::tsv::HEADER.to_owned();
    for review in REVIEWS {
        tsv.push('\n');
        tsv.push_str(&tsv_line(review));
    }
    tsv.push('\n');
    dir.write("reviews.tsv", &tsv)
}

#[test]
fn reviews_daily_in_file_order_writes_the_expected_rows_and_names_late_and_bad_records() {
    let dir = Dir::new("file");
    let input = sample(&dir);
    let rows = expected(true);
    assert_eq!(rows.len(), 5, "the test's own data: one review is late");
    let expect = dir.write("expected.csv", &expected_csv(&rows));
    let app = common::component("reviews-daily");
    let out = app_test(
        &app,
        &input,
        &["--order", "file", "--expect", expect.to_str().unwrap()],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("5 rows, as expected"), "{stderr}");
    // Line 6 of the file (after the header) has the mistyped rating; line 8 is the late review.
    assert!(stdout.contains("dead letters (1):"), "{stdout}");
    assert!(stdout.contains("line 6: field `star_rating`"), "{stdout}");
    assert!(stdout.contains("late (1):"), "{stdout}");
    assert!(
        stdout.contains("line 8: late: event time 2015-03-01T00:00:00Z"),
        "{stdout}"
    );
    assert!(
        stdout.contains("B0000000AA  2015-03-01T00:00:00Z  2015-03-02T00:00:00Z  4 "),
        "{stdout}"
    );
}

#[test]
fn in_event_order_the_late_review_counts() {
    let dir = Dir::new("event");
    let input = sample(&dir);
    let rows = expected(false);
    assert_eq!(rows[&("B0000000BB".to_owned(), days("2015-03-01"))].0, 2);
    let expect = dir.write("expected.csv", &expected_csv(&rows));
    let app = common::component("reviews-daily");
    let out = app_test(
        &app,
        &input,
        &["--expect", expect.to_str().unwrap(), "--format", "json"],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["rows"].as_array().unwrap().len(), rows.len());
    assert_eq!(doc["late"].as_array().unwrap().len(), 0);
    assert_eq!(doc["dead_letters"].as_array().unwrap().len(), 1);
}

#[test]
fn a_wrong_expectation_fails_with_each_difference() {
    let dir = Dir::new("wrong");
    let input = sample(&dir);
    let mut rows = expected(true);
    rows.remove(&("B0000000CC".to_owned(), days("2015-03-04")));
    rows.get_mut(&("B0000000AA".to_owned(), days("2015-03-01")))
        .unwrap()
        .3 = 99;
    rows.insert(("B0000000ZZ".to_owned(), days("2015-03-01")), (1, 1, 1, 1));
    let expect = dir.write("expected.csv", &expected_csv(&rows));
    let app = common::component("reviews-daily");
    let out = app_test(
        &app,
        &input,
        &["--order", "file", "--expect", expect.to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`sum_total_votes` expected 99, got 3"),
        "{stderr}"
    );
    assert!(stderr.contains("missing: B0000000ZZ"), "{stderr}");
    assert!(
        stderr.contains("extra: B0000000CC 2015-03-04T00:00:00Z"),
        "{stderr}"
    );
    assert!(stderr.contains("3 difference(s)"), "{stderr}");
}

#[test]
fn a_panic_is_quarantined_and_named_by_the_tenants_function() {
    let dir = Dir::new("panic");
    // The hostile app reads `act` per record; 3 panics.
    let input = dir.write("orders.tsv", "key\tact\nk1\t0\nk2\t3\nk3\t0\n");
    let app = common::component("hostile");
    let out = app_test(&app, &input, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("the app failed on 1 record(s)"), "{stderr}");
    assert!(
        stdout.contains("line 3: quarantined: the app failed on this record"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(in <hostile::Attempts as mysimbdp_guest::Aggregate>::add"),
        "{stdout}"
    );
    assert!(
        stdout.contains("panicked at tenant-apps/hostile/src/lib.rs"),
        "{stdout}"
    );
    assert!(stdout.contains("(2 rows)"), "{stdout}");
}

#[test]
fn the_operators_limits_apply_when_a_config_is_given() {
    let dir = Dir::new("config");
    let input = sample(&dir);
    // Product ids are 10 bytes: with at most 5 allowed, every well-formed review is refused.
    let config = dir.write(
        "mysimbdp.toml",
        "[kafka]\nbootstrap = \"x:1\"\n[limits]\nmax_key_bytes = 5\n[runner]\nbatch_max = 2\n",
    );
    let app = common::component("reviews-daily");
    let out = app_test(&app, &input, &["--config", config.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("(0 rows)"), "{stdout}");
    assert!(stdout.contains("dead letters (8):"), "{stdout}");
    assert!(
        stdout.contains("at most 5 are allowed ([limits] max_key_bytes)"),
        "{stdout}"
    );
}
