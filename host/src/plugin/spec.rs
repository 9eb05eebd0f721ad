//! What an app says about itself, checked once at load so the hot path can trust it.

use std::time::Duration;

use super::bindings::mysimbdp::tenant::types::{self as wit, AppInfo};
use super::{Column, FieldType, TimeFormat};
use crate::names::{cql_identifier, AppName};
use crate::window::Assigner;

/// An input or output field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub kind: FieldType,
}

impl FieldSpec {
    pub fn matches(&self, column: &Column) -> bool {
        matches!(
            (self.kind, column),
            (FieldType::Boolean, Column::Booleans(_))
                | (FieldType::Integer, Column::Integers(_))
                | (FieldType::Double, Column::Doubles(_))
                | (FieldType::Text, Column::Texts(_))
                | (FieldType::Timestamp, Column::Timestamps(_))
        )
    }
}

/// Where a record's event time comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum EventTimeSource {
    /// The Kafka record's timestamp.
    Ingestion,
    Field {
        name: String,
        format: TimeFormat,
    },
}

/// When results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    OnUpdate,
    OnClose,
    Both,
}

impl EmitMode {
    pub fn updates(self) -> bool {
        matches!(self, EmitMode::OnUpdate | EmitMode::Both)
    }
}

/// Columns the platform adds to every results table; an app's outputs may not reuse them.
pub const RESERVED_COLUMNS: [&str; 5] = [
    "window_start",
    "window_end",
    "final",
    "app_version",
    "updated_at",
];

/// A checked app description.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub name: AppName,
    pub version: String,
    pub table: String,
    pub inputs: Vec<FieldSpec>,
    pub key_field: String,
    pub event_time: EventTimeSource,
    pub assigner: Assigner,
    pub watermark_delay_ms: u64,
    pub allowed_lateness_ms: u64,
    pub emit: EmitMode,
    pub update_interval: Duration,
    pub outputs: Vec<FieldSpec>,
    pub state_version: u32,
    pub has_filter: bool,
}

fn fields(fields: Vec<wit::Field>) -> Vec<FieldSpec> {
    fields
        .into_iter()
        .map(|f| FieldSpec {
            name: f.name,
            kind: f.kind,
        })
        .collect()
}

impl AppSpec {
    /// What open windows mean: the key, the window and the event time. A build that changes
    /// any of them cannot take over saved windows.
    pub fn geometry(&self) -> String {
        format!(
            "key={}; window={:?}; event_time={:?}",
            self.key_field, self.assigner, self.event_time
        )
    }

    pub fn from_info(info: AppInfo) -> Result<Self, String> {
        let name = AppName::new(&info.name).map_err(|e| e.to_string())?;
        let table = cql_identifier("table", &info.table).map_err(|e| e.to_string())?;
        let key_field = cql_identifier("key field", &info.key_field).map_err(|e| e.to_string())?;
        let inputs = fields(info.inputs);
        let outputs = fields(info.outputs);
        if outputs.is_empty() {
            return Err("the app declares no output columns".into());
        }
        for (i, field) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|f| f.name == field.name) {
                return Err(format!("input field `{}` is declared twice", field.name));
            }
        }
        for (i, field) in outputs.iter().enumerate() {
            cql_identifier("output column", &field.name).map_err(|e| e.to_string())?;
            if RESERVED_COLUMNS.contains(&field.name.as_str()) || field.name == key_field {
                return Err(format!(
                    "output column `{}` clashes with a column the platform writes",
                    field.name
                ));
            }
            if outputs[..i].iter().any(|f| f.name == field.name) {
                return Err(format!("output column `{}` is declared twice", field.name));
            }
        }
        let event_time = match info.event_time {
            wit::EventTime::Ingestion => EventTimeSource::Ingestion,
            wit::EventTime::Field(f) if f.name.is_empty() => {
                return Err("the event-time field has no name".into())
            }
            wit::EventTime::Field(f) => EventTimeSource::Field {
                name: f.name,
                format: f.format,
            },
        };
        let assigner = match info.window {
            wit::Window::Tumbling(size_ms) if size_ms > 0 => Assigner::Tumbling { size_ms },
            wit::Window::Sliding(s) if s.size_ms > 0 && s.slide_ms > 0 => Assigner::Sliding {
                size_ms: s.size_ms,
                slide_ms: s.slide_ms,
            },
            wit::Window::Session(_) => {
                return Err("session windows are not supported by this platform version yet".into())
            }
            _ => return Err("a window's size and slide must be above zero".into()),
        };
        let emit = match info.emit {
            wit::EmitMode::OnUpdate => EmitMode::OnUpdate,
            wit::EmitMode::OnClose => EmitMode::OnClose,
            wit::EmitMode::Both => EmitMode::Both,
        };
        if emit.updates() && info.update_interval_ms < 10 {
            return Err(format!(
                "update interval of {} ms is below the 10 ms minimum",
                info.update_interval_ms
            ));
        }
        Ok(Self {
            name,
            version: info.version,
            table,
            inputs,
            key_field,
            event_time,
            assigner,
            watermark_delay_ms: info.watermark_delay_ms,
            allowed_lateness_ms: info.allowed_lateness_ms,
            emit,
            update_interval: Duration::from_millis(info.update_interval_ms),
            outputs,
            state_version: info.state_version,
            has_filter: info.has_filter,
        })
    }
}
