//! From alerts to the workflow: `mysimbdp trigger` reads the tenants' alerts topics (read
//! committed) and starts one run of the Airflow DAG per alert, with a run id derived from the
//! alert's id, so Airflow itself refuses a second run of the same alert. An alert's offset is
//! committed only once Airflow has the run: while Airflow is down the trigger retries (with
//! back-off, shown by its status endpoint) and no alert is lost; one seen again after a crash
//! finds its run there and is not doubled.

mod airflow;
mod settings;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use serde::Serialize;
use serde_json::{json, Value};

pub use airflow::{run_id_of, Airflow, AirflowError, Triggered};
pub use settings::{SettingsError, TenantContact, TriggerSettings, WorkflowConfig};

/// The longest wait between two attempts while Airflow is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the trigger has done, served as JSON by its status endpoint.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Status {
    /// Runs created.
    pub triggered: u64,
    /// Alerts whose run existed already (seen again after a restart).
    pub already_triggered: u64,
    /// Records that were not alerts of a configured tenant, skipped with a warning.
    pub skipped: u64,
    /// The alert waiting for Airflow, if any.
    pub waiting: Option<Waiting>,
    /// The last alerts triggered, newest last (at most 20): alert id and run id.
    pub recent: Vec<(String, String)>,
}

/// The trigger's status, shared with what shows it: its own endpoint and, when the platform
/// runs the trigger, the admin API.
pub type SharedStatus = Arc<Mutex<Status>>;

impl Status {
    /// What a tenant may see: its own apps' alerts (their ids start with `<tenant>.`), without
    /// the counts that cover every tenant.
    pub fn of_tenant(&self, tenant: &str) -> Value {
        let prefix = format!("{tenant}.");
        let own = |alert_id: &str| alert_id.starts_with(&prefix);
        json!({
            "waiting": self.waiting.as_ref().filter(|w| own(&w.alert_id)),
            "recent": self.recent.iter().filter(|(alert, _)| own(alert)).collect::<Vec<_>>(),
        })
    }
}

/// An alert whose trigger failed and is being retried.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub alert_id: String,
    pub run_id: String,
    pub attempts: u64,
    pub last_error: String,
}

/// The DAG run's `conf` for an alert of `tenant`.
fn conf_of(alert: &Value, tenant: &TenantContact) -> Option<Value> {
    let key = alert.get("key")?.as_str()?;
    Some(json!({
        "alert": alert,
        "tenant": tenant.id,
        "products": [key],
        "from": tenant.history_from,
        "contact": tenant.contact,
        "webhook": tenant.webhook,
    }))
}

/// Serves `GET /status` on `listen` from a thread: the JSON of `status`.
fn serve_status(listen: &str, status: SharedStatus) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    std::thread::Builder::new()
        .name("trigger-status".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let body = status
                    .lock()
                    .map(|s| serde_json::to_string(&*s).unwrap_or_default())
                    .unwrap_or_default();
                let (code, body) = if line.starts_with("GET /status ") {
                    ("200 OK", body)
                } else {
                    ("404 Not Found", "{\"error\":\"GET /status only\"}".to_owned())
                };
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(())
}

/// Why the trigger stopped.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("Kafka at {bootstrap}: {doing}: {reason}")]
    Kafka {
        bootstrap: String,
        doing: String,
        reason: String,
    },
    #[error("serving the status on {listen}: {reason}")]
    Status { listen: String, reason: String },
}

/// Runs until the process is stopped: every alert of the configured tenants, in order per
/// partition, becomes one DAG run.
pub fn run(settings: TriggerSettings, status: SharedStatus) -> Result<(), TriggerError> {
    let kafka = |doing: &str, e: rdkafka::error::KafkaError| TriggerError::Kafka {
        bootstrap: settings.kafka.bootstrap.clone(),
        doing: doing.to_owned(),
        reason: e.to_string(),
    };
    serve_status(&settings.status_listen, status.clone()).map_err(|e| TriggerError::Status {
        listen: settings.status_listen.clone(),
        reason: e.to_string(),
    })?;
    let consumer: BaseConsumer = settings
        .kafka
        .client_config()
        .set("client.id", "mysimbdp-trigger")
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // A tenant's new app's alerts topic is found within seconds, not the default 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "2000")
        .create()
        .map_err(|e| kafka("creating a consumer", e))?;
    let patterns: Vec<String> = settings
        .tenants
        .iter()
        .map(|t| format!("^{}\\.[a-z0-9_-]+\\.alerts$", t.id))
        .collect();
    let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
    consumer
        .subscribe(&patterns)
        .map_err(|e| kafka("subscribing to the alerts topics", e))?;
    tracing::info!(tenants = settings.tenants.len(), dag = %settings.dag, "trigger started");
    let mut airflow = Airflow::new(&settings.airflow_url, &settings.user, &settings.password);
    loop {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        // No alerts topic yet (a tenant whose app has raised none) or a broker hiccup: the
        // consumer recovers by itself, so the trigger waits rather than stops.
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%error, "no alerts to read");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let tenant_id = message.topic().split('.').next().unwrap_or_default();
        let alert: Option<Value> = message
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok());
        let target = settings.tenants.iter().find(|t| t.id == tenant_id);
        let job = match (&alert, target) {
            (Some(alert), Some(tenant)) => alert
                .get("alert_id")
                .and_then(Value::as_str)
                .zip(conf_of(alert, tenant)),
            _ => None,
        };
        match job {
            None => {
                tracing::warn!(
                    topic = message.topic(),
                    offset = message.offset(),
                    "not an alert of a configured tenant: skipped"
                );
                if let Ok(mut s) = status.lock() {
                    s.skipped += 1;
                }
            }
            Some((alert_id, conf)) => {
                let run_id = run_id_of(alert_id);
                let outcome = trigger_until_done(
                    &mut airflow,
                    &settings.dag,
                    alert_id,
                    &run_id,
                    &conf,
                    &status,
                );
                tracing::info!(tenant = tenant_id, alert = alert_id, run = %run_id, ?outcome, "alert triggered");
                if let Ok(mut s) = status.lock() {
                    match outcome {
                        Triggered::Created => s.triggered += 1,
                        Triggered::AlreadyThere => s.already_triggered += 1,
                    }
                    s.recent.push((alert_id.to_owned(), run_id.clone()));
                    let excess = s.recent.len().saturating_sub(20);
                    s.recent.drain(..excess);
                }
            }
        }
        consumer
            .commit_message(&message, CommitMode::Sync)
            .map_err(|e| kafka("committing an alert's offset", e))?;
    }
}

/// Tries until Airflow has the run, waiting longer after each failure (up to [`MAX_BACKOFF`]).
fn trigger_until_done(
    airflow: &mut Airflow,
    dag: &str,
    alert_id: &str,
    run_id: &str,
    conf: &Value,
    status: &Mutex<Status>,
) -> Triggered {
    let mut backoff = Duration::from_millis(500);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match airflow.trigger(dag, run_id, conf) {
            Ok(done) => {
                if let Ok(mut s) = status.lock() {
                    s.waiting = None;
                }
                return done;
            }
            Err(error) => {
                tracing::warn!(alert = alert_id, attempts, %error, retry_in = ?backoff, "trigger failed, retrying");
                if let Ok(mut s) = status.lock() {
                    s.waiting = Some(Waiting {
                        alert_id: alert_id.to_owned(),
                        run_id: run_id.to_owned(),
                        attempts,
                        last_error: error.to_string(),
                    });
                }
                let until = Instant::now() + backoff;
                while Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(100));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
