//! What a batch run reads: the input table's columns checked against what the app declares,
//! once, so that reading a row is only indexing and converting.

use std::collections::BTreeMap;

use scylla::client::session::Session;
use scylla::value::CqlValue;

use super::derive::TimePart;
use super::BatchError;
use crate::plugin::{AppSpec, EventTimeSource, FieldType};
use crate::sink::cassandra::CassandraError;

/// A column of the input table as Cassandra describes it.
#[derive(Debug, Clone)]
pub struct TableColumn {
    pub name: String,
    /// The CQL type, as `system_schema.columns` writes it (`bigint`, `text`, ...).
    pub cql_type: String,
    pub partition_key: bool,
}

/// The input table's columns, in `system_schema` order.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub keyspace: String,
    pub table: String,
    pub columns: Vec<TableColumn>,
}

impl TableSchema {
    /// Reads the columns of `keyspace.table`; a table that does not exist is an error that
    /// names it.
    pub async fn read(session: &Session, keyspace: &str, table: &str) -> Result<Self, BatchError> {
        let failed = |e: String| {
            CassandraError::new(format!("reading the columns of {keyspace}.{table}"), e)
        };
        let rows = session
            .query_unpaged(
                "SELECT column_name, type, kind FROM system_schema.columns \
                 WHERE keyspace_name = ? AND table_name = ?",
                (keyspace, table),
            )
            .await
            .map_err(|e| failed(e.to_string()))?
            .into_rows_result()
            .map_err(|e| failed(e.to_string()))?;
        let columns: Vec<TableColumn> = rows
            .rows::<(String, String, String)>()
            .map_err(|e| failed(e.to_string()))?
            .filter_map(Result::ok)
            .map(|(name, cql_type, kind)| TableColumn {
                name,
                cql_type,
                partition_key: kind == "partition_key",
            })
            .collect();
        if columns.is_empty() {
            return Err(BatchError::Input(format!(
                "table {keyspace}.{table} does not exist (or has no columns): give `--from` a \
                 results table of tenant {keyspace}, such as the stream app's `aggregated_reviews`"
            )));
        }
        Ok(Self {
            keyspace: keyspace.to_owned(),
            table: table.to_owned(),
            columns,
        })
    }

    fn column(&self, name: &str) -> Option<&TableColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn names(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The single partition-key column, when there is exactly one.
    pub fn partition_key(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.partition_key)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Which field types a CQL column type can feed.
fn feeds(cql_type: &str) -> Option<FieldType> {
    Some(match cql_type {
        "bigint" | "int" | "smallint" | "tinyint" | "counter" | "varint" => FieldType::Integer,
        "double" | "float" => FieldType::Double,
        "text" | "ascii" | "varchar" => FieldType::Text,
        "boolean" => FieldType::Boolean,
        "timestamp" => FieldType::Timestamp,
        _ => return None,
    })
}

/// Where one value the app needs comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The n-th selected column.
    Column(usize),
    /// A part of the row's event time.
    Derived(TimePart),
}

/// A key field's kind: how it is stored in the output table and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Text,
    Integer,
}

/// One value of a composite key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    Text(String),
    Integer(i64),
}

/// A `--where column=value` condition: rows whose column holds one of the values.
#[derive(Debug, Clone)]
pub struct Condition {
    pub column: String,
    pub values: Vec<String>,
}

/// What to read and how each value the app needs is found in a row.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The columns selected, in order.
    pub select: Vec<String>,
    pub inputs: Vec<(Source, FieldType)>,
    pub key: Vec<(String, Source, KeyKind)>,
    /// The event-time column (a timestamp), if the app declares one.
    pub event_time: Option<usize>,
    /// `window_end` of the input rows, when the table has it: where a row's time span ends.
    pub window_end: Option<usize>,
    pub conditions: Vec<(usize, Vec<String>)>,
}

impl Plan {
    /// Matches the app's inputs, key and event time with the table's columns and the derived
    /// time parts; a mismatch is refused with the field, what the table has, and the fix.
    pub fn new(
        schema: &TableSchema,
        spec: &AppSpec,
        conditions: &[Condition],
    ) -> Result<Self, BatchError> {
        let from = format!("{}.{}", schema.keyspace, schema.table);
        let mut select: Vec<String> = Vec::new();
        let mut selected = |name: &str| -> usize {
            match select.iter().position(|s| s == name) {
                Some(i) => i,
                None => {
                    select.push(name.to_owned());
                    select.len() - 1
                }
            }
        };
        let event_time = match &spec.event_time {
            EventTimeSource::Ingestion => None,
            EventTimeSource::Field { name, .. } => {
                let column = schema.column(name).ok_or_else(|| {
                    BatchError::Input(format!(
                        "the app's event-time field `{name}` is not a column of {from} \
                         (columns: {}): declare `event_time: epoch_millis(\"window_start\")` or \
                         another timestamp column",
                        schema.names()
                    ))
                })?;
                if column.cql_type != "timestamp" {
                    return Err(BatchError::Input(format!(
                        "the app's event-time field `{name}` is a {} column of {from}; it must \
                         be a timestamp column such as `window_start`",
                        column.cql_type
                    )));
                }
                Some(selected(name))
            }
        };
        let derived = |name: &str, what: &str| -> Result<Source, BatchError> {
            let part = TimePart::named(name).ok_or_else(|| {
                let parts: Vec<&str> = TimePart::ALL.iter().map(|(n, _)| *n).collect();
                BatchError::Input(format!(
                    "{what} `{name}` is not a column of {from} (columns: {}) nor a part of the \
                     event time ({}): rename it to one of these",
                    schema.names(),
                    parts.join(", ")
                ))
            })?;
            if event_time.is_none() {
                return Err(BatchError::Input(format!(
                    "{what} `{name}` is a part of the event time, but the app declares none: \
                     declare `event_time: epoch_millis(\"window_start\")`"
                )));
            }
            Ok(Source::Derived(part))
        };
        let mut inputs = Vec::with_capacity(spec.inputs.len());
        for field in &spec.inputs {
            let what = "input field";
            let source = match schema.column(&field.name) {
                Some(column) => {
                    let fed = feeds(&column.cql_type);
                    if fed != Some(field.kind) {
                        return Err(BatchError::Input(format!(
                            "{what} `{}` is declared {:?}, but {from}.{} is a {} column: declare \
                             it as {}",
                            field.name,
                            field.kind,
                            field.name,
                            column.cql_type,
                            fed.map_or("a supported type".to_owned(), |k| format!("{k:?}"))
                        )));
                    }
                    Source::Column(selected(&field.name))
                }
                None => {
                    if field.kind != FieldType::Integer {
                        return Err(BatchError::Input(format!(
                            "{what} `{}` is not a column of {from} (columns: {}); a part of the \
                             event time is an integer",
                            field.name,
                            schema.names()
                        )));
                    }
                    derived(&field.name, what)?
                }
            };
            inputs.push((source, field.kind));
        }
        let mut key = Vec::new();
        for name in spec.key_fields() {
            let what = "key field";
            let (source, kind) = match schema.column(name) {
                Some(column) => {
                    let kind = match feeds(&column.cql_type) {
                        Some(FieldType::Text) => KeyKind::Text,
                        Some(FieldType::Integer) => KeyKind::Integer,
                        _ => {
                            return Err(BatchError::Input(format!(
                                "{what} `{name}` is a {} column of {from}; a key field must be \
                                 text or an integer",
                                column.cql_type
                            )))
                        }
                    };
                    (Source::Column(selected(name)), kind)
                }
                None => (derived(name, what)?, KeyKind::Integer),
            };
            key.push((name.to_owned(), source, kind));
        }
        let window_end = schema
            .column("window_end")
            .filter(|c| c.cql_type == "timestamp" && event_time.is_some())
            .map(|_| selected("window_end"));
        let mut planned = Vec::new();
        for condition in conditions {
            if schema.column(&condition.column).is_none() {
                return Err(BatchError::Input(format!(
                    "`--where {}=...`: {from} has no column `{}` (columns: {})",
                    condition.column,
                    condition.column,
                    schema.names()
                )));
            }
            planned.push((selected(&condition.column), condition.values.clone()));
        }
        Ok(Self {
            select,
            inputs,
            key,
            event_time,
            window_end,
            conditions: planned,
        })
    }
}

/// A value as the text a `--where` condition compares with.
pub fn as_text(value: &CqlValue) -> Option<String> {
    Some(match value {
        CqlValue::Text(s) | CqlValue::Ascii(s) => s.clone(),
        CqlValue::BigInt(i) => i.to_string(),
        CqlValue::Int(i) => i.to_string(),
        CqlValue::SmallInt(i) => i.to_string(),
        CqlValue::TinyInt(i) => i.to_string(),
        CqlValue::Boolean(b) => b.to_string(),
        _ => return None,
    })
}

/// The conditions given, grouped by column (`--where a=1 --where a=2` is `a` in {1, 2}).
pub fn conditions(pairs: &[(String, String)]) -> Vec<Condition> {
    let mut by_column: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (column, value) in pairs {
        by_column.entry(column).or_default().push(value.clone());
    }
    by_column
        .into_iter()
        .map(|(column, values)| Condition {
            column: column.to_owned(),
            values,
        })
        .collect()
}
