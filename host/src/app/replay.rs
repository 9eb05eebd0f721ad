//! An app run in process over records held in memory, through the platform's own processor
//! (decode → event time → windows → app → emit) with no Kafka or Cassandra: what
//! `mysimbdp app test` shows a tenant before anything is deployed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admin::metrics::AppMetrics;
pub use crate::model::Value;
use crate::plugin::{CompiledApp, PluginError};
use crate::sink::{cell, Rejected};
use crate::time::EventTime;
use crate::window::Window;

use super::processor::{Message, Processor, Quotas};
use crate::sink::Output;

/// One input record as Kafka would deliver it; `line` says where it came from.
#[derive(Debug, Clone)]
pub struct Record {
    /// The line of the input file (1-based), shown with every rejection.
    pub line: usize,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// The Kafka timestamp, ms: the event time of an app that reads ingestion time.
    pub timestamp: Option<i64>,
}

/// How a replay runs: the same batch size, quotas and failure budget as the platform.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    pub batch_max: usize,
    pub quotas: Quotas,
    /// Plugin failures after which the platform would stop the app.
    pub max_failures: usize,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self {
            batch_max: 4096,
            quotas: Quotas::default(),
            max_failures: 3,
        }
    }
}

/// The row the results table would hold for one (key, window) at the end of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub window: Window,
    /// In the order of the app's declared outputs.
    pub values: Vec<Value>,
    pub closed: bool,
}

/// A record the platform would send to the late or dead-letter topic, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: usize,
    pub reason: String,
}

/// Everything one replay produced.
#[derive(Debug, Default)]
pub struct Replay {
    /// One per (key, window), ordered by key then window start.
    pub rows: Vec<Row>,
    pub late: Vec<Rejection>,
    pub dead_letters: Vec<Rejection>,
    /// Records the app failed on, each quarantined alone as the platform does.
    pub quarantined: Vec<Rejection>,
    /// Why the platform would have stopped the app, when it would have.
    pub stopped: Option<String>,
}

/// A plugin failure, with the index of the record it failed on when one record was at fault.
struct Failed {
    at: Option<usize>,
    error: PluginError,
}

/// Runs the records through a fresh instance of the app; a record the app fails on is
/// quarantined and the replay starts again without it, as the platform replays from a checkpoint.
pub fn replay(
    app: &CompiledApp,
    records: &[Record],
    settings: &ReplaySettings,
) -> Result<Replay, PluginError> {
    let mut skipped: HashSet<usize> = HashSet::new();
    let mut quarantined = Vec::new();
    let mut batch = settings.batch_max.max(1);
    loop {
        match run_once(app, records, &skipped, batch, settings.quotas)? {
            Ok(mut replay) => {
                quarantined.sort_by_key(|q: &Rejection| q.line);
                replay.quarantined = quarantined;
                return Ok(replay);
            }
            Err(Failed {
                at: Some(at),
                error,
            }) if batch == 1 => {
                tracing::warn!(app = %app.spec.name, line = records[at].line, %error, "the app failed on a record");
                skipped.insert(at);
                quarantined.push(Rejection {
                    line: records[at].line,
                    reason: format!("quarantined: the app failed on this record: {error}"),
                });
                if quarantined.len() >= settings.max_failures {
                    return Ok(Replay {
                        quarantined,
                        stopped: Some(format!(
                            "the platform would stop the app after {} failures ([limits] max_failures); the last: {error}",
                            settings.max_failures
                        )),
                        ..Replay::default()
                    });
                }
            }
            // Replayed one record at a time, the record at fault shows itself.
            Err(Failed { at: Some(_), .. }) => batch = 1,
            Err(Failed { at: None, error }) => {
                return Ok(Replay {
                    quarantined,
                    stopped: Some(format!("the app failed closing its windows: {error}")),
                    ..Replay::default()
                })
            }
        }
    }
}

/// One pass over the records; the outer error is an instance that cannot even start.
fn run_once(
    app: &CompiledApp,
    records: &[Record],
    skipped: &HashSet<usize>,
    batch: usize,
    quotas: Quotas,
) -> Result<Result<Replay, Failed>, PluginError> {
    let now = Instant::now();
    let instance = app.instantiate()?;
    let metrics = Arc::new(AppMetrics::default());
    let mut processor = Processor::new(
        app.spec.clone(),
        instance,
        metrics,
        Duration::from_secs(3600),
        now,
    )
    .with_quotas(quotas);
    processor.watermarks_mut().assign(0, now);
    let mut out = Output::default();
    let mut replay = Replay::default();
    let mut rows: BTreeMap<(String, Window), Row> = BTreeMap::new();
    let kept: Vec<usize> = (0..records.len())
        .filter(|i| !skipped.contains(i))
        .collect();
    for chunk in kept.chunks(batch) {
        let messages: Vec<Message<'_>> = chunk
            .iter()
            .map(|&i| {
                let r = &records[i];
                Message {
                    topic: "input",
                    partition: 0,
                    offset: r.line as i64,
                    key: r.key.as_deref(),
                    payload: Some(&r.payload),
                    timestamp: r.timestamp,
                }
            })
            .collect();
        let at = Some(chunk[0]);
        if let Err(error) = processor.process(&messages, now, &mut out) {
            return Ok(Err(Failed { at, error }));
        }
        if let Err(error) = processor.tick(now, &mut out) {
            return Ok(Err(Failed { at, error }));
        }
        collect(&mut out, &mut replay, &mut rows);
    }
    if let Err(error) = processor.finish(&mut out) {
        return Ok(Err(Failed { at: None, error }));
    }
    collect(&mut out, &mut replay, &mut rows);
    replay.rows = rows.into_values().collect();
    Ok(Ok(replay))
}

/// Moves one step's output into the replay: rows upserted by (key, window), the last one kept,
/// as Cassandra keeps it.
fn collect(out: &mut Output, replay: &mut Replay, rows: &mut BTreeMap<(String, Window), Row>) {
    let line = |r: Rejected| Rejection {
        line: r
            .source
            .rsplit('@')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0),
        reason: r.reason,
    };
    replay.late.extend(out.late.drain(..).map(line));
    replay
        .dead_letters
        .extend(out.dead_letters.drain(..).map(line));
    for emitted in out.emitted.drain(..) {
        for (i, (key, window)) in emitted.windows.iter().enumerate() {
            let values = emitted
                .outputs
                .columns
                .iter()
                .filter_map(|c| cell(c, i).map(Value::from))
                .collect();
            rows.insert(
                (key.clone(), *window),
                Row {
                    key: key.clone(),
                    window: *window,
                    values,
                    closed: emitted.closed,
                },
            );
        }
    }
}

/// The event time the app would read from a record, for replaying a file in event-time order;
/// `None` when the record would not decode.
pub fn event_time(decoder: &mut crate::source::Decoder, record: &Record) -> Option<EventTime> {
    let ingestion = EventTime::from_millis(record.timestamp.unwrap_or(0));
    let decoded = decoder.decode(&record.payload, ingestion).ok()?;
    decoder.discard_last();
    Some(decoded.time)
}
