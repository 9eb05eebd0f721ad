//! The aggregation: rows become columnar batches, each row goes to the slot of its (composite)
//! key, and the app accumulates them exactly as it does on a stream. At the end every slot is
//! emitted once.

use std::collections::HashMap;
use std::sync::Arc;

use scylla::value::{CqlValue, Row};

use super::plan::{as_text, KeyPart, Plan, Source};
use super::BatchError;
pub use crate::model::Value;
use crate::plugin::{AppInstance, AppSpec, Batch, Column, FieldType};
use crate::sink::cell;

/// Slots emitted per call at the end.
const EMIT_CHUNK: usize = 1024;

/// One row of the result: a key, the span of event time its input rows covered, the outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub key: Vec<KeyPart>,
    /// First event time and end of the last input row's window (ms), when the app has a time.
    pub span: Option<(i64, i64)>,
    pub values: Vec<Value>,
}

/// What happened to the rows read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub read: u64,
    /// Rows the app accumulated.
    pub used: u64,
    /// Rows outside `--where` or `--since`/`--until`.
    pub not_selected: u64,
    /// Rows the app's filter refused.
    pub filtered: u64,
    /// Rows with no value in a column the app needs.
    pub incomplete: u64,
}

/// A column being filled.
enum Builder {
    Booleans(Vec<bool>),
    Integers(Vec<i64>),
    Doubles(Vec<f64>),
    Texts(Vec<String>),
    Timestamps(Vec<i64>),
}

impl Builder {
    fn new(kind: FieldType, capacity: usize) -> Self {
        match kind {
            FieldType::Boolean => Builder::Booleans(Vec::with_capacity(capacity)),
            FieldType::Integer => Builder::Integers(Vec::with_capacity(capacity)),
            FieldType::Double => Builder::Doubles(Vec::with_capacity(capacity)),
            FieldType::Text => Builder::Texts(Vec::with_capacity(capacity)),
            FieldType::Timestamp => Builder::Timestamps(Vec::with_capacity(capacity)),
        }
    }

    fn take(&mut self) -> Column {
        match self {
            Builder::Booleans(v) => Column::Booleans(std::mem::take(v)),
            Builder::Integers(v) => Column::Integers(std::mem::take(v)),
            Builder::Doubles(v) => Column::Doubles(std::mem::take(v)),
            Builder::Texts(v) => Column::Texts(std::mem::take(v)),
            Builder::Timestamps(v) => Column::Timestamps(std::mem::take(v)),
        }
    }
}

/// A value converted for a column, or `None` when it is null or of another type.
enum Converted {
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(String),
}

fn integer(value: &CqlValue) -> Option<i64> {
    match value {
        CqlValue::BigInt(i) => Some(*i),
        CqlValue::Int(i) => Some(i64::from(*i)),
        CqlValue::SmallInt(i) => Some(i64::from(*i)),
        CqlValue::TinyInt(i) => Some(i64::from(*i)),
        CqlValue::Counter(c) => Some(c.0),
        CqlValue::Timestamp(t) => Some(t.0),
        _ => None,
    }
}

fn convert(value: Option<&CqlValue>, kind: FieldType) -> Option<Converted> {
    let value = value?;
    match kind {
        FieldType::Boolean => match value {
            CqlValue::Boolean(b) => Some(Converted::Bool(*b)),
            _ => None,
        },
        FieldType::Integer | FieldType::Timestamp => integer(value).map(Converted::Int),
        FieldType::Double => match value {
            CqlValue::Double(d) => Some(Converted::Double(*d)),
            CqlValue::Float(f) => Some(Converted::Double(f64::from(*f))),
            _ => None,
        },
        FieldType::Text => match value {
            CqlValue::Text(s) | CqlValue::Ascii(s) => Some(Converted::Text(s.clone())),
            _ => None,
        },
    }
}

/// A row waiting for the next call into the app: its key and its span of event time.
type PendingRow = (Vec<KeyPart>, Option<(i64, i64)>);

/// The app instance and the map from keys to its slots.
pub struct Aggregator {
    instance: AppInstance,
    spec: Arc<AppSpec>,
    plan: Plan,
    since: Option<i64>,
    until: Option<i64>,
    batch_max: usize,
    slots: HashMap<Vec<KeyPart>, u32>,
    keys: Vec<Vec<KeyPart>>,
    spans: Vec<Option<(i64, i64)>>,
    pending_keys: Vec<PendingRow>,
    columns: Vec<Builder>,
    counts: Counts,
}

impl Aggregator {
    pub fn new(
        instance: AppInstance,
        spec: Arc<AppSpec>,
        plan: Plan,
        since: Option<i64>,
        until: Option<i64>,
        batch_max: usize,
    ) -> Self {
        let columns = plan
            .inputs
            .iter()
            .map(|(_, kind)| Builder::new(*kind, batch_max))
            .collect();
        Self {
            instance,
            spec,
            plan,
            since,
            until,
            batch_max: batch_max.max(1),
            slots: HashMap::new(),
            keys: Vec::new(),
            spans: Vec::new(),
            pending_keys: Vec::with_capacity(batch_max),
            columns,
            counts: Counts::default(),
        }
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Adds one row; a full batch goes to the app.
    pub fn push(&mut self, row: &Row) -> Result<(), BatchError> {
        self.counts.read += 1;
        let at = |i: usize| row.columns.get(i).and_then(Option::as_ref);
        let selected = self.plan.conditions.iter().all(|(i, values)| {
            at(*i)
                .and_then(as_text)
                .is_some_and(|text| values.contains(&text))
        });
        if !selected {
            self.counts.not_selected += 1;
            return Ok(());
        }
        let time = match self.plan.event_time {
            None => None,
            Some(i) => match at(i).and_then(integer) {
                Some(t) => Some(t),
                None => {
                    self.counts.incomplete += 1;
                    return Ok(());
                }
            },
        };
        if let Some(t) = time {
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                self.counts.not_selected += 1;
                return Ok(());
            }
        }
        let span = time.map(|t| {
            let end = self
                .plan
                .window_end
                .and_then(|i| at(i).and_then(integer))
                .unwrap_or(t);
            (t, end.max(t))
        });
        let mut key = Vec::with_capacity(self.plan.key.len());
        for (_, source, _) in &self.plan.key {
            let part = match (source, time) {
                (Source::Derived(part), Some(t)) => Some(KeyPart::Integer(part.of(t))),
                (Source::Derived(_), None) => None,
                (Source::Column(i), _) => match at(*i) {
                    Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => Some(KeyPart::Text(s.clone())),
                    Some(v) => integer(v).map(KeyPart::Integer),
                    None => None,
                },
            };
            match part {
                Some(part) => key.push(part),
                None => {
                    self.counts.incomplete += 1;
                    return Ok(());
                }
            }
        }
        let mut values = Vec::with_capacity(self.plan.inputs.len());
        for (source, kind) in &self.plan.inputs {
            let value = match (source, time) {
                (Source::Derived(part), Some(t)) => Some(Converted::Int(part.of(t))),
                (Source::Derived(_), None) => None,
                (Source::Column(i), _) => convert(at(*i), *kind),
            };
            match value {
                Some(value) => values.push(value),
                None => {
                    self.counts.incomplete += 1;
                    return Ok(());
                }
            }
        }
        for (builder, value) in self.columns.iter_mut().zip(values) {
            match (builder, value) {
                (Builder::Booleans(v), Converted::Bool(b)) => v.push(b),
                (Builder::Integers(v) | Builder::Timestamps(v), Converted::Int(i)) => v.push(i),
                (Builder::Doubles(v), Converted::Double(d)) => v.push(d),
                (Builder::Texts(v), Converted::Text(s)) => v.push(s),
                _ => {
                    return Err(BatchError::Input(
                        "a column changed type while it was read".into(),
                    ))
                }
            }
        }
        self.pending_keys.push((key, span));
        if self.pending_keys.len() >= self.batch_max {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the pending rows to the app: its filter first, then each kept row to its slot.
    pub fn flush(&mut self) -> Result<(), BatchError> {
        if self.pending_keys.is_empty() {
            return Ok(());
        }
        let rows = self.pending_keys.len();
        let mut batch = Batch {
            rows: rows as u32,
            columns: self.columns.iter_mut().map(Builder::take).collect(),
        };
        let mut pending = std::mem::take(&mut self.pending_keys);
        if self.spec.has_filter {
            let keep = self.instance.filter(&batch)?;
            let kept = keep.iter().filter(|k| **k).count();
            if kept < rows {
                self.counts.filtered += (rows - kept) as u64;
                batch = Batch {
                    rows: kept as u32,
                    columns: batch
                        .columns
                        .into_iter()
                        .map(|c| retain(c, &keep))
                        .collect(),
                };
                let mut flags = keep.iter();
                pending.retain(|_| flags.next().copied().unwrap_or(false));
            }
        }
        let mut slots = Vec::with_capacity(pending.len());
        for (key, span) in pending.drain(..) {
            let slot = match self.slots.get(&key) {
                Some(slot) => *slot,
                None => {
                    let slot = self.keys.len() as u32;
                    self.slots.insert(key.clone(), slot);
                    self.keys.push(key);
                    self.spans.push(None);
                    slot
                }
            };
            if let (Some(known), Some((start, end))) = (self.spans.get_mut(slot as usize), span) {
                *known = Some(match *known {
                    None => (start, end),
                    Some((s, e)) => (s.min(start), e.max(end)),
                });
            }
            slots.push(slot);
        }
        self.counts.used += slots.len() as u64;
        self.pending_keys = pending;
        if !slots.is_empty() {
            self.instance.accumulate(&slots, &batch)?;
        }
        Ok(())
    }

    /// Emits every slot once and returns the rows ordered by key.
    pub fn finish(mut self) -> Result<(Vec<ResultRow>, Counts), BatchError> {
        self.flush()?;
        let all: Vec<u32> = (0..self.keys.len() as u32).collect();
        let mut rows = Vec::with_capacity(all.len());
        for chunk in all.chunks(EMIT_CHUNK) {
            let batch = self.instance.emit(chunk, &self.spec.outputs)?;
            for (i, slot) in chunk.iter().enumerate() {
                let values = batch
                    .columns
                    .iter()
                    .filter_map(|c| cell(c, i).map(Value::from))
                    .collect();
                rows.push(ResultRow {
                    key: self.keys[*slot as usize].clone(),
                    span: self.spans[*slot as usize],
                    values,
                });
            }
        }
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((rows, self.counts))
    }
}

fn retain(column: Column, keep: &[bool]) -> Column {
    fn kept<T>(values: Vec<T>, keep: &[bool]) -> Vec<T> {
        values
            .into_iter()
            .zip(keep)
            .filter_map(|(v, k)| k.then_some(v))
            .collect()
    }
    match column {
        Column::Booleans(v) => Column::Booleans(kept(v, keep)),
        Column::Integers(v) => Column::Integers(kept(v, keep)),
        Column::Doubles(v) => Column::Doubles(kept(v, keep)),
        Column::Texts(v) => Column::Texts(kept(v, keep)),
        Column::Timestamps(v) => Column::Timestamps(kept(v, keep)),
    }
}
