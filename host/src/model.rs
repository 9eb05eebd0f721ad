//! The host's own data model: columns, batches, field types, time formats and saved states.
//! Every contract version maps its WIT types onto these (`plugin/since_v0_*.rs`), so the
//! decoder, the processor, the sinks and checkpoints never see a generated type, and a second
//! contract version does not put a second `Column` everywhere.

use wasmtime::component::{ComponentType, Lift, Lower};

/// The type of an input or output field.
#[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[component(enum)]
#[repr(u8)]
pub enum FieldType {
    #[component(name = "boolean")]
    Boolean,
    #[component(name = "integer")]
    Integer,
    #[component(name = "double")]
    Double,
    #[component(name = "text")]
    Text,
    #[component(name = "timestamp")]
    Timestamp,
}

impl FieldType {
    /// The name a manifest and the docs use.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Boolean => "boolean",
            FieldType::Integer => "integer",
            FieldType::Double => "double",
            FieldType::Text => "text",
            FieldType::Timestamp => "timestamp",
        }
    }

    /// The type a manifest names, if it is one.
    pub fn named(name: &str) -> Option<Self> {
        [
            FieldType::Boolean,
            FieldType::Integer,
            FieldType::Double,
            FieldType::Text,
            FieldType::Timestamp,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

/// One value per row. Timestamps are milliseconds since the Unix epoch, UTC.
#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq)]
#[component(variant)]
pub enum Column {
    #[component(name = "booleans")]
    Booleans(Vec<bool>),
    #[component(name = "integers")]
    Integers(Vec<i64>),
    #[component(name = "doubles")]
    Doubles(Vec<f64>),
    #[component(name = "texts")]
    Texts(Vec<String>),
    #[component(name = "timestamps")]
    Timestamps(Vec<i64>),
}

/// Rows passed column by column, in the order the app declared its fields.
#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq)]
#[component(record)]
pub struct Batch {
    pub rows: u32,
    pub columns: Vec<Column>,
}

/// The states of a list of slots, flat: the state of slot i is
/// `bytes[offsets[i]..offsets[i + 1]]`.
#[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq, Eq)]
#[component(record)]
pub struct States {
    pub offsets: Vec<u32>,
    pub bytes: Vec<u8>,
}

/// How the event-time field is written in the input.
#[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[component(enum)]
#[repr(u8)]
pub enum TimeFormat {
    /// `YYYY-MM-DD`, read as UTC midnight.
    #[component(name = "date")]
    Date,
    /// RFC 3339 date and time with an offset.
    #[component(name = "rfc3339")]
    Rfc3339,
    #[component(name = "epoch-millis")]
    EpochMillis,
    #[component(name = "epoch-seconds")]
    EpochSeconds,
}

impl TimeFormat {
    /// The name a manifest uses.
    pub fn name(self) -> &'static str {
        match self {
            TimeFormat::Date => "date",
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::EpochMillis => "epoch-millis",
            TimeFormat::EpochSeconds => "epoch-seconds",
        }
    }

    /// The format a manifest names, if it is one.
    pub fn named(name: &str) -> Option<Self> {
        [
            TimeFormat::Date,
            TimeFormat::Rfc3339,
            TimeFormat::EpochMillis,
            TimeFormat::EpochSeconds,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

/// One value of a column, owned: a decoded input field before it joins its column, or an
/// output read back row by row (a replay's result, a batch run's row).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(String),
    /// Ms since the epoch, UTC.
    Time(i64),
}
