//! Alerts from the stream, with no change to the contract: an app whose outputs include a
//! boolean column named `alert` raises an alert for every window that closes with `alert`
//! true. The alert goes to `<tenant>.<app>.alerts` in the same Kafka transaction as the
//! results (so exactly once when the app's delivery is), keyed by a stable id
//! `<tenant>.<app>/<key>/<window start>`: a window closes once, so one alert per id, and a
//! consumer that sees an id again (at-least-once delivery) knows it for the same alert.

use serde_json::Value;

use crate::plugin::{AppSpec, FieldType};
use crate::sink::{cell, Cell, Emitted, RowFormat};
use crate::time::format_rfc3339;

/// The output column that marks a row as an alert.
pub const ALERT_COLUMN: &str = "alert";

/// Whether an app raises alerts: it has a boolean output named [`ALERT_COLUMN`].
pub fn raises_alerts(spec: &AppSpec) -> bool {
    alert_column(spec).is_some()
}

fn alert_column(spec: &AppSpec) -> Option<usize> {
    spec.outputs
        .iter()
        .position(|f| f.name == ALERT_COLUMN && f.kind == FieldType::Boolean)
}

/// Turns closed windows whose `alert` is true into alert records.
#[derive(Debug, Clone)]
pub struct AlertFormat {
    column: usize,
    /// `<tenant>.<app>`: the first part of every id.
    prefix: String,
}

/// One alert: its id (also the Kafka key) and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: String,
    pub payload: Vec<u8>,
}

impl AlertFormat {
    /// For an app that raises alerts, named by its alerts topic `<tenant>.<app>.alerts`.
    pub fn of(spec: &AppSpec, alerts_topic: &str) -> Option<Self> {
        Some(Self {
            column: alert_column(spec)?,
            prefix: alerts_topic
                .strip_suffix(".alerts")
                .unwrap_or(alerts_topic)
                .to_owned(),
        })
    }

    /// The alerts among the emitted rows: none unless the windows closed.
    pub fn alerts(&self, rows: &RowFormat, emitted: &Emitted) -> Vec<Alert> {
        if !emitted.closed {
            return Vec::new();
        }
        let Some(column) = emitted.outputs.columns.get(self.column) else {
            return Vec::new();
        };
        let mut alerts = Vec::new();
        for (row, (key, window)) in emitted.windows.iter().enumerate() {
            if cell(column, row) != Some(Cell::Bool(true)) {
                continue;
            }
            let id = format!("{}/{key}/{}", self.prefix, format_rfc3339(window.start));
            let mut object = rows.object(emitted, row);
            object.remove("final");
            object.insert("alert_id".into(), Value::String(id.clone()));
            object.insert("key".into(), Value::String(key.clone()));
            let payload = serde_json::to_vec(&object).unwrap_or_default();
            alerts.push(Alert { id, payload });
        }
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Batch, Column};
    use crate::time::EventTime;
    use crate::window::Window;

    fn emitted(closed: bool) -> Emitted {
        let day = 86_400_000;
        Emitted {
            windows: vec![
                (
                    "p1".into(),
                    Window {
                        start: EventTime::from_millis(0),
                        end: EventTime::from_millis(day),
                    },
                ),
                (
                    "p2".into(),
                    Window {
                        start: EventTime::from_millis(day),
                        end: EventTime::from_millis(2 * day),
                    },
                ),
            ],
            outputs: Batch {
                rows: 2,
                columns: vec![
                    Column::Integers(vec![12, 3]),
                    Column::Booleans(vec![true, false]),
                ],
            },
            closed,
        }
    }

    fn spec(outputs: &[(&str, FieldType)]) -> AppSpec {
        AppSpec {
            name: crate::names::AppName::new("reviews-alerts").expect("a valid name"),
            version: "1.0.0".into(),
            table: "reviews_alerts".into(),
            inputs: vec![],
            key_field: "product_id".into(),
            event_time: crate::plugin::EventTimeSource::Ingestion,
            assigner: crate::window::Assigner::Tumbling {
                size_ms: 86_400_000,
            },
            watermark_delay_ms: 0,
            allowed_lateness_ms: 0,
            emit: crate::plugin::EmitMode::OnClose,
            update_interval: std::time::Duration::ZERO,
            outputs: outputs
                .iter()
                .map(|(name, kind)| crate::plugin::FieldSpec {
                    name: (*name).into(),
                    kind: *kind,
                })
                .collect(),
            state_version: 1,
            has_filter: false,
            sections: Default::default(),
        }
    }

    #[test]
    fn an_alert_column_must_be_boolean() {
        assert!(!raises_alerts(&spec(&[("alert", FieldType::Integer)])));
        assert!(raises_alerts(&spec(&[("alert", FieldType::Boolean)])));
    }

    #[test]
    fn a_closed_window_with_alert_true_is_one_alert_with_a_stable_id() {
        let spec = spec(&[
            ("number_of_reviews", FieldType::Integer),
            ("alert", FieldType::Boolean),
        ]);
        let format = AlertFormat::of(&spec, "acme.reviews-alerts.alerts").expect("raises alerts");
        let rows = RowFormat::of(&spec);
        assert!(
            format.alerts(&rows, &emitted(false)).is_empty(),
            "updates are not alerts"
        );
        let alerts = format.alerts(&rows, &emitted(true));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].id, "acme.reviews-alerts/p1/1970-01-01T00:00:00Z");
        let json: Value = serde_json::from_slice(&alerts[0].payload).expect("JSON");
        assert_eq!(json["number_of_reviews"], 12);
        assert_eq!(json["window_end"], "1970-01-02T00:00:00Z");
        assert_eq!(json["alert_id"], alerts[0].id.as_str());
        assert!(json.get("final").is_none());
    }
}
