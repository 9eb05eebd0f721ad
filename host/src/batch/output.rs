//! Where a batch run's rows go: its own Cassandra table (one row per key, upserted), and on
//! request a CSV and a Parquet file with the same columns.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use parquet::basic::{Compression, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use scylla::client::session::Session;
use scylla::value::{CqlTimestamp, CqlValue};

use super::group::{ResultRow, Value};
use super::plan::{KeyKind, KeyPart};
use super::BatchError;
use crate::plugin::{AppSpec, FieldType};
use crate::sink::cassandra::CassandraError;
use crate::time::{format_rfc3339, EventTime};

/// Upserts in flight at once.
const CONCURRENCY: usize = 64;

/// The columns of a batch result, in order: key fields, the span, the outputs.
#[derive(Debug, Clone)]
pub struct Columns {
    pub key: Vec<(String, KeyKind)>,
    /// Whether rows carry `window_start` and `window_end` (the app has an event time).
    pub span: bool,
    pub outputs: Vec<(String, FieldType)>,
}

impl Columns {
    pub fn new(spec: &AppSpec, key: Vec<(String, KeyKind)>, span: bool) -> Self {
        Self {
            key,
            span,
            outputs: spec
                .outputs
                .iter()
                .map(|f| (f.name.clone(), f.kind))
                .collect(),
        }
    }

    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.key.iter().map(|(n, _)| n.as_str()).collect();
        if self.span {
            names.extend(["window_start", "window_end"]);
        }
        names.extend(self.outputs.iter().map(|(n, _)| n.as_str()));
        names
    }
}

fn key_type(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Text => "text",
        KeyKind::Integer => "bigint",
    }
}

/// Creates `<tenant>.<table>` when missing, keyed by the first key field with the others as
/// clustering columns (a product's months sit in its partition), and upserts every row.
pub async fn write_table(
    session: &Session,
    keyspace: &str,
    spec: &AppSpec,
    columns: &Columns,
    rows: &[ResultRow],
    now_ms: i64,
) -> Result<(), BatchError> {
    let table = &spec.table;
    let failed = |doing: String| {
        move |e: scylla::errors::ExecutionError| CassandraError::new(doing, e.to_string())
    };
    let mut defs: Vec<String> = columns
        .key
        .iter()
        .map(|(n, k)| format!("{n} {}", key_type(*k)))
        .collect();
    if columns.span {
        defs.extend([
            "window_start timestamp".into(),
            "window_end timestamp".into(),
        ]);
    }
    defs.extend(
        columns
            .outputs
            .iter()
            .map(|(n, k)| format!("{n} {}", crate::sink::cassandra::cql_type(*k))),
    );
    let key_names: Vec<&str> = columns.key.iter().map(|(n, _)| n.as_str()).collect();
    let clustering = if key_names.len() > 1 {
        format!(", {}", key_names[1..].join(", "))
    } else {
        String::new()
    };
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.{table} ({}, app_version text, updated_at timestamp, \
         PRIMARY KEY (({}){clustering}))",
        defs.join(", "),
        key_names[0]
    );
    session
        .query_unpaged(create, &[])
        .await
        .map_err(failed(format!("creating table {keyspace}.{table}")))?;
    let mut names = columns.names();
    names.extend(["app_version", "updated_at"]);
    let marks = vec!["?"; names.len()].join(", ");
    let insert = format!(
        "INSERT INTO {keyspace}.{table} ({}) VALUES ({marks})",
        names.join(", ")
    );
    let insert = session.prepare(insert.as_str()).await.map_err(|e| {
        CassandraError::new(
            format!(
                "preparing the upsert into {keyspace}.{table} (does it exist with other columns?)"
            ),
            e.to_string(),
        )
    })?;
    let version = spec.version.clone();
    futures::stream::iter(rows)
        .map(|row| {
            let mut values: Vec<Option<CqlValue>> = row
                .key
                .iter()
                .map(|k| {
                    Some(match k {
                        KeyPart::Text(s) => CqlValue::Text(s.clone()),
                        KeyPart::Integer(i) => CqlValue::BigInt(*i),
                    })
                })
                .collect();
            if columns.span {
                let (start, end) = row.span.unwrap_or((0, 0));
                values.push(Some(CqlValue::Timestamp(CqlTimestamp(start))));
                values.push(Some(CqlValue::Timestamp(CqlTimestamp(end))));
            }
            values.extend(row.values.iter().map(|v| {
                Some(match v {
                    Value::Bool(b) => CqlValue::Boolean(*b),
                    Value::Int(i) => CqlValue::BigInt(*i),
                    Value::Double(d) => CqlValue::Double(*d),
                    Value::Text(t) => CqlValue::Text(t.clone()),
                    Value::Time(t) => CqlValue::Timestamp(CqlTimestamp(*t)),
                })
            }));
            values.push(Some(CqlValue::Text(version.clone())));
            values.push(Some(CqlValue::Timestamp(CqlTimestamp(now_ms))));
            let insert = &insert;
            async move { session.execute_unpaged(insert, values).await.map(|_| ()) }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
        .map_err(failed(format!(
            "writing the results into {keyspace}.{table}"
        )))?;
    Ok(())
}

fn time_text(ms: i64) -> String {
    format_rfc3339(EventTime::from_millis(ms))
}

fn csv_field(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    if text.contains([',', '"', '\n', '\r']) {
        write!(out, "\"{}\"", text.replace('"', "\"\""))
    } else {
        out.write_all(text.as_bytes())
    }
}

/// Writes the rows as CSV with a header; times as RFC 3339, doubles in full precision.
pub fn write_csv(path: &Path, columns: &Columns, rows: &[ResultRow]) -> Result<(), BatchError> {
    let file_error = |e: std::io::Error| BatchError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut out = BufWriter::new(File::create(path).map_err(file_error)?);
    let write = |out: &mut BufWriter<File>| -> std::io::Result<()> {
        writeln!(out, "{}", columns.names().join(","))?;
        for row in rows {
            let mut fields: Vec<String> = row
                .key
                .iter()
                .map(|k| match k {
                    KeyPart::Text(s) => s.clone(),
                    KeyPart::Integer(i) => i.to_string(),
                })
                .collect();
            if columns.span {
                let (start, end) = row.span.unwrap_or((0, 0));
                fields.extend([time_text(start), time_text(end)]);
            }
            fields.extend(row.values.iter().map(|v| match v {
                Value::Bool(b) => b.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Double(d) => format!("{d:?}"),
                Value::Text(t) => t.clone(),
                Value::Time(t) => time_text(*t),
            }));
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                csv_field(out, field)?;
            }
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    write(&mut out).map_err(file_error)
}

/// Writes the rows as one Parquet row group: key and output columns with their types,
/// `window_start`/`window_end` as UTC millisecond timestamps.
pub fn write_parquet(path: &Path, columns: &Columns, rows: &[ResultRow]) -> Result<(), BatchError> {
    let fail = |reason: String| BatchError::File {
        path: path.display().to_string(),
        reason,
    };
    let mut fields: Vec<String> = columns
        .key
        .iter()
        .map(|(n, k)| match k {
            KeyKind::Text => format!("required binary {n} (STRING);"),
            KeyKind::Integer => format!("required int64 {n};"),
        })
        .collect();
    if columns.span {
        for n in ["window_start", "window_end"] {
            fields.push(format!("required int64 {n} (TIMESTAMP(MILLIS,true));"));
        }
    }
    for (n, kind) in &columns.outputs {
        fields.push(match kind {
            FieldType::Boolean => format!("required boolean {n};"),
            FieldType::Integer => format!("required int64 {n};"),
            FieldType::Double => format!("required double {n};"),
            FieldType::Text => format!("required binary {n} (STRING);"),
            FieldType::Timestamp => format!("required int64 {n} (TIMESTAMP(MILLIS,true));"),
        });
    }
    let schema = parse_message_type(&format!("message batch_result {{ {} }}", fields.join(" ")))
        .map_err(|e| fail(format!("the Parquet schema: {e}")))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .build();
    let file = File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(properties))
        .map_err(|e| fail(e.to_string()))?;
    let mut group = writer.next_row_group().map_err(|e| fail(e.to_string()))?;
    let mut index = 0;
    while let Some(mut column) = group.next_column().map_err(|e| fail(e.to_string()))? {
        let physical = column_values(columns, rows, index);
        let written = match physical {
            Column::Int(v) => column.typed::<Int64Type>().write_batch(&v, None, None),
            Column::Double(v) => column.typed::<DoubleType>().write_batch(&v, None, None),
            Column::Bool(v) => column.typed::<BoolType>().write_batch(&v, None, None),
            Column::Bytes(v) => column.typed::<ByteArrayType>().write_batch(&v, None, None),
        };
        written.map_err(|e| fail(e.to_string()))?;
        column.close().map_err(|e| fail(e.to_string()))?;
        index += 1;
    }
    group.close().map_err(|e| fail(e.to_string()))?;
    writer.close().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// One Parquet column's values.
enum Column {
    Int(Vec<i64>),
    Double(Vec<f64>),
    Bool(Vec<bool>),
    Bytes(Vec<ByteArray>),
}

/// The values of the `index`-th column of [`Columns::names`].
fn column_values(columns: &Columns, rows: &[ResultRow], index: usize) -> Column {
    let keys = columns.key.len();
    let span = if columns.span { 2 } else { 0 };
    if index < keys {
        return match columns.key[index].1 {
            KeyKind::Text => Column::Bytes(
                rows.iter()
                    .map(|r| match &r.key[index] {
                        KeyPart::Text(s) => ByteArray::from(s.as_str()),
                        KeyPart::Integer(i) => ByteArray::from(i.to_string().as_str()),
                    })
                    .collect(),
            ),
            KeyKind::Integer => Column::Int(
                rows.iter()
                    .map(|r| match &r.key[index] {
                        KeyPart::Integer(i) => *i,
                        KeyPart::Text(_) => 0,
                    })
                    .collect(),
            ),
        };
    }
    if index < keys + span {
        let end = index - keys == 1;
        return Column::Int(
            rows.iter()
                .map(|r| {
                    let (s, e) = r.span.unwrap_or((0, 0));
                    if end {
                        e
                    } else {
                        s
                    }
                })
                .collect(),
        );
    }
    let output = index - keys - span;
    let physical = match columns.outputs[output].1 {
        FieldType::Boolean => Physical::BOOLEAN,
        FieldType::Integer | FieldType::Timestamp => Physical::INT64,
        FieldType::Double => Physical::DOUBLE,
        FieldType::Text => Physical::BYTE_ARRAY,
    };
    let values = rows.iter().map(|r| r.values.get(output));
    match physical {
        Physical::BOOLEAN => Column::Bool(
            values
                .map(|v| matches!(v, Some(Value::Bool(true))))
                .collect(),
        ),
        Physical::DOUBLE => Column::Double(
            values
                .map(|v| match v {
                    Some(Value::Double(d)) => *d,
                    _ => f64::NAN,
                })
                .collect(),
        ),
        Physical::BYTE_ARRAY => Column::Bytes(
            values
                .map(|v| match v {
                    Some(Value::Text(t)) => ByteArray::from(t.as_str()),
                    _ => ByteArray::from(""),
                })
                .collect(),
        ),
        _ => Column::Int(
            values
                .map(|v| match v {
                    Some(Value::Int(i) | Value::Time(i)) => *i,
                    _ => 0,
                })
                .collect(),
        ),
    }
}
