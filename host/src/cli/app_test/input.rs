//! A tenant's sample file as the messages Kafka would deliver: the reviews TSV exactly as
//! `mysimbdp produce` sends it, any TSV with a header of field names, or JSON lines as they are.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};

use crate::app::replay::{self, Record};
use crate::cli::tsv;
use crate::plugin::{AppSpec, EventTimeSource, FieldType, TimeFormat};
use crate::source::Decoder;

/// The order records are replayed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Sorted by the app's event time (stable), as `produce --replay-speed` sends a file.
    Event,
    /// As they are in the file: out-of-order rows may be late, as on a live stream.
    File,
}

/// Reads the file (`.gz` too) into records in the order asked for.
pub fn read(path: &Path, spec: &AppSpec, order: Order) -> anyhow::Result<Vec<Record>> {
    let text = read_text(path)?;
    let name = path.to_string_lossy();
    let json = [".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz"]
        .iter()
        .any(|e| name.ends_with(e));
    let mut records = if json {
        json_lines(&text, spec)
    } else {
        tsv_lines(&text, spec)
    };
    // Kafka stamps each message as it is produced: in file order, a millisecond apart, the
    // last one now.
    let now = crate::app::system_clock().millis();
    let count = records.len() as i64;
    for (i, record) in records.iter_mut().enumerate() {
        record.timestamp = Some(now.saturating_sub(count - 1 - i as i64));
    }
    if order == Order::Event {
        let mut decoder = Decoder::new(spec);
        let mut keyed: Vec<(i64, Record)> = records
            .into_iter()
            .map(|r| {
                let t = replay::event_time(&mut decoder, &r).map_or(i64::MIN, |t| t.millis());
                (t, r)
            })
            .collect();
        keyed.sort_by_key(|(t, _)| *t);
        records = keyed.into_iter().map(|(_, r)| r).collect();
    }
    Ok(records)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
    } else {
        std::io::BufReader::new(file)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    if bytes.is_empty() {
        bail!("{} is empty: nothing to replay", path.display());
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Each line is one message's value, sent as it is; its key is the key field, when a string.
fn json_lines(text: &str, spec: &AppSpec) -> Vec<Record> {
    lines(text)
        .map(|(line, l)| {
            let key = serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get(&spec.key_field)?.as_str().map(str::to_owned))
                .map(String::into_bytes);
            Record {
                line,
                key,
                payload: l.as_bytes().to_vec(),
                timestamp: None,
            }
        })
        .collect()
}

/// The reviews TSV (with or without its header) as `produce` sends it; any other TSV needs a
/// header naming the fields, and its cells become JSON numbers where the app reads a number.
fn tsv_lines(text: &str, spec: &AppSpec) -> Vec<Record> {
    let mut all = lines(text).peekable();
    let header: Option<Vec<String>> = all.peek().and_then(|(_, first)| {
        let names: Vec<&str> = first.split('\t').collect();
        (!tsv::is_header(first.as_bytes()) && names.contains(&spec.key_field.as_str()))
            .then(|| names.iter().map(|s| (*s).to_owned()).collect())
    });
    let mut records = Vec::new();
    let mut json = Vec::new();
    for (line, l) in all {
        if tsv::is_header(l.as_bytes()) {
            continue;
        }
        let record = match &header {
            None => {
                let bytes = l.as_bytes();
                let payload = if tsv::write_message(bytes, &mut json) {
                    json.clone()
                } else {
                    bytes.to_vec()
                };
                Record {
                    line,
                    key: Some(tsv::key_of(bytes).to_vec()),
                    payload,
                    timestamp: None,
                }
            }
            Some(names) if line == 1 && l.split('\t').eq(names.iter().map(String::as_str)) => {
                continue
            }
            Some(names) => generic_row(line, l, names, spec),
        };
        records.push(record);
    }
    records
}

/// A row of a TSV with a header: a JSON object with a field per column.
fn generic_row(line: usize, l: &str, names: &[String], spec: &AppSpec) -> Record {
    let mut object = serde_json::Map::new();
    let mut key = None;
    for (name, cell) in names.iter().zip(l.split('\t')) {
        if *name == spec.key_field {
            key = Some(cell.as_bytes().to_vec());
        }
        object.insert(name.clone(), typed(name, cell, spec));
    }
    Record {
        line,
        key,
        payload: serde_json::Value::Object(object).to_string().into_bytes(),
        timestamp: None,
    }
}

/// A cell as the JSON a producer would send: a number or boolean where the app reads one and
/// the text is one; a string otherwise, so a mistyped cell is refused with the platform's words.
fn typed(name: &str, cell: &str, spec: &AppSpec) -> serde_json::Value {
    use serde_json::Value;
    let numeric_time = matches!(&spec.event_time, EventTimeSource::Field { name: n, format }
        if n == name && matches!(format, TimeFormat::EpochMillis | TimeFormat::EpochSeconds));
    let kind = spec.inputs.iter().find(|f| f.name == name).map(|f| f.kind);
    let number = || {
        cell.parse::<i64>().map(Value::from).ok().or_else(|| {
            cell.parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
        })
    };
    let value = match kind {
        Some(FieldType::Integer | FieldType::Double | FieldType::Timestamp) => number(),
        Some(FieldType::Boolean) => cell.parse::<bool>().ok().map(Value::Bool),
        _ if numeric_time => number(),
        _ => None,
    };
    value.unwrap_or_else(|| Value::String(cell.to_owned()))
}
