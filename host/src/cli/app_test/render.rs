//! The rows a replay would write, shown as a table, CSV or JSON with the columns of the results
//! table: the key, the window, the app's outputs, and `final`.

use std::fmt::Write as _;

use crate::app::replay::{Rejection, Replay, Row, Value};
use crate::plugin::AppSpec;
use crate::time::{format_rfc3339, EventTime};

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The results table's column names, in order.
pub fn columns(spec: &AppSpec) -> Vec<String> {
    let mut names = vec![
        spec.key_field.clone(),
        "window_start".into(),
        "window_end".into(),
    ];
    names.extend(spec.outputs.iter().map(|f| f.name.clone()));
    names.push("final".into());
    names
}

/// A value as text; timestamps as RFC 3339, doubles in the shortest form that reads back exact.
pub fn text(value: &Value) -> String {
    match value {
        Value::Bool(v) => v.to_string(),
        Value::Int(v) => v.to_string(),
        Value::Double(v) => v.to_string(),
        Value::Text(v) => v.clone(),
        Value::Time(v) => format_rfc3339(EventTime::from_millis(*v)),
    }
}

/// A row's cells in the order of [`columns`].
pub fn cells(row: &Row) -> Vec<Value> {
    let mut cells = vec![
        Value::Text(row.key.clone()),
        Value::Time(row.window.start.millis()),
        Value::Time(row.window.end.millis()),
    ];
    cells.extend(row.values.iter().cloned());
    cells.push(Value::Bool(row.closed));
    cells
}

fn json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(v) => (*v).into(),
        Value::Int(v) => (*v).into(),
        Value::Double(v) => serde_json::Number::from_f64(*v)
            .map_or_else(|| v.to_string().into(), serde_json::Value::Number),
        Value::Text(_) | Value::Time(_) => text(value).into(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn rejections(title: &str, list: &[Rejection], out: &mut String) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title} ({}):", list.len());
    for r in list {
        let _ = writeln!(out, "  line {}: {}", r.line, r.reason);
    }
}

/// What the platform would send to the late and dead-letter topics, one line each.
pub fn rejected(replay: &Replay) -> String {
    let mut out = String::new();
    rejections("late", &replay.late, &mut out);
    rejections("dead letters", &replay.dead_letters, &mut out);
    rejections("quarantined (dead letters)", &replay.quarantined, &mut out);
    out
}

/// The rows in the format asked for; for JSON, the rejected records are in the same document.
pub fn rows(spec: &AppSpec, replay: &Replay, format: Format) -> String {
    let names = columns(spec);
    let table: Vec<Vec<Value>> = replay.rows.iter().map(cells).collect();
    match format {
        Format::Csv => {
            let mut out = names
                .iter()
                .map(|n| csv_field(n))
                .collect::<Vec<_>>()
                .join(",");
            out.push('\n');
            for row in &table {
                let line: Vec<String> = row.iter().map(|v| csv_field(&text(v))).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            out
        }
        Format::Json => {
            let objects: Vec<serde_json::Value> = table
                .iter()
                .map(|row| {
                    let map = names.iter().cloned().zip(row.iter().map(json)).collect();
                    serde_json::Value::Object(map)
                })
                .collect();
            let list = |l: &[Rejection]| {
                l.iter()
                    .map(|r| serde_json::json!({"line": r.line, "reason": r.reason}))
                    .collect::<Vec<_>>()
            };
            let doc = serde_json::json!({
                "rows": objects,
                "late": list(&replay.late),
                "dead_letters": list(&replay.dead_letters),
                "quarantined": list(&replay.quarantined),
                "stopped": replay.stopped,
            });
            format!("{doc:#}\n")
        }
        Format::Table => {
            let texts: Vec<Vec<String>> = table
                .iter()
                .map(|row| row.iter().map(text).collect())
                .collect();
            let widths: Vec<usize> = (0..names.len())
                .map(|c| {
                    texts
                        .iter()
                        .map(|r| r[c].chars().count())
                        .chain([names[c].chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let mut out = String::new();
            let mut line = |cells: &[String]| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                let _ = writeln!(out, "{}", padded.join("  ").trim_end());
            };
            line(&names);
            for row in &texts {
                line(row);
            }
            let _ = writeln!(out, "({} rows)", texts.len());
            out
        }
    }
}
