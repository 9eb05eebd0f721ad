//! Where results go: one upserted Cassandra row per (key, window), the app's results topic,
//! and the late and dead-letter topics that keep what the stream could not use.

pub mod cassandra;
mod delivery_poller;
mod fanout;
pub mod kafka;
pub mod retry;
mod table_writer;

pub use fanout::{Counts, Sinks};
pub use table_writer::TableWriter;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::plugin::{AppSpec, Batch, Column};
use crate::time::{format_rfc3339, write_rfc3339, EventTime};
use crate::window::Window;

/// What one step produced for the sinks.
#[derive(Debug, Default)]
pub struct Output {
    pub late: Vec<Rejected>,
    pub dead_letters: Vec<Rejected>,
    pub emitted: Vec<Emitted>,
    /// Sessions merged into another or whose start moved: a row written for one of them, keyed
    /// by its old start, must go (key, window as it was). Only for apps that emit updates.
    pub retracted: Vec<(Box<str>, Window)>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.late.is_empty()
            && self.dead_letters.is_empty()
            && self.emitted.is_empty()
            && self.retracted.is_empty()
    }
}

/// Output rows of one emit: row i belongs to `windows[i]`.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub windows: Vec<(String, Window)>,
    pub outputs: Batch,
    /// Whether the windows closed: no later row will change them.
    pub closed: bool,
}

impl Emitted {
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// A cheap lower bound of a row's size in any sink: its key, texts in full, 8 bytes a value.
    pub fn row_bytes(&self, row: usize) -> usize {
        let key = self.windows.get(row).map_or(0, |(key, _)| key.len());
        let values: usize = self
            .outputs
            .columns
            .iter()
            .map(|c| match cell(c, row) {
                Some(Cell::Text(t)) => t.len(),
                _ => 8,
            })
            .sum();
        key + values
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

/// A time as a JSON string (RFC 3339 holds nothing JSON must escape); it cannot fail, like
/// the other members written into a `Vec`.
fn quoted_time(buffer: &mut Vec<u8>, t: EventTime) -> serde_json::Result<()> {
    buffer.push(b'"');
    write_rfc3339(t, buffer);
    buffer.push(b'"');
    Ok(())
}

/// One output value, for sinks that write row by row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(&'a str),
    Time(i64),
}

impl From<Cell<'_>> for crate::model::Value {
    fn from(cell: Cell<'_>) -> Self {
        use crate::model::Value;
        match cell {
            Cell::Bool(v) => Value::Bool(v),
            Cell::Int(v) => Value::Int(v),
            Cell::Double(v) => Value::Double(v),
            Cell::Text(v) => Value::Text(v.to_owned()),
            Cell::Time(v) => Value::Time(v),
        }
    }
}

/// The value of a column at a row; `None` when the column is shorter (checked at emit).
pub fn cell(column: &Column, row: usize) -> Option<Cell<'_>> {
    Some(match column {
        Column::Booleans(v) => Cell::Bool(*v.get(row)?),
        Column::Integers(v) => Cell::Int(*v.get(row)?),
        Column::Doubles(v) => Cell::Double(*v.get(row)?),
        Column::Texts(v) => Cell::Text(v.get(row)?),
        Column::Timestamps(v) => Cell::Time(*v.get(row)?),
    })
}

/// How a result row reads outside the platform: a JSON object of the key, the window, the
/// outputs by name, whether the window closed and the app version that wrote it. The results
/// topic carries it, and so does the dead-letter copy of a row a sink refused.
#[derive(Debug, Clone)]
pub struct RowFormat {
    key_field: String,
    output_names: Vec<String>,
    version: String,
    table: String,
    /// The object's members in the order JSON writes them (by name, as `object`'s map does),
    /// each with its name already quoted: `json` writes a row without building the map.
    members: Vec<(String, Member)>,
}

/// Where a member of a row's JSON object takes its value from.
#[derive(Debug, Clone, Copy)]
enum Member {
    Key,
    WindowStart,
    WindowEnd,
    Output(usize),
    Final,
    Version,
}

/// A row's JSON members with their names quoted, in the order `RowFormat::object`'s map writes
/// them: inserted in its order, so a later member of the same name replaces an earlier one there
/// and here alike.
fn members(key_field: &str, output_names: &[String]) -> Vec<(String, Member)> {
    let mut members = std::collections::BTreeMap::new();
    members.insert(key_field.to_owned(), Member::Key);
    members.insert("window_start".to_owned(), Member::WindowStart);
    members.insert("window_end".to_owned(), Member::WindowEnd);
    for (i, name) in output_names.iter().enumerate() {
        members.insert(name.clone(), Member::Output(i));
    }
    members.insert("final".to_owned(), Member::Final);
    members.insert("app_version".to_owned(), Member::Version);
    members
        .into_iter()
        .map(|(name, member)| (Value::String(name).to_string(), member))
        .collect()
}

impl RowFormat {
    pub fn of(spec: &AppSpec) -> Self {
        let output_names: Vec<String> = spec.outputs.iter().map(|f| f.name.clone()).collect();
        Self {
            members: members(&spec.key_field, &output_names),
            key_field: spec.key_field.clone(),
            output_names,
            version: spec.version.clone(),
            table: spec.table.clone(),
        }
    }

    /// Row `row` of `emitted` as a JSON object.
    pub fn object(&self, emitted: &Emitted, row: usize) -> Map<String, Value> {
        let mut object = Map::new();
        let Some((key, window)) = emitted.windows.get(row) else {
            return object;
        };
        object.insert(self.key_field.clone(), Value::String(key.clone()));
        object.insert("window_start".into(), format_rfc3339(window.start).into());
        object.insert("window_end".into(), format_rfc3339(window.end).into());
        for (name, column) in self.output_names.iter().zip(&emitted.outputs.columns) {
            let value = match cell(column, row) {
                Some(Cell::Bool(b)) => Value::Bool(b),
                Some(Cell::Int(i)) => Value::from(i),
                Some(Cell::Double(d)) => Value::from(d),
                Some(Cell::Text(t)) => Value::String(t.to_owned()),
                Some(Cell::Time(t)) => format_rfc3339(EventTime::from_millis(t)).into(),
                None => Value::Null,
            };
            object.insert(name.clone(), value);
        }
        object.insert("final".into(), Value::Bool(emitted.closed));
        object.insert("app_version".into(), Value::String(self.version.clone()));
        object
    }

    /// Row `row` of `emitted` as JSON into `buffer` (cleared first): the same bytes as
    /// `object` serialized, written straight from the columns.
    pub fn json(&self, emitted: &Emitted, row: usize, buffer: &mut Vec<u8>) {
        buffer.clear();
        let Some((key, window)) = emitted.windows.get(row) else {
            return;
        };
        buffer.push(b'{');
        for (i, (name, member)) in self.members.iter().enumerate() {
            if i > 0 {
                buffer.push(b',');
            }
            buffer.extend_from_slice(name.as_bytes());
            buffer.push(b':');
            // Writing plain values into a Vec cannot fail.
            let _ = match *member {
                Member::Key => serde_json::to_writer(&mut *buffer, key),
                Member::WindowStart => quoted_time(buffer, window.start),
                Member::WindowEnd => quoted_time(buffer, window.end),
                Member::Output(c) => {
                    match emitted.outputs.columns.get(c).and_then(|c| cell(c, row)) {
                        Some(Cell::Bool(b)) => serde_json::to_writer(&mut *buffer, &b),
                        Some(Cell::Int(v)) => serde_json::to_writer(&mut *buffer, &v),
                        // As `Value::from`: a NaN or an infinity has no JSON number and is null.
                        Some(Cell::Double(d)) if d.is_finite() => {
                            serde_json::to_writer(&mut *buffer, &d)
                        }
                        Some(Cell::Double(_)) | None => serde_json::to_writer(&mut *buffer, &()),
                        Some(Cell::Text(t)) => serde_json::to_writer(&mut *buffer, t),
                        Some(Cell::Time(t)) => quoted_time(buffer, EventTime::from_millis(t)),
                    }
                }
                Member::Final => serde_json::to_writer(&mut *buffer, &emitted.closed),
                Member::Version => serde_json::to_writer(&mut *buffer, &self.version),
            };
        }
        buffer.push(b'}');
    }

    /// A retraction of the row of `key`'s `window`, as JSON.
    pub fn retraction(&self, key: &str, window: Window) -> Vec<u8> {
        let mut object = Map::new();
        object.insert(self.key_field.clone(), Value::String(key.into()));
        object.insert("window_start".into(), format_rfc3339(window.start).into());
        object.insert("window_end".into(), format_rfc3339(window.end).into());
        object.insert("retracted".into(), Value::Bool(true));
        object.insert("app_version".into(), Value::String(self.version.clone()));
        serde_json::to_vec(&object).unwrap_or_default()
    }

    /// A row no sink may hold, as a dead letter: the row as JSON, keyed by its key, with why.
    pub fn refused(&self, emitted: &Emitted, row: usize, reason: String) -> Rejected {
        let mut payload = Vec::new();
        self.json(emitted, row, &mut payload);
        let (key, window) = emitted
            .windows
            .get(row)
            .map_or((String::new(), None), |(k, w)| (k.clone(), Some(*w)));
        Rejected {
            key: Some(key.into_bytes()),
            payload,
            reason,
            source: match window {
                Some(w) => format!(
                    "result row of {} at {}",
                    self.table,
                    format_rfc3339(w.start)
                ),
                None => format!("result row of {}", self.table),
            },
        }
    }
}

/// A record the stream could not use, with why and where it came from.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: String,
    pub source: String,
}

/// A place an app's results go. The worker hands every step's output to each sink, waits for
/// them all before a checkpoint, and commits or aborts them together: a new sink is one type
/// that implements this, added to [`Sinks`].
pub trait Sink: Send {
    /// Takes one step's output; the sink may go on writing it after this returns.
    fn write(&mut self, out: &Arc<Output>) -> Result<(), SinkError>;

    /// Waits until everything written is durable; rows the sink refused for good come back,
    /// to go to the dead letters in the same attempt.
    fn flush(&mut self) -> Result<Vec<Refused>, SinkError>;

    /// Makes the attempt's outputs visible, where the sink holds them back until then.
    fn commit(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Drops what was written since the last commit, where the sink can; a sink that cannot
    /// is overwritten by the replay (upserts keyed by window).
    fn abort(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// A new build of the app took over: its outputs from now on.
    fn reopen(&mut self, spec: &AppSpec) -> Result<(), SinkError>;
}

/// A result row a sink will never hold, and why.
pub struct Refused {
    pub output: Arc<Output>,
    /// Which emit of the output, and which row of it.
    pub batch: usize,
    pub row: usize,
    pub reason: String,
}

/// A sink failed for good (or past the outage patience).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Kafka(#[from] crate::source::kafka::KafkaError),
    #[error(transparent)]
    Cassandra(#[from] cassandra::CassandraError),
    #[error("{0}")]
    Stopped(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::EventTime;

    #[test]
    fn a_row_written_straight_reads_as_its_object() {
        let output_names: Vec<String> = ["avg", "n", "final", "label", "at", "ok"]
            .into_iter()
            .map(String::from)
            .collect();
        let format = RowFormat {
            members: members("product_id", &output_names),
            key_field: "product_id".into(),
            output_names,
            version: "1.2.3".into(),
            table: "t".into(),
        };
        let day = 86_400_000;
        let emitted = Emitted {
            windows: vec![
                (
                    "B0\"quoted\u{1}é".into(),
                    Window {
                        start: EventTime::from_millis(day),
                        end: EventTime::from_millis(2 * day),
                    },
                ),
                (
                    "k".into(),
                    Window {
                        start: EventTime::from_millis(0),
                        end: EventTime::from_millis(day),
                    },
                ),
            ],
            outputs: Batch {
                rows: 2,
                columns: vec![
                    Column::Doubles(vec![4.25, f64::NAN]),
                    Column::Integers(vec![-3, i64::MAX]),
                    Column::Booleans(vec![false, true]),
                    Column::Texts(vec!["a\nb".into(), String::new()]),
                    Column::Timestamps(vec![1_700_000_000_123, 0]),
                    Column::Booleans(vec![true]),
                ],
            },
            closed: true,
        };
        let mut buffer = Vec::new();
        for row in 0..2 {
            format.json(&emitted, row, &mut buffer);
            let expected = serde_json::to_vec(&format.object(&emitted, row)).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&buffer),
                String::from_utf8_lossy(&expected)
            );
        }
    }
}
