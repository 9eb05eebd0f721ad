//! The sentiment inference service as the enrich tests see it: whether it answers, scores
//! computed by calling it directly (not through the platform), a service process of the test's
//! own that it may stop and start, the reviews-sentiment app with its manifest, and its table
//! read back from Cassandra.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use scylla::value::CqlTimestamp;
use serde_json::{json, Value};

use crate::cassandra::each_row;
use crate::env::{tenant_app_wasm, workspace_dir, TestEnv};
use crate::platform::AppSpec;
use crate::reviews::{parse_iso_date, WindowKey, MS_PER_DAY};

/// The service `just up` starts: `$MYSIMBDP_SENTIMENT_URL`, else
/// `http://127.0.0.1:$MYSIMBDP_SENTIMENT_PORT` (9300 by default, as `deploy/local` reads it).
pub fn sentiment_url() -> String {
    std::env::var("MYSIMBDP_SENTIMENT_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            let port = std::env::var("MYSIMBDP_SENTIMENT_PORT").unwrap_or_else(|_| "9300".into());
            format!("http://127.0.0.1:{port}")
        })
}

/// The app's name and table.
pub const REVIEWS_SENTIMENT: &str = "reviews-sentiment";
pub const REVIEW_SENTIMENT_TABLE: &str = "review_sentiment";
/// VADER's threshold for a negative text, as the app uses it.
pub const NEGATIVE: f64 = -0.05;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// Fails (never skips) when the service at `base` does not answer its health check.
pub fn check_sentiment(base: &str) -> Result<String> {
    let url = format!("{base}/health");
    let answer = agent()
        .get(&url)
        .call()
        .and_then(|r| r.into_body().read_json::<Value>())
        .with_context(|| {
            format!(
                "the enrich tests need the sentiment service at {base}; start it with \
                 `just up` or `deploy/local/up.sh sentiment` (or run `just test`)"
            )
        })?;
    ensure!(answer["status"] == "ok", "{url} answered {answer}");
    Ok(answer["model"].as_str().unwrap_or_default().to_owned())
}

/// (sentiment, predicted stars) of each text, asked of the service at `base` directly.
pub fn score_texts(base: &str, texts: &[String]) -> Result<Vec<(f64, i64)>> {
    let agent = agent();
    let mut scores = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(1000) {
        let response = agent
            .post(format!("{base}/v1/sentiment"))
            .send_json(json!({ "texts": chunk }))
            .context("calling the sentiment service")?;
        let status = response.status();
        let body: Value = response.into_body().read_json()?;
        ensure!(
            status == 200,
            "the sentiment service answered {status}: {body}"
        );
        let results = body["results"].as_array().context("no results")?;
        ensure!(
            results.len() == chunk.len(),
            "{} results for {} texts",
            results.len(),
            chunk.len()
        );
        for r in results {
            let sentiment = r["sentiment"].as_f64().context("no sentiment")?;
            let stars = r["stars"].as_i64().context("no stars")?;
            scores.push((sentiment, stars));
        }
    }
    Ok(scores)
}

/// One review of a generated TSV, as the sentiment app's expectation needs it.
#[derive(Debug, Clone)]
pub struct TsvReview {
    pub review_id: String,
    pub product_id: String,
    pub window_start: i64,
    pub star_rating: i64,
    pub body: String,
}

/// Every review of a TSV written by `mysimbdp gen` (with no malformed rows).
pub fn read_reviews(tsv: &Path) -> Result<Vec<TsvReview>> {
    let text = fs::read_to_string(tsv).with_context(|| format!("cannot read {}", tsv.display()))?;
    let mut reviews = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        ensure!(c.len() == 15, "line {}: {} columns", n + 1, c.len());
        let day = parse_iso_date(c[14]).with_context(|| format!("line {}: date", n + 1))?;
        reviews.push(TsvReview {
            review_id: c[2].to_owned(),
            product_id: c[3].to_owned(),
            window_start: day * MS_PER_DAY,
            star_rating: c[7]
                .parse()
                .with_context(|| format!("line {}: stars", n + 1))?,
            body: c[13].to_owned(),
        });
    }
    Ok(reviews)
}

/// One row of `review_sentiment`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SentimentRow {
    pub avg_sentiment: f64,
    pub negative_share: f64,
    pub mean_star_gap: f64,
    pub scored_reviews: i64,
    pub unscored_reviews: i64,
}

/// What the app must write for `reviews` scored as `scores`; `unscored` reviews (by review id)
/// count without a score (defaults used), `skipped` ones not at all (dead letters).
pub fn expected_sentiment(
    reviews: &[TsvReview],
    scores: &[(f64, i64)],
    unscored: &std::collections::BTreeSet<String>,
    skipped: &std::collections::BTreeSet<String>,
) -> BTreeMap<WindowKey, SentimentRow> {
    #[derive(Default)]
    struct Sums {
        scored: i64,
        unscored: i64,
        sentiment: f64,
        negative: i64,
        gap: i64,
    }
    let mut sums: BTreeMap<WindowKey, Sums> = BTreeMap::new();
    for (review, (sentiment, stars)) in reviews.iter().zip(scores) {
        if skipped.contains(&review.review_id) {
            continue;
        }
        let s = sums
            .entry((review.product_id.clone(), review.window_start))
            .or_default();
        if unscored.contains(&review.review_id) {
            s.unscored += 1;
            continue;
        }
        s.scored += 1;
        s.sentiment += sentiment;
        s.negative += i64::from(*sentiment <= NEGATIVE);
        s.gap += (review.star_rating - stars).abs();
    }
    sums.into_iter()
        .map(|(key, s)| {
            let per = |x: f64| {
                if s.scored == 0 {
                    0.0
                } else {
                    x / s.scored as f64
                }
            };
            let row = SentimentRow {
                avg_sentiment: per(s.sentiment),
                negative_share: per(s.negative as f64),
                mean_star_gap: per(s.gap as f64),
                scored_reviews: s.scored,
                unscored_reviews: s.unscored,
            };
            (key, row)
        })
        .collect()
}

type Row = (
    String,
    CqlTimestamp,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
);

/// `<keyspace>.review_sentiment`, every row.
pub fn read_review_sentiment(
    keyspace: &str,
    table: &str,
) -> Result<BTreeMap<WindowKey, SentimentRow>> {
    let table = format!("{keyspace}.{table}");
    let cql = format!(
        "SELECT product_id, window_start, avg_sentiment, negative_share, mean_star_gap, \
         scored_reviews, unscored_reviews FROM {table}"
    );
    let mut rows = BTreeMap::new();
    each_row(&table, &cql, |row: Row| {
        let (product, start, avg, negative, gap, scored, unscored) = row;
        let missing = || format!("{table}: a null column at ({product}, {start:?})");
        let value = SentimentRow {
            avg_sentiment: avg.with_context(missing)?,
            negative_share: negative.with_context(missing)?,
            mean_star_gap: gap.with_context(missing)?,
            scored_reviews: scored.with_context(missing)?,
            unscored_reviews: unscored.with_context(missing)?,
        };
        rows.insert((product, start.0), value);
        Ok(())
    })?;
    Ok(rows)
}

/// The differences between the table and the expectation (at most `limit` described), or none.
pub fn diff_sentiment(
    actual: &BTreeMap<WindowKey, SentimentRow>,
    expected: &BTreeMap<WindowKey, SentimentRow>,
    limit: usize,
) -> Vec<String> {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9;
    let mut diffs = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => diffs.push(format!("missing row {key:?}: expected {want:?}")),
            Some(got)
                if got.scored_reviews != want.scored_reviews
                    || got.unscored_reviews != want.unscored_reviews
                    || !close(got.avg_sentiment, want.avg_sentiment)
                    || !close(got.negative_share, want.negative_share)
                    || !close(got.mean_star_gap, want.mean_star_gap) =>
            {
                diffs.push(format!("{key:?}: got {got:?}, expected {want:?}"))
            }
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        diffs.push(format!("unexpected row {key:?}: {:?}", actual[key]));
    }
    let total = diffs.len();
    if total > limit {
        diffs.truncate(limit);
        diffs.push(format!("… {} more", total - limit));
    }
    diffs
}

/// The reviews-sentiment component copied into the scratch folder with `manifest` beside it
/// (`reviews_sentiment.enrich.toml`), on the `reviews` stream.
pub fn sentiment_app(env: &TestEnv, name: &str, manifest: &str) -> Result<AppSpec> {
    let dir = env.path(name);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let wasm = dir.join("reviews_sentiment.wasm");
    fs::copy(tenant_app_wasm(REVIEWS_SENTIMENT)?, &wasm).context("copying the component")?;
    fs::write(dir.join("reviews_sentiment.enrich.toml"), manifest)
        .context("writing the manifest")?;
    Ok(AppSpec {
        path: wasm,
        stream: "reviews".into(),
    })
}

/// The app's own manifest, `tenant-apps/reviews-sentiment/enrich.toml`.
pub fn shipped_manifest() -> Result<String> {
    let path = workspace_dir().join("tenant-apps/reviews-sentiment/enrich.toml");
    fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The operator's `[services.sentiment]` for `tenant`, at `base`, with `extra` lines.
pub fn services_toml(tenant: &str, base: &str, extra: &str) -> String {
    format!(
        "[services.sentiment]\nurl = \"{base}/v1/sentiment\"\ntenants = [\"{tenant}\"]\n{extra}\n"
    )
}

/// A sentiment service process of the test's own, on a free port: stopped and started by the
/// test, killed when dropped.
pub struct OwnService {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl OwnService {
    pub fn start(env: &TestEnv) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut service = Self {
            port,
            child: None,
            log: env.path("sentiment-service.log"),
        };
        service.restart()?;
        Ok(service)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) on the same port and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        let python = workspace_dir().join(".state/sentiment-venv/bin/python");
        if !python.is_file() {
            // The service answering on its port may come from another checkout: install this
            // one's pinned packages the way `up.sh` does.
            let lib = workspace_dir().join("deploy/local/lib.sh");
            let status = Command::new("bash")
                .arg("-c")
                .arg("source \"$1\" && ensure_sentiment_venv")
                .arg("_")
                .arg(&lib)
                .status()
                .context("running ensure_sentiment_venv")?;
            ensure!(
                status.success() && python.is_file(),
                "{} is missing and ensure_sentiment_venv ({}) failed",
                python.display(),
                lib.display()
            );
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(python)
            .arg(workspace_dir().join("services/sentiment/sentiment_service.py"))
            .args(["--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the sentiment service")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while check_sentiment(&self.base()).is_err() {
            if Instant::now() >= deadline {
                bail!("the test's sentiment service did not answer within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Kills the process and waits until it is gone.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing the sentiment service")?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for OwnService {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
