//! The enrich stage of one app: a decoded batch's sent fields go to the service in requests of
//! the app's batch size, as tasks on the platform's async runtime, at most `max_in_flight` at
//! once (the client's semaphore). `submit` returns at once with the batch's calls in flight;
//! the app's worker goes on (reading Kafka while the pipeline has room, answering operators,
//! closing windows the waiting records cannot reach) and fills the returned columns once every
//! call of the batch is answered (`complete`). A service that cannot be reached is called again
//! with backoff until it answers; meanwhile the pipeline stays full, nothing more is read, and
//! the input waits in Kafka.
//!
//! On a replay (after a crash or a plugin failure) the records are enriched again: the service
//! is expected to be deterministic, like the VADER model, so the replay sees the same answers;
//! saving answers in checkpoints would cost a write per record for nothing.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use super::manifest::{EnrichManifest, OnFailure, Plan, Value};
use super::metrics::EnrichMetrics;
use super::service::{Outcome, ServiceClient, Services};
use super::EnrichError;
use crate::plugin::AppSpec;
use crate::plugin::{Batch, Column};

/// The calls of one batch: rows `start..end` each, answered by a task on the runtime. Dropped
/// (a rebuild, a stop), it aborts the calls still running.
pub struct InFlight {
    calls: Vec<Call>,
}

/// One request of a batch: its rows, where its task leaves the outcome, and the task.
struct Call {
    start: usize,
    end: usize,
    outcome: Arc<Mutex<Option<Outcome>>>,
    task: AbortHandle,
}

impl Call {
    fn answered(&self) -> bool {
        self.outcome.lock().map_or(true, |o| o.is_some())
    }
}

impl InFlight {
    /// Whether every call of the batch has its outcome.
    pub fn ready(&self) -> bool {
        self.calls.iter().all(Call::answered)
    }

    /// Calls not answered yet.
    pub fn unanswered(&self) -> usize {
        self.calls.iter().filter(|call| !call.answered()).count()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for call in &self.calls {
            call.task.abort();
        }
    }
}

/// A call's task leaves its outcome here and only then wakes the worker, so that a woken worker
/// finds it. A task that ends without one (it panicked) leaves a refusal, so that its batch is
/// never waited for in vain.
struct Answer {
    outcome: Arc<Mutex<Option<Outcome>>>,
    done: Sender<()>,
}

impl Answer {
    fn give(self, outcome: Outcome) {
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(outcome);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.outcome.lock() {
            slot.get_or_insert_with(|| Outcome::Refused("the call was lost".into()));
        }
        let _ = self.done.send(());
    }
}

/// The enrich stage of one app.
pub struct Enricher {
    plan: Plan,
    client: Arc<ServiceClient>,
    metrics: Arc<EnrichMetrics>,
    runtime: Handle,
    /// Each call's task says here that it is done: the worker sleeps on it when it has nothing
    /// else to do.
    done: Sender<()>,
    answered: Receiver<()>,
}

impl Enricher {
    pub fn new(
        plan: Plan,
        client: ServiceClient,
        metrics: Arc<EnrichMetrics>,
        runtime: Handle,
    ) -> Self {
        let (done, answered) = channel();
        Self {
            plan,
            client: Arc::new(client),
            metrics,
            runtime,
            done,
            answered,
        }
    }

    /// The stage `manifest` declares for `spec` of `tenant`, checked against the operator's
    /// services and their allowlists: the same checks at a start and a hot swap.
    pub fn build(
        tenant: &str,
        spec: &AppSpec,
        manifest: &EnrichManifest,
        services: &Services,
        metrics: Arc<EnrichMetrics>,
        runtime: Handle,
    ) -> Result<Self, EnrichError> {
        let plan = manifest.plan(spec)?;
        let service = services
            .get(&plan.service)
            .ok_or_else(|| EnrichError::UnknownService {
                app: spec.name.to_string(),
                service: plan.service.clone(),
            })?;
        if !service.tenants.iter().any(|t| t == tenant) {
            return Err(EnrichError::NotAllowed {
                tenant: tenant.to_owned(),
                service: plan.service.clone(),
            });
        }
        let client = ServiceClient::new(&plan.service, service.clone(), metrics.clone())?;
        Ok(Self::new(plan, client, metrics, runtime))
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Requests one app may have in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.client.max_in_flight()
    }

    /// Sends `batch` to the service in requests of the app's batch size and returns at once;
    /// the requests wait for a slot of `max_in_flight` on the runtime, not here.
    pub fn submit(&self, batch: &Batch) -> InFlight {
        let rows = batch.rows as usize;
        let size = self.plan.batch_size.max(1);
        let calls = (0..rows.div_ceil(size))
            .map(|c| {
                let (start, end) = (c * size, ((c + 1) * size).min(rows));
                let body = Bytes::from(self.request(batch, start, end));
                let outcome = Arc::new(Mutex::new(None));
                let answer = Answer {
                    outcome: outcome.clone(),
                    done: self.done.clone(),
                };
                let client = self.client.clone();
                let task = self.runtime.spawn(async move {
                    answer.give(client.call(body, end - start).await);
                });
                Call {
                    start,
                    end,
                    outcome,
                    task: task.abort_handle(),
                }
            })
            .collect();
        InFlight { calls }
    }

    /// Waits at most `timeout` for any call to be answered.
    pub fn wait(&self, timeout: Duration) {
        if self.answered.recv_timeout(timeout).is_ok() {
            while self.answered.try_recv().is_ok() {}
        }
    }

    /// Fills the returned columns of `batch` from its answered calls (see [`InFlight::ready`]);
    /// per row, the reason it must go to the dead letters instead of the app, if it must.
    pub fn complete(&self, mut calls: InFlight, batch: &mut Batch) -> Vec<Option<String>> {
        let mut dead = vec![None; batch.rows as usize];
        for call in &mut calls.calls {
            let (start, end) = (call.start, call.end);
            let outcome = call
                .outcome
                .lock()
                .ok()
                .and_then(|mut slot| slot.take())
                .unwrap_or_else(|| Outcome::Refused("the call was not answered".into()));
            match outcome {
                Outcome::Answered(results) => {
                    for (offset, result) in results.iter().enumerate() {
                        if let Err(reason) = self.fill(batch, start + offset, Some(result)) {
                            self.failed(batch, start + offset, reason, &mut dead);
                        }
                    }
                }
                Outcome::Refused(reason) => {
                    for row in start..end {
                        self.failed(batch, row, reason.clone(), &mut dead);
                    }
                }
            }
        }
        dead
    }

    /// The JSON request for rows `start..end`: one array per sent field.
    fn request(&self, batch: &Batch, start: usize, end: usize) -> Vec<u8> {
        let mut doc = serde_json::Map::new();
        for (name, input) in &self.plan.sends {
            let values: Vec<serde_json::Value> = match &batch.columns[*input] {
                Column::Texts(v) => v[start..end].iter().map(|t| t.as_str().into()).collect(),
                Column::Integers(v) | Column::Timestamps(v) => {
                    v[start..end].iter().map(|&i| i.into()).collect()
                }
                Column::Doubles(v) => v[start..end].iter().map(|&d| d.into()).collect(),
                Column::Booleans(v) => v[start..end].iter().map(|&b| b.into()).collect(),
            };
            doc.insert(name.clone(), values.into());
        }
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    /// Writes one result's returned fields into `row`, or the defaults when `result` is None;
    /// an error when a field is missing or of another type.
    fn fill(
        &self,
        batch: &mut Batch,
        row: usize,
        result: Option<&serde_json::Value>,
    ) -> Result<(), String> {
        let mut values = Vec::with_capacity(self.plan.returns.len());
        for r in &self.plan.returns {
            let value = match result {
                Some(result) => {
                    let found = result.get(&r.from).ok_or_else(|| {
                        format!("the service's result for this record has no `{}`", r.from)
                    })?;
                    Value::from_json(r.kind, found).ok_or_else(|| {
                        format!(
                            "the service's `{}` for this record is {found}, not a {:?}",
                            r.from, r.kind
                        )
                    })?
                }
                None => r.default.clone().unwrap_or_else(|| Value::zero(r.kind)),
            };
            values.push((r.input, value));
        }
        if let Some(marker) = self.plan.marker {
            values.push((marker, Value::Boolean(result.is_none())));
        }
        for (input, value) in values {
            set(&mut batch.columns[input], row, value);
        }
        Ok(())
    }

    /// Applies the app's failure policy to `row`.
    fn failed(&self, batch: &mut Batch, row: usize, reason: String, dead: &mut [Option<String>]) {
        match self.plan.on_failure {
            OnFailure::DeadLetter => {
                self.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
                dead[row] = Some(format!(
                    "enrichment by service `{}` failed: {reason}",
                    self.client.name
                ));
            }
            OnFailure::Default => {
                self.metrics.defaulted.fetch_add(1, Ordering::Relaxed);
                let _ = self.fill(batch, row, None);
            }
        }
    }
}

fn set(column: &mut Column, row: usize, value: Value) {
    match (column, value) {
        (Column::Doubles(c), Value::Double(v)) => c[row] = v,
        (Column::Integers(c), Value::Integer(v)) => c[row] = v,
        (Column::Booleans(c), Value::Boolean(v)) => c[row] = v,
        (Column::Texts(c), Value::Text(v)) => c[row] = v,
        // The plan checked each returned field's type against the app's column.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::manifest::{Kind, Returned};
    use crate::enrich::metrics::BreakerState;
    use crate::enrich::service::ServiceConfig;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Condvar, Mutex, OnceLock};
    use std::time::Instant;

    /// What the fake service counts, and the gate it holds answers at while closed.
    #[derive(Default)]
    struct Fake {
        requests: AtomicUsize,
        in_progress: AtomicUsize,
        most_at_once: AtomicUsize,
        closed: Mutex<bool>,
        opened: Condvar,
    }

    impl Fake {
        fn close(&self) {
            *self.closed.lock().unwrap() = true;
        }
        fn open(&self) {
            *self.closed.lock().unwrap() = false;
            self.opened.notify_all();
        }
        fn pass(&self) {
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
        }
    }

    fn runtime() -> Handle {
        static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
            })
            .handle()
            .clone()
    }

    /// A service on a loopback port answering each text's length as its sentiment, or 500
    /// for a batch holding "boom"; returns its URL and what it counts.
    fn fake_service() -> (String, Arc<Fake>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let fake = Arc::new(Fake::default());
        let counter = fake.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let fake = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut length = 0;
                        loop {
                            let mut header = String::new();
                            reader.read_line(&mut header).unwrap();
                            if header.trim().is_empty() {
                                break;
                            }
                            if let Some(v) =
                                header.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        fake.requests.fetch_add(1, Ordering::SeqCst);
                        let now = fake.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
                        fake.most_at_once.fetch_max(now, Ordering::SeqCst);
                        fake.pass();
                        fake.in_progress.fetch_sub(1, Ordering::SeqCst);
                        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let texts = doc["texts"].as_array().unwrap();
                        let (status, answer) = if texts.iter().any(|t| t == "boom") {
                            (500, "{}".to_owned())
                        } else {
                            let results: Vec<_> = texts
                                .iter()
                                .map(
                                    |t| serde_json::json!({"sentiment": t.as_str().unwrap().len()}),
                                )
                                .collect();
                            (200, serde_json::json!({ "results": results }).to_string())
                        };
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n",
                            answer.len()
                        );
                        writer.write_all(head.as_bytes()).unwrap();
                        writer.write_all(answer.as_bytes()).unwrap();
                    }
                });
            }
        });
        (url, fake)
    }

    fn enricher(url: &str, batch_size: usize, on_failure: OnFailure) -> Enricher {
        let config: ServiceConfig = toml::from_str(&format!(
            "url = \"{url}\"\ntenants = []\nretries = 1\nbackoff_ms = 1\nbreaker_failures = 2\nbreaker_open_ms = 100\nmax_in_flight = 2"
        ))
        .unwrap();
        let metrics = Arc::new(EnrichMetrics::default());
        let client = ServiceClient::new("s", config, metrics.clone()).unwrap();
        let plan = Plan {
            service: "s".into(),
            batch_size,
            on_failure,
            sends: vec![("texts".into(), 0)],
            returns: vec![Returned {
                input: 1,
                from: "sentiment".into(),
                kind: Kind::Double,
                default: Some(Value::Double(-9.0)),
            }],
            marker: Some(2),
        };
        Enricher::new(plan, client, metrics, runtime())
    }

    /// Submits and waits for the answers, as the worker does between its other work.
    fn enrich_now(e: &Enricher, b: &mut Batch) -> Vec<Option<String>> {
        let calls = e.submit(b);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !calls.ready() {
            assert!(Instant::now() < deadline, "the calls were never answered");
            e.wait(Duration::from_millis(50));
        }
        e.complete(calls, b)
    }

    fn batch(texts: &[&str]) -> Batch {
        let n = texts.len();
        Batch {
            rows: n as u32,
            columns: vec![
                Column::Texts(texts.iter().map(|t| (*t).to_owned()).collect()),
                Column::Doubles(vec![0.0; n]),
                Column::Booleans(vec![false; n]),
            ],
        }
    }

    fn doubles(batch: &Batch) -> Vec<f64> {
        match &batch.columns[1] {
            Column::Doubles(v) => v.clone(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn requests_of_the_batch_size_fill_the_rows_in_order() {
        let (url, fake) = fake_service();
        let e = enricher(&url, 3, OnFailure::DeadLetter);
        let texts = [
            "a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g", "hh", "iii", "jjjj",
        ];
        let mut b = batch(&texts);
        let dead = enrich_now(&e, &mut b);
        assert!(dead.iter().all(Option::is_none));
        let lengths: Vec<f64> = texts.iter().map(|t| t.len() as f64).collect();
        assert_eq!(doubles(&b), lengths);
        assert_eq!(fake.requests.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn submit_returns_at_once_and_at_most_max_in_flight_calls_reach_the_service() {
        let (url, fake) = fake_service();
        fake.close();
        let e = enricher(&url, 1, OnFailure::DeadLetter);
        let texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"];
        let mut b = batch(&texts);
        // The service holds every answer: submit must not wait for one.
        let calls = e.submit(&b);
        let deadline = Instant::now() + Duration::from_secs(30);
        while fake.in_progress.load(Ordering::SeqCst) < 2 {
            assert!(
                Instant::now() < deadline,
                "the calls never reached the service"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!calls.ready());
        assert_eq!(calls.unanswered(), texts.len());
        // Two slots (max_in_flight = 2): the other four wait on the runtime, not in the service.
        assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
        fake.open();
        while !calls.ready() {
            assert!(Instant::now() < deadline, "the calls were never answered");
            e.wait(Duration::from_millis(50));
        }
        let dead = e.complete(calls, &mut b);
        assert!(dead.iter().all(Option::is_none));
        let lengths: Vec<f64> = texts.iter().map(|t| t.len() as f64).collect();
        assert_eq!(doubles(&b), lengths);
        assert_eq!(fake.requests.load(Ordering::SeqCst), texts.len());
        assert_eq!(fake.most_at_once.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_refused_request_follows_the_policy_for_its_rows_only() {
        let (url, _) = fake_service();
        let mut b = batch(&["a", "boom", "ccc", "dd"]);
        let dead = enrich_now(&enricher(&url, 2, OnFailure::DeadLetter), &mut b);
        assert!(dead[0].as_deref().is_some_and(|r| r.contains("HTTP 500")));
        assert!(dead[1].is_some() && dead[2].is_none() && dead[3].is_none());
        let mut b = batch(&["a", "boom", "ccc", "dd"]);
        let dead = enrich_now(&enricher(&url, 2, OnFailure::Default), &mut b);
        assert!(dead.iter().all(Option::is_none));
        assert_eq!(doubles(&b), vec![-9.0, -9.0, 3.0, 2.0]);
        assert!(matches!(&b.columns[2], Column::Booleans(v) if *v == [true, true, false, false]));
    }

    #[test]
    fn an_unreachable_service_keeps_the_calls_waiting_and_opens_the_breaker() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = enricher(
            &format!("http://127.0.0.1:{port}/v1"),
            8,
            OnFailure::DeadLetter,
        );
        let b = batch(&["a", "b"]);
        let calls = e.submit(&b);
        let deadline = Instant::now() + Duration::from_secs(30);
        while e.metrics.breaker() == BreakerState::Closed {
            assert!(Instant::now() < deadline, "the breaker never opened");
            e.wait(Duration::from_millis(20));
        }
        // Nothing is given up: the call is still waiting for the service.
        assert!(!calls.ready());
        assert_eq!(doubles(&b), vec![0.0, 0.0]);
    }

    #[test]
    fn the_stage_is_built_only_for_a_defined_service_the_tenant_may_call() {
        let manifest = EnrichManifest::parse(
            "service = \"sentiment\"\non_failure = \"dead-letter\"\n[send]\ntexts = \"review_body\"\n[receive]\nsentiment = { type = \"double\" }\n",
        )
        .unwrap();
        let spec = crate::enrich::manifest::tests::spec();
        let build = |services: &Services, tenant: &str| {
            Enricher::build(
                tenant,
                &spec,
                &manifest,
                services,
                Arc::new(EnrichMetrics::default()),
                runtime(),
            )
            .map(|_| ())
        };
        let mut services = Services::new();
        assert!(matches!(
            build(&services, "acme"),
            Err(EnrichError::UnknownService { .. })
        ));
        let config: ServiceConfig =
            toml::from_str("url = \"http://127.0.0.1:9/v1\"\ntenants = [\"acme\"]").unwrap();
        services.insert("sentiment".into(), config);
        assert!(matches!(
            build(&services, "other"),
            Err(EnrichError::NotAllowed { .. })
        ));
        assert!(build(&services, "acme").is_ok());
    }
}
