//! What open windows mean (the key field, the window and the event time), written into every
//! checkpoint in an explicit, versioned encoding: a rename in the code or a wasmtime upgrade
//! must never make saved state "incompatible". Checkpoints of the release before this encoding
//! carry a debug rendering of the same three; they are still understood.

use serde_json::{json, Value};

use crate::plugin::{AppSpec, EventTimeSource, TimeFormat};
use crate::window::Assigner;

/// The part of an app's description that saved windows depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    key_field: String,
    window: Assigner,
    event_time: Time,
}

/// Where event time comes from, in the encoding's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Time {
    Ingestion,
    Field { name: String, format: &'static str },
}

/// The first part that differs between two geometries, in words for a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Key,
    Window,
    EventTime,
    /// A checkpoint of the earlier release that does not match: its parts are not told apart.
    Unknown,
}

impl Difference {
    /// Which setting changed, for a refusal.
    pub fn what(&self) -> &'static str {
        match self {
            Difference::Key => "key field",
            Difference::Window => "window kind or size",
            Difference::EventTime => "event-time field",
            Difference::Unknown => "key, window or event time",
        }
    }
}

const VERSION: u64 = 1;

/// The spelling of the earlier release, which rendered the generated type's `Debug`.
fn legacy_format_name(format: &str) -> &'static str {
    match format {
        "date" => "TimeFormat::Date",
        "rfc3339" => "TimeFormat::Rfc3339",
        "epoch-millis" => "TimeFormat::EpochMillis",
        _ => "TimeFormat::EpochSeconds",
    }
}

impl Geometry {
    /// The geometry an app declares.
    pub fn of(spec: &AppSpec) -> Self {
        Self {
            key_field: spec.key_field.clone(),
            window: spec.assigner,
            event_time: match &spec.event_time {
                EventTimeSource::Ingestion => Time::Ingestion,
                EventTimeSource::Field { name, format } => Time::Field {
                    name: name.clone(),
                    format: format.name(),
                },
            },
        }
    }

    /// The encoding saved with a checkpoint.
    pub fn encode(&self) -> String {
        let window = match self.window {
            Assigner::Tumbling { size_ms } => json!(["tumbling", size_ms]),
            Assigner::Sliding { size_ms, slide_ms } => json!(["sliding", size_ms, slide_ms]),
            Assigner::Session { gap_ms } => json!(["session", gap_ms]),
        };
        let time = match &self.event_time {
            Time::Ingestion => json!(["ingestion"]),
            Time::Field { name, format } => json!(["field", name, format]),
        };
        json!({"v": VERSION, "key": self.key_field, "window": window, "time": time}).to_string()
    }

    /// Reads an encoding written by [`Self::encode`]; `None` for anything else.
    fn decode(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text).ok()?;
        if value.get("v")?.as_u64()? != VERSION {
            return None;
        }
        let key_field = value.get("key")?.as_str()?.to_owned();
        let window = value.get("window")?.as_array()?;
        let number = |i: usize| window.get(i).and_then(Value::as_u64);
        let window = match window.first()?.as_str()? {
            "tumbling" => Assigner::Tumbling {
                size_ms: number(1)?,
            },
            "sliding" => Assigner::Sliding {
                size_ms: number(1)?,
                slide_ms: number(2)?,
            },
            "session" => Assigner::Session { gap_ms: number(1)? },
            _ => return None,
        };
        let time = value.get("time")?.as_array()?;
        let event_time = match time.first()?.as_str()? {
            "ingestion" => Time::Ingestion,
            "field" => {
                let format = TimeFormat::named(time.get(2)?.as_str()?)?.name();
                Time::Field {
                    name: time.get(1)?.as_str()?.to_owned(),
                    format,
                }
            }
            _ => return None,
        };
        Some(Self {
            key_field,
            window,
            event_time,
        })
    }

    /// How the release before this encoding wrote the same geometry.
    fn legacy(&self) -> String {
        let window = match self.window {
            Assigner::Tumbling { size_ms } => format!("Tumbling {{ size_ms: {size_ms} }}"),
            Assigner::Sliding { size_ms, slide_ms } => {
                format!("Sliding {{ size_ms: {size_ms}, slide_ms: {slide_ms} }}")
            }
            Assigner::Session { gap_ms } => format!("Session {{ gap_ms: {gap_ms} }}"),
        };
        let time = match &self.event_time {
            Time::Ingestion => "Ingestion".to_owned(),
            Time::Field { name, format } => format!(
                "Field {{ name: {name:?}, format: {} }}",
                legacy_format_name(format)
            ),
        };
        format!("key={}; window={window}; event_time={time}", self.key_field)
    }

    /// Whether windows saved under `saved` (as a checkpoint holds it) mean what they mean
    /// under this geometry; if not, the first part that differs.
    pub fn check_saved(&self, saved: &str) -> Result<(), Difference> {
        match Self::decode(saved) {
            Some(saved) => saved.check(self),
            None if saved == self.legacy() => Ok(()),
            None => Err(Difference::Unknown),
        }
    }

    /// Whether windows opened under `self` mean what they mean under `now`.
    pub fn check(&self, now: &Geometry) -> Result<(), Difference> {
        if self.key_field != now.key_field {
            Err(Difference::Key)
        } else if self.window != now.window {
            Err(Difference::Window)
        } else if self.event_time != now.event_time {
            Err(Difference::EventTime)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily() -> Geometry {
        Geometry {
            key_field: "product_id".into(),
            window: Assigner::Tumbling {
                size_ms: 86_400_000,
            },
            event_time: Time::Field {
                name: "review_date".into(),
                format: "date",
            },
        }
    }

    #[test]
    fn an_encoding_reads_back_as_itself() {
        let sessions = Geometry {
            key_field: "customer \"id\"".into(),
            window: Assigner::Session {
                gap_ms: 259_200_000,
            },
            event_time: Time::Ingestion,
        };
        let sliding = Geometry {
            window: Assigner::Sliding {
                size_ms: 7,
                slide_ms: 3,
            },
            ..daily()
        };
        for g in [daily(), sessions, sliding] {
            assert_eq!(Geometry::decode(&g.encode()), Some(g.clone()));
            assert_eq!(g.check_saved(&g.encode()), Ok(()));
        }
    }

    /// Written by the release before this encoding (reviews-daily's checkpoints as stored in
    /// Cassandra): they must keep loading.
    #[test]
    fn checkpoints_of_the_previous_release_still_load() {
        let saved = "key=product_id; window=Tumbling { size_ms: 86400000 }; \
                     event_time=Field { name: \"review_date\", format: TimeFormat::Date }";
        assert_eq!(daily().check_saved(saved), Ok(()));
        let ingestion = Geometry {
            event_time: Time::Ingestion,
            window: Assigner::Session { gap_ms: 10 },
            ..daily()
        };
        let saved = "key=product_id; window=Session { gap_ms: 10 }; event_time=Ingestion";
        assert_eq!(ingestion.check_saved(saved), Ok(()));
        assert_eq!(
            ingestion
                .check_saved("key=product_id; window=Session { gap_ms: 11 }; event_time=Ingestion"),
            Err(Difference::Unknown)
        );
    }

    #[test]
    fn a_change_is_named() {
        let other_key = Geometry {
            key_field: "customer_id".into(),
            ..daily()
        };
        assert_eq!(
            other_key.check_saved(&daily().encode()),
            Err(Difference::Key)
        );
        let weekly = Geometry {
            window: Assigner::Tumbling {
                size_ms: 7 * 86_400_000,
            },
            ..daily()
        };
        assert_eq!(
            weekly.check_saved(&daily().encode()),
            Err(Difference::Window)
        );
        let seconds = Geometry {
            event_time: Time::Field {
                name: "review_date".into(),
                format: "epoch-seconds",
            },
            ..daily()
        };
        assert_eq!(
            seconds.check_saved(&daily().encode()),
            Err(Difference::EventTime)
        );
    }
}
