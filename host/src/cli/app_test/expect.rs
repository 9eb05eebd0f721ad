//! The rows a tenant expects (CSV with a header, or JSON lines; `--format csv` output reads back
//! as is) and what differs from them: rows missing, rows not expected, values that differ.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context};

use super::render;
use crate::app::replay::{Row, Value};
use crate::plugin::{AppSpec, TimeFormat};
use crate::time::parse_time;

/// One expected row: column name to its text.
type Expected = HashMap<String, String>;

/// Reads the expected rows; every row must name the key and the window start.
pub fn read(path: &Path, spec: &AppSpec) -> anyhow::Result<Vec<(usize, Expected)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.to_string_lossy();
    let rows = if name.ends_with(".json") || name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        json_rows(&text).with_context(|| format!("reading {}", path.display()))?
    } else {
        csv_rows(&text)
    };
    for (line, row) in &rows {
        for column in [spec.key_field.as_str(), "window_start"] {
            if !row.contains_key(column) {
                bail!(
                    "{} line {line}: no `{column}`: each expected row names its key and window start",
                    path.display()
                );
            }
        }
    }
    Ok(rows)
}

fn json_rows(text: &str) -> anyhow::Result<Vec<(usize, Expected)>> {
    let trimmed = text.trim_start();
    let values: Vec<(usize, serde_json::Value)> = if trimmed.starts_with('[') {
        let list: Vec<serde_json::Value> = serde_json::from_str(trimmed)?;
        list.into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect()
    } else if trimmed.starts_with('{') && trimmed.contains("\"rows\"") {
        // The document `--format json` prints.
        let doc: serde_json::Value = serde_json::from_str(trimmed)?;
        let list = doc["rows"].as_array().cloned().unwrap_or_default();
        list.into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect()
    } else {
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                values.push((i + 1, serde_json::from_str(line)?));
            }
        }
        values
    };
    Ok(values
        .into_iter()
        .map(|(line, value)| {
            let row = value
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                            (k.clone(), text)
                        })
                        .collect()
                })
                .unwrap_or_default();
            (line, row)
        })
        .collect())
}

/// RFC 4180 CSV: quoted fields may hold commas, quotes and line breaks.
fn csv_rows(text: &str) -> Vec<(usize, Expected)> {
    let mut records: Vec<(usize, Vec<String>)> = Vec::new();
    let (mut field, mut record) = (String::new(), Vec::new());
    let (mut quoted, mut line, mut start) = (false, 1, 1);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty()) {
                    records.push((start, std::mem::take(&mut record)));
                }
                record.clear();
                line += 1;
                start = line;
            }
            (_, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push((start, record));
    }
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Vec::new();
    };
    records
        .map(|(line, cells)| (line, header.iter().cloned().zip(cells).collect()))
        .collect()
}

/// A time as epoch milliseconds: RFC 3339, a date, or a number of milliseconds.
fn millis(text: &str) -> Option<i64> {
    parse_time(TimeFormat::Rfc3339, text.as_bytes())
        .or_else(|_| parse_time(TimeFormat::Date, text.as_bytes()))
        .map(|t| t.millis())
        .ok()
        .or_else(|| text.parse().ok())
}

/// Whether an expected text means the value: numbers compare as numbers (doubles to 1e-9
/// relative), times as instants.
fn same(expected: &str, got: &Value) -> bool {
    let expected = expected.trim();
    match got {
        Value::Bool(v) => expected.parse::<bool>().ok() == Some(*v),
        Value::Int(v) => {
            expected.parse::<i64>().ok() == Some(*v)
                || expected.parse::<f64>().ok() == Some(*v as f64)
        }
        Value::Double(v) => expected
            .parse::<f64>()
            .is_ok_and(|e| e == *v || (e - v).abs() <= 1e-9 * e.abs().max(v.abs()).max(1.0)),
        Value::Text(v) => expected == v,
        Value::Time(v) => millis(expected) == Some(*v),
    }
}

/// Every difference between the rows written and those expected, one line each; empty when
/// they agree. Only the columns the expected file names are compared.
pub fn diff(spec: &AppSpec, rows: &[Row], expected: &[(usize, Expected)]) -> Vec<String> {
    let names = render::columns(spec);
    let mut written: BTreeMap<(String, i64), &Row> = rows
        .iter()
        .map(|r| ((r.key.clone(), r.window.start.millis()), r))
        .collect();
    let mut out = Vec::new();
    for (line, want) in expected {
        let key = want.get(&spec.key_field).cloned().unwrap_or_default();
        let start_text = want.get("window_start").cloned().unwrap_or_default();
        let Some(start) = millis(&start_text) else {
            out.push(format!(
                "expected line {line}: window_start `{start_text}` is not a time"
            ));
            continue;
        };
        let Some(row) = written.remove(&(key.clone(), start)) else {
            out.push(format!(
                "missing: {key} {start_text}: expected (line {line}), not written"
            ));
            continue;
        };
        let cells = render::cells(row);
        let mut columns: Vec<&String> = want.keys().collect();
        columns.sort_by_key(|c| names.iter().position(|n| n == *c).unwrap_or(usize::MAX));
        for column in columns {
            let Some(i) = names.iter().position(|n| n == column) else {
                out.push(format!(
                    "expected line {line}: `{column}` is not a column of the results (they are {})",
                    names.join(", ")
                ));
                continue;
            };
            if !same(&want[column], &cells[i]) {
                out.push(format!(
                    "differs: {key} {start_text}: `{column}` expected {}, got {}",
                    want[column],
                    render::text(&cells[i])
                ));
            }
        }
    }
    for ((key, _), row) in written {
        out.push(format!(
            "extra: {key} {}: written, not expected",
            render::text(&Value::Time(row.window.start.millis()))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_quotes_commas_and_line_breaks() {
        let rows = csv_rows("k,v\r\n\"a,b\",\"say \"\"hi\"\"\nthere\"\nc,2\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1["k"], "a,b");
        assert_eq!(rows[0].1["v"], "say \"hi\"\nthere");
        assert_eq!(rows[1].0, 4);
        assert_eq!(rows[1].1["v"], "2");
    }

    #[test]
    fn values_compare_as_what_they_mean() {
        assert!(same("4", &Value::Double(4.0)));
        assert!(same("0.1", &Value::Double(0.1 + 1e-12)));
        assert!(!same("0.1", &Value::Double(0.11)));
        assert!(same("3", &Value::Int(3)) && !same("3.5", &Value::Int(3)));
        assert!(same("2015-03-01", &Value::Time(1_425_168_000_000)));
        assert!(same(
            "2015-03-01T00:00:00Z",
            &Value::Time(1_425_168_000_000)
        ));
        assert!(same("1425168000000", &Value::Time(1_425_168_000_000)));
        assert!(same("true", &Value::Bool(true)) && !same("yes", &Value::Bool(true)));
        assert!(same("x y", &Value::Text("x y".into())));
    }
}
