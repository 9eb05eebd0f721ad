//! The enrich stage of one app: a decoded batch's sent fields go to the service in requests of
//! the app's batch size, at most `max_in_flight` at once, and the answers fill the returned
//! columns. While the service is slow the app's worker waits for it; while it cannot be
//! reached the batch is kept and sent again, and nothing more is read: the input waits in Kafka,
//! and memory holds one batch.
//!
//! On a replay (after a crash or a plugin failure) the records are enriched again: the service
//! is expected to be deterministic, like the VADER model, so the replay sees the same answers;
//! saving answers in checkpoints would cost a write per record for nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::manifest::{EnrichManifest, OnFailure, Plan, Value};
use super::metrics::EnrichMetrics;
use super::service::{Outcome, ServiceClient};
use super::EnrichError;
use crate::plugin::AppSpec;
use crate::plugin::{Batch, Column};

/// The service could not be reached (or the app is stopping): the batch was not enriched, is
/// kept, and must not be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting;

/// The enrich stage of one app.
pub struct Enricher {
    manifest: EnrichManifest,
    plan: Plan,
    client: ServiceClient,
    metrics: Arc<EnrichMetrics>,
}

impl Enricher {
    pub fn new(
        manifest: EnrichManifest,
        plan: Plan,
        client: ServiceClient,
        metrics: Arc<EnrichMetrics>,
    ) -> Self {
        Self {
            manifest,
            plan,
            client,
            metrics,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The manifest checked against a new version of the app (a hot swap): its fields may
    /// have moved or changed type. Same service: the client and its breaker stay.
    pub fn plan_for(&self, spec: &AppSpec) -> Result<Plan, EnrichError> {
        self.manifest.plan(spec)
    }

    /// Follows a new version of the app, with a plan from [`Enricher::plan_for`].
    pub fn set_plan(&mut self, plan: Plan) {
        self.plan = plan;
    }

    /// Fills the returned columns of `batch`; per row, the reason it must go to the dead
    /// letters instead of the app, if it must.
    pub fn enrich(&self, batch: &mut Batch) -> Result<Vec<Option<String>>, Waiting> {
        let rows = batch.rows as usize;
        let size = self.plan.batch_size;
        let chunks = rows.div_ceil(size);
        let bodies: Vec<Vec<u8>> = (0..chunks)
            .map(|c| self.request(batch, c * size, ((c + 1) * size).min(rows)))
            .collect();
        let answers = self.call_all(&bodies, rows);
        if answers
            .iter()
            .any(|a| matches!(a, None | Some(Outcome::Waiting)))
        {
            return Err(Waiting);
        }
        let mut dead = vec![None; rows];
        for (c, answer) in answers.into_iter().enumerate() {
            let (start, end) = (c * size, ((c + 1) * size).min(rows));
            match answer.unwrap_or(Outcome::Waiting) {
                Outcome::Waiting => return Err(Waiting),
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
        Ok(dead)
    }

    /// The requests of a batch, at most `max_in_flight` at once, answers in request order.
    fn call_all(&self, bodies: &[Vec<u8>], rows: usize) -> Vec<Option<Outcome>> {
        let size = self.plan.batch_size;
        let rows_of = |c: usize| ((c + 1) * size).min(rows) - c * size;
        if bodies.len() <= 1 {
            return bodies
                .iter()
                .enumerate()
                .map(|(c, b)| Some(self.client.call(b, rows_of(c))))
                .collect();
        }
        let next = AtomicUsize::new(0);
        let workers = self.client.max_in_flight().min(bodies.len());
        let mut answers: Vec<_> = (0..bodies.len()).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let c = next.fetch_add(1, Ordering::Relaxed);
                            if c >= bodies.len() {
                                return done;
                            }
                            done.push((c, self.client.call(&bodies[c], rows_of(c))));
                        }
                    })
                })
                .collect();
            for handle in handles {
                if let Ok(done) = handle.join() {
                    for (c, answer) in done {
                        answers[c] = Some(answer);
                    }
                }
            }
        });
        answers
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
    use std::sync::atomic::AtomicBool;

    /// A service on a loopback port answering each text's length as its sentiment, or 500
    /// for a batch holding "boom"; returns its base URL and its request counter.
    fn fake_service() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
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
                        counter.fetch_add(1, Ordering::Relaxed);
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
        (url, requests)
    }

    fn enricher(url: &str, batch_size: usize, on_failure: OnFailure) -> Enricher {
        let config: ServiceConfig = toml::from_str(&format!(
            "url = \"{url}\"\ntenants = []\nretries = 1\nbackoff_ms = 1\nbreaker_failures = 2\nbreaker_open_ms = 100\nmax_in_flight = 2"
        ))
        .unwrap();
        let metrics = Arc::new(EnrichMetrics::default());
        let client = ServiceClient::new(
            "s",
            config,
            metrics.clone(),
            Arc::new(AtomicBool::new(false)),
        );
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
        let manifest = EnrichManifest::parse(
            "service = \"s\"\non_failure = \"dead-letter\"\n[send]\nt = \"a\"\n[receive]\nb = { type = \"double\" }\n",
        )
        .unwrap();
        Enricher::new(manifest, plan, client, metrics)
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
        let (url, requests) = fake_service();
        let e = enricher(&url, 3, OnFailure::DeadLetter);
        let texts = [
            "a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g", "hh", "iii", "jjjj",
        ];
        let mut b = batch(&texts);
        let dead = e.enrich(&mut b).unwrap();
        assert!(dead.iter().all(Option::is_none));
        let lengths: Vec<f64> = texts.iter().map(|t| t.len() as f64).collect();
        assert_eq!(doubles(&b), lengths);
        assert_eq!(requests.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_refused_request_follows_the_policy_for_its_rows_only() {
        let (url, _) = fake_service();
        let mut b = batch(&["a", "boom", "ccc", "dd"]);
        let dead = enricher(&url, 2, OnFailure::DeadLetter)
            .enrich(&mut b)
            .unwrap();
        assert!(dead[0].as_deref().is_some_and(|r| r.contains("HTTP 500")));
        assert!(dead[1].is_some() && dead[2].is_none() && dead[3].is_none());
        let mut b = batch(&["a", "boom", "ccc", "dd"]);
        let dead = enricher(&url, 2, OnFailure::Default)
            .enrich(&mut b)
            .unwrap();
        assert!(dead.iter().all(Option::is_none));
        assert_eq!(doubles(&b), vec![-9.0, -9.0, 3.0, 2.0]);
        assert!(matches!(&b.columns[2], Column::Booleans(v) if *v == [true, true, false, false]));
    }

    #[test]
    fn an_unreachable_service_keeps_the_batch_and_opens_the_breaker() {
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
        let mut b = batch(&["a", "b"]);
        assert_eq!(e.enrich(&mut b), Err(Waiting));
        assert_eq!(doubles(&b), vec![0.0, 0.0]);
        assert_ne!(e.metrics.breaker(), BreakerState::Closed);
    }
}
