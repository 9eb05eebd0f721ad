//! The services an operator lets apps call (`[services.<name>]` in the platform's config), and
//! how one batch is sent to one, asynchronously on the platform's runtime: kept-alive
//! connections, at most `max_in_flight` requests at once, a timeout, retries with exponential
//! backoff, and a circuit breaker that stops calling a service that is down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::metrics::{BreakerState, EnrichMetrics};
use super::EnrichError;

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
        if !self.url.starts_with("http://") || self.url.parse::<hyper::Uri>().is_err() {
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

/// What became of one request.
#[derive(Debug)]
pub enum Outcome {
    /// The results, one per record.
    Answered(Vec<serde_json::Value>),
    /// Answered wrongly more than `retries` times: the app's `on_failure` applies.
    Refused(String),
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

/// One app's connection to one service: an async HTTP/1.1 client on the platform's runtime,
/// its kept-alive connections, and a semaphore that bounds the requests in flight.
pub struct ServiceClient {
    pub name: String,
    config: ServiceConfig,
    uri: hyper::Uri,
    http: Client<HttpConnector, Full<Bytes>>,
    /// One permit per request allowed in flight (`max_in_flight`).
    slots: Semaphore,
    breaker: Mutex<Breaker>,
    metrics: Arc<EnrichMetrics>,
}

/// The largest answer read from a service.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// How long a call that waits for a half-open breaker's probe sleeps before looking again.
const PROBE_WAIT: Duration = Duration::from_millis(20);

impl ServiceClient {
    /// A client for the service `name`; its URL must parse (`ServiceConfig::problem` checks
    /// it when the config is read).
    pub fn new(
        name: &str,
        config: ServiceConfig,
        metrics: Arc<EnrichMetrics>,
    ) -> Result<Self, EnrichError> {
        let uri: hyper::Uri = config.url.parse().map_err(|e| EnrichError::Url {
            service: name.to_owned(),
            reason: format!("{e}"),
        })?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(config.timeout_ms)));
        // Small requests and answers: Nagle's delay would add tens of ms to each call.
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.max_in_flight.max(1))
            .build(connector);
        metrics.set_service(name);
        metrics.set_breaker(BreakerState::Closed);
        Ok(Self {
            name: name.to_owned(),
            uri,
            http,
            slots: Semaphore::new(config.max_in_flight.max(1)),
            breaker: Mutex::new(Breaker {
                state: BreakerState::Closed,
                failures: 0,
                opened: Instant::now(),
            }),
            config,
            metrics,
        })
    }

    pub fn max_in_flight(&self) -> usize {
        self.config.max_in_flight.max(1)
    }

    /// Sends one batch until it is answered well or answered wrongly more than `retries`
    /// times. A service that cannot be reached is called again with backoff for as long as it
    /// takes: the records wait (the caller drops the future to give up).
    pub async fn call(&self, body: Bytes, rows: usize) -> Outcome {
        let mut wrong = 0;
        let mut delay = Duration::from_millis(self.config.backoff_ms);
        loop {
            self.admit().await;
            let result = match self.slots.acquire().await {
                Ok(_slot) => {
                    self.metrics.calls(rows);
                    let started = Instant::now();
                    let result = self.once(body.clone(), rows).await;
                    self.metrics.latency.observe(started.elapsed());
                    result
                }
                Err(closed) => Err(Failure::Unreachable(closed.to_string())),
            };
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
                    tracing::warn!(service = %self.name, %reason, "service unreachable; the records wait");
                }
            }
            self.metrics.retry();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(self.config.max_backoff_ms));
        }
    }

    /// One request and its answer, within `timeout_ms`.
    async fn once(&self, body: Bytes, rows: usize) -> Result<Vec<serde_json::Value>, Failure> {
        let request = hyper::Request::post(self.uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Failure::Answered(format!("building the request: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| Failure::Unreachable(chain(&e)))?;
            let status = response.status().as_u16();
            let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| Failure::Unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, Failure>((status, answer))
        };
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let (status, answer) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| {
                Failure::Unreachable(format!("no answer within {} ms", self.config.timeout_ms))
            })??;
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

    /// Waits while the breaker is open; an open breaker lets one probe through once
    /// `breaker_open_ms` has passed, and the other calls wait for its outcome.
    async fn admit(&self) {
        loop {
            let wait = {
                let Ok(mut b) = self.breaker.lock() else {
                    return;
                };
                let open_for = Duration::from_millis(self.config.breaker_open_ms);
                match b.state {
                    BreakerState::Closed => return,
                    BreakerState::Open if b.opened.elapsed() >= open_for => {
                        b.state = BreakerState::HalfOpen;
                        self.metrics.set_breaker(BreakerState::HalfOpen);
                        return;
                    }
                    BreakerState::Open => open_for.saturating_sub(b.opened.elapsed()),
                    BreakerState::HalfOpen => PROBE_WAIT,
                }
            };
            tokio::time::sleep(wait).await;
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
}

/// An error with its causes: the client's own says only "client error (Connect)".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
