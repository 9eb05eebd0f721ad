//! The services an operator lets apps call (`[services.<name>]` in the platform's config), and
//! how one batch is sent to one: a kept-alive connection pool, a timeout, retries with
//! exponential backoff, and a circuit breaker that stops calling a service that is down.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::metrics::{BreakerState, EnrichMetrics};

/// One service as the operator configures it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Where batches are POSTed, e.g. `http://127.0.0.1:9300/v1/sentiment`.
    pub url: String,
    /// The tenants whose apps may call it.
    pub tenants: Vec<String>,
    /// One call's deadline, connecting included.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Requests one app has in flight at once.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// Retries of a batch the service answered wrongly (an error status, a bad body) before the
    /// app's `on_failure` applies. A service that cannot be reached is retried without end.
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// The first retry's delay; it doubles up to `max_backoff_ms`.
    #[serde(default = "defaults::backoff_ms")]
    pub backoff_ms: u64,
    #[serde(default = "defaults::max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Consecutive unreachable calls that open the breaker.
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker waits before one probe call.
    #[serde(default = "defaults::breaker_open_ms")]
    pub breaker_open_ms: u64,
}

mod defaults {
    pub fn timeout_ms() -> u64 {
        5000
    }
    pub fn max_in_flight() -> usize {
        4
    }
    pub fn retries() -> u32 {
        2
    }
    pub fn backoff_ms() -> u64 {
        100
    }
    pub fn max_backoff_ms() -> u64 {
        5000
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_open_ms() -> u64 {
        2000
    }
}

impl ServiceConfig {
    /// What is wrong with the entry, if anything, as (field, problem, fix).
    pub fn problem(&self) -> Option<(&'static str, String, &'static str)> {
        if !self.url.starts_with("http://") {
            return Some((
                "url",
                format!("`{}` is not an http:// URL", self.url),
                "give the full URL batches are POSTed to, e.g. \"http://127.0.0.1:9300/v1/sentiment\"",
            ));
        }
        if self.timeout_ms == 0 || self.max_in_flight == 0 || self.breaker_failures == 0 {
            return Some((
                "timeout_ms, max_in_flight, breaker_failures",
                "zero".into(),
                "use at least 1",
            ));
        }
        None
    }
}

/// The operator's services, by name.
pub type Services = BTreeMap<String, ServiceConfig>;

/// How long one call waits for an unreachable service before it hands control back to the
/// app's worker (which keeps the batch, answers operators, and calls again).
pub const PATIENCE: Duration = Duration::from_secs(1);

/// What became of one request.
#[derive(Debug)]
pub enum Outcome {
    /// The results, one per record.
    Answered(Vec<serde_json::Value>),
    /// Answered wrongly more than `retries` times: the app's `on_failure` applies.
    Refused(String),
    /// Still unreachable after [`PATIENCE`] (or the app is stopping): the batch waits.
    Waiting,
}

/// How a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// No answer (refused, reset, timed out) or "try later" (429, 502, 503, 504): the records
    /// wait.
    Unreachable(String),
    /// An answer that is wrong: an error status or a body that is not the contract.
    Answered(String),
}

/// The breaker of one app's calls to one service.
struct Breaker {
    state: BreakerState,
    failures: u32,
    opened: Instant,
}

/// One app's connection to one service.
pub struct ServiceClient {
    pub name: String,
    config: ServiceConfig,
    agent: ureq::Agent,
    breaker: Mutex<Breaker>,
    metrics: Arc<EnrichMetrics>,
    /// Set when the app is being stopped: a waiting call gives up.
    halt: Arc<AtomicBool>,
}

/// The largest answer read from a service.
const MAX_ANSWER_BYTES: u64 = 64 << 20;

impl ServiceClient {
    pub fn new(
        name: &str,
        config: ServiceConfig,
        metrics: Arc<EnrichMetrics>,
        halt: Arc<AtomicBool>,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            .max_idle_connections_per_host(config.max_in_flight.max(1))
            .max_idle_age(Duration::from_secs(60))
            .build()
            .new_agent();
        metrics.set_service(name);
        Self {
            name: name.to_owned(),
            agent,
            breaker: Mutex::new(Breaker {
                state: BreakerState::Closed,
                failures: 0,
                opened: Instant::now(),
            }),
            config,
            metrics,
            halt,
        }
    }

    pub fn max_in_flight(&self) -> usize {
        self.config.max_in_flight
    }

    /// Sends one batch until it is answered well, or answered wrongly more than `retries`
    /// times, or the service stays unreachable for [`PATIENCE`].
    pub fn call(&self, body: &[u8], rows: usize) -> Outcome {
        let mut wrong = 0;
        let mut delay = Duration::from_millis(self.config.backoff_ms);
        let give_up = Instant::now() + PATIENCE;
        loop {
            if !self.admit(give_up) {
                return Outcome::Waiting;
            }
            self.metrics.calls(rows);
            let started = Instant::now();
            let result = self.once(body, rows);
            self.metrics.latency.observe(started.elapsed());
            match result {
                Ok(results) => {
                    self.record(true);
                    return Outcome::Answered(results);
                }
                Err(Failure::Answered(reason)) => {
                    self.record(true);
                    self.metrics.error();
                    wrong += 1;
                    if wrong > self.config.retries {
                        return Outcome::Refused(reason);
                    }
                    tracing::warn!(service = %self.name, %reason, attempt = wrong, "service answered wrongly; retrying");
                }
                Err(Failure::Unreachable(reason)) => {
                    self.record(false);
                    self.metrics.error();
                    tracing::warn!(service = %self.name, %reason, "service unreachable; the input waits");
                }
            }
            self.metrics.retry();
            if !self.sleep(delay, give_up) {
                return Outcome::Waiting;
            }
            delay = (delay * 2).min(Duration::from_millis(self.config.max_backoff_ms));
        }
    }

    fn once(&self, body: &[u8], rows: usize) -> Result<Vec<serde_json::Value>, Failure> {
        let response = self
            .agent
            .post(&self.config.url)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let answer = response
            .into_body()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|e| Failure::Unreachable(format!("reading the answer: {e}")))?;
        let excerpt = || String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
        match status {
            200..=299 => {}
            429 | 502 | 503 | 504 => {
                return Err(Failure::Unreachable(format!(
                    "HTTP {status}: {}",
                    excerpt()
                )))
            }
            _ => return Err(Failure::Answered(format!("HTTP {status}: {}", excerpt()))),
        }
        let doc: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| {
            Failure::Answered(format!("the answer is not JSON ({e}): {}", excerpt()))
        })?;
        let results = match doc {
            serde_json::Value::Object(mut o) => match o.remove("results") {
                Some(serde_json::Value::Array(results)) => results,
                _ => {
                    return Err(Failure::Answered(
                        "the answer has no `results` array".into(),
                    ))
                }
            },
            _ => return Err(Failure::Answered("the answer is not a JSON object".into())),
        };
        if results.len() != rows {
            return Err(Failure::Answered(format!(
                "{} results for {rows} records",
                results.len()
            )));
        }
        Ok(results)
    }

    /// Waits while the breaker is open; false when `give_up` comes first or the app is halted.
    fn admit(&self, give_up: Instant) -> bool {
        loop {
            let wait = {
                let Ok(mut b) = self.breaker.lock() else {
                    return true;
                };
                let open_for = Duration::from_millis(self.config.breaker_open_ms);
                match b.state {
                    BreakerState::Closed => return true,
                    BreakerState::Open if b.opened.elapsed() >= open_for => {
                        b.state = BreakerState::HalfOpen;
                        self.metrics.set_breaker(BreakerState::HalfOpen);
                        return true;
                    }
                    BreakerState::Open => open_for.saturating_sub(b.opened.elapsed()),
                    // One probe at a time: the others wait for its outcome.
                    BreakerState::HalfOpen => Duration::from_millis(20),
                }
            };
            if !self.sleep(wait, give_up) {
                return false;
            }
        }
    }

    /// Notes a call's outcome: `reached` when the service answered at all.
    fn record(&self, reached: bool) {
        let Ok(mut b) = self.breaker.lock() else {
            return;
        };
        if reached {
            b.failures = 0;
            if b.state != BreakerState::Closed {
                tracing::info!(service = %self.name, "service reachable again: breaker closed");
                b.state = BreakerState::Closed;
                self.metrics.set_breaker(BreakerState::Closed);
            }
            return;
        }
        b.failures += 1;
        let trip = b.state == BreakerState::HalfOpen
            || (b.state == BreakerState::Closed && b.failures >= self.config.breaker_failures);
        if trip {
            if b.state == BreakerState::Closed {
                tracing::warn!(service = %self.name, failures = b.failures, "breaker open: calls wait");
            }
            b.state = BreakerState::Open;
            b.opened = Instant::now();
            self.metrics.set_breaker(BreakerState::Open);
        }
    }

    /// Sleeps in short slices; false when `give_up` comes first or the app is halted.
    fn sleep(&self, total: Duration, give_up: Instant) -> bool {
        let until = Instant::now() + total;
        loop {
            if self.halt.load(Ordering::Relaxed) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            if Instant::now() + left > give_up {
                std::thread::sleep(give_up.saturating_duration_since(Instant::now()));
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}
