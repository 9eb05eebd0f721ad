//! Where results go: one upserted Cassandra row per (key, window), the app's results topic,
//! and the late and dead-letter topics that keep what the stream could not use.

pub mod cassandra;
pub mod kafka;

use crate::plugin::{Batch, Column};
use crate::window::Window;

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

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
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

/// A record the stream could not use, with why and where it came from.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: String,
    pub source: String,
}
