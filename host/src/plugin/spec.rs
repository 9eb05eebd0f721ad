//! What an app says about itself, checked once at load so the hot path can trust it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::since_v0_1::types::{self as wit, AppInfo};
use super::{Column, FieldType, TimeFormat};
use crate::names::{cql_identifier, AppName, NameError};
use crate::time::{format_span, TEN_YEARS_MS};
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
    /// Sections of a v0.2 manifest that belong to a stage (`[enrich]`), for that stage.
    pub sections: BTreeMap<String, toml::Table>,
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

/// What the operator lets an app declare (`[limits]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecLimits {
    /// Windows one record may fall in (size / slide, rounded up): each costs the host a slot
    /// lookup and a guest accumulation per record.
    pub max_windows_per_record: u64,
    /// Whether the key may name several fields (`product_id,month`): `mysimbdp batch` groups
    /// rows by such a composite key, while a stream's records are keyed by one field.
    pub composite_keys: bool,
}

impl Default for SpecLimits {
    fn default() -> Self {
        Self {
            max_windows_per_record: 1000,
            composite_keys: false,
        }
    }
}

/// Most fields in a composite key.
pub const MAX_KEY_FIELDS: usize = 4;

/// The shortest update interval: more often costs a plugin call and writes for no reader.
pub const MIN_UPDATE_INTERVAL_MS: u64 = 10;
/// The longest update interval: a day without an update is `on_close`, not an interval.
pub const MAX_UPDATE_INTERVAL_MS: u64 = 86_400_000;
/// Longest version string: it goes into every results row and message.
pub const MAX_VERSION_BYTES: usize = 64;
/// Longest input field name (a JSON member name; output names are CQL identifiers, ≤ 48).
pub const MAX_FIELD_NAME_BYTES: usize = 128;
/// Most input fields, and most output columns.
pub const MAX_FIELDS: usize = 128;
/// Most bytes of text in a description, all strings together.
pub const MAX_DESCRIPTION_BYTES: usize = 16 << 10;

/// Why an app's description was refused: the setting, its value, the bound and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Name(String),
    #[error("{what} is {len} bytes (`{shown}…`); at most {max} are allowed: shorten it")]
    TooLong {
        what: String,
        len: usize,
        max: usize,
        shown: String,
    },
    #[error("{what} `{shown}` contains a control character or is empty: use printable text")]
    Unprintable { what: &'static str, shown: String },
    #[error("the app declares {count} {what}; at most {max} are allowed")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error(
        "the description holds {len} bytes of text; at most {max} are allowed: shorten its names"
    )]
    TooBig { len: usize, max: usize },
    #[error(
        "{setting} {value} ms ({shown}) is outside {min} ms ..= {max_shown} ({max} ms): {fix}"
    )]
    OutOfRange {
        setting: &'static str,
        value: u64,
        shown: String,
        min: u64,
        max: u64,
        max_shown: String,
        fix: &'static str,
    },
    #[error("window slide {slide_ms} ms gives {windows} windows per record (size {size_ms} ms); at most {max} are allowed ([limits] max_windows_per_record): use a larger slide, at least {min_slide_ms} ms")]
    TooManyWindows {
        size_ms: u64,
        slide_ms: u64,
        windows: u64,
        max: u64,
        min_slide_ms: u64,
    },
    #[error("the app declares no output columns")]
    NoOutputs,
    #[error("{what} `{name}` is declared twice")]
    Twice { what: &'static str, name: String },
    #[error("output column `{0}` clashes with a column the platform writes")]
    Reserved(String),
    #[error("the event-time field has no name")]
    UnnamedEventTime,
    #[error("key `{0}` names several fields: a stream's records are keyed by one field, so declare one key field; a composite key is for `mysimbdp batch`")]
    CompositeKey(String),
    #[error("key `{key}` names {count} fields; at most {MAX_KEY_FIELDS} are allowed")]
    TooManyKeyFields { key: String, count: usize },
}

/// A refused name, with any control character escaped before it reaches a log.
fn name_error(e: NameError) -> SpecError {
    let text = e.to_string();
    if text.chars().any(char::is_control) {
        SpecError::Name(text.escape_debug().to_string())
    } else {
        SpecError::Name(text)
    }
}

/// At most 32 characters of a string a tenant chose, for a refusal that must stay short.
fn shown(s: &str) -> String {
    s.chars().take(32).collect()
}

fn bounded(what: impl Into<String>, value: &str, max: usize) -> Result<(), SpecError> {
    if value.len() > max {
        return Err(SpecError::TooLong {
            what: what.into(),
            len: value.len(),
            max,
            shown: shown(value),
        });
    }
    Ok(())
}

fn printable(what: &'static str, value: &str) -> Result<(), SpecError> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(SpecError::Unprintable {
            what,
            shown: shown(value).escape_debug().to_string(),
        });
    }
    Ok(())
}

/// A length of time the app declares, checked against `min ..= TEN_YEARS_MS`.
fn span(
    setting: &'static str,
    value: u64,
    min: u64,
    max: u64,
    fix: &'static str,
) -> Result<u64, SpecError> {
    if (min..=max).contains(&value) {
        return Ok(value);
    }
    Err(SpecError::OutOfRange {
        setting,
        value,
        shown: format_span(value),
        min,
        max,
        max_shown: format_span(max),
        fix,
    })
}

/// The total text of a description, counted before anything else is looked at.
fn text_bytes(info: &AppInfo) -> usize {
    let fields = |f: &[wit::Field]| f.iter().map(|f| f.name.len()).sum::<usize>();
    let event_time = match &info.event_time {
        wit::EventTime::Field(f) => f.name.len(),
        wit::EventTime::Ingestion => 0,
    };
    info.name.len()
        + info.version.len()
        + info.table.len()
        + info.key_field.len()
        + event_time
        + fields(&info.inputs)
        + fields(&info.outputs)
}

/// The key: one field, or for batch apps up to [`MAX_KEY_FIELDS`] separated by commas, each a
/// CQL identifier and none twice.
fn key_fields(key: &str, limits: &SpecLimits) -> Result<String, SpecError> {
    let parts: Vec<&str> = key.split(',').collect();
    if parts.len() > 1 && !limits.composite_keys {
        return Err(SpecError::CompositeKey(
            shown(key).escape_debug().to_string(),
        ));
    }
    if parts.len() > MAX_KEY_FIELDS {
        return Err(SpecError::TooManyKeyFields {
            key: shown(key),
            count: parts.len(),
        });
    }
    for (i, part) in parts.iter().enumerate() {
        cql_identifier("key field", part).map_err(name_error)?;
        if parts[..i].contains(part) {
            return Err(SpecError::Twice {
                what: "key field",
                name: (*part).to_owned(),
            });
        }
    }
    Ok(key.to_owned())
}

impl AppSpec {
    /// The fields the key is made of, in order: one for a stream app, one or more in batch.
    pub fn key_fields(&self) -> impl Iterator<Item = &str> {
        self.key_field.split(',')
    }

    /// Checks what an app says about itself against the platform's bounds and `limits`; the
    /// refusal names the setting, the value, the bound and the fix.
    pub fn from_info(info: AppInfo, limits: &SpecLimits) -> Result<Self, SpecError> {
        let text = text_bytes(&info);
        if text > MAX_DESCRIPTION_BYTES {
            return Err(SpecError::TooBig {
                len: text,
                max: MAX_DESCRIPTION_BYTES,
            });
        }
        for (what, list) in [
            ("input fields", &info.inputs),
            ("output columns", &info.outputs),
        ] {
            if list.len() > MAX_FIELDS {
                return Err(SpecError::TooMany {
                    what,
                    count: list.len(),
                    max: MAX_FIELDS,
                });
            }
        }
        // Names are bounded before they are checked, so no refusal echoes a long one.
        bounded("the app name", &info.name, 64)?;
        bounded("the table name", &info.table, 48)?;
        bounded("the key field", &info.key_field, 48)?;
        bounded("the version string", &info.version, MAX_VERSION_BYTES)?;
        printable("the version string", &info.version)?;
        let name = AppName::new(&info.name).map_err(name_error)?;
        let table = cql_identifier("table", &info.table).map_err(name_error)?;
        let key_field = key_fields(&info.key_field, limits)?;
        for field in &info.inputs {
            bounded(
                format!("input field `{}…`", shown(&field.name)),
                &field.name,
                MAX_FIELD_NAME_BYTES,
            )?;
            printable("an input field name", &field.name)?;
        }
        for field in &info.outputs {
            bounded("an output column name", &field.name, 48)?;
        }
        let inputs = fields(info.inputs);
        let outputs = fields(info.outputs);
        if outputs.is_empty() {
            return Err(SpecError::NoOutputs);
        }
        for (i, field) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|f| f.name == field.name) {
                return Err(SpecError::Twice {
                    what: "input field",
                    name: field.name.clone(),
                });
            }
        }
        for (i, field) in outputs.iter().enumerate() {
            cql_identifier("output column", &field.name).map_err(name_error)?;
            if RESERVED_COLUMNS.contains(&field.name.as_str())
                || key_field.split(',').any(|k| k == field.name)
            {
                return Err(SpecError::Reserved(field.name.clone()));
            }
            if outputs[..i].iter().any(|f| f.name == field.name) {
                return Err(SpecError::Twice {
                    what: "output column",
                    name: field.name.clone(),
                });
            }
        }
        let event_time = match info.event_time {
            wit::EventTime::Ingestion => EventTimeSource::Ingestion,
            wit::EventTime::Field(f) if f.name.is_empty() => {
                return Err(SpecError::UnnamedEventTime)
            }
            wit::EventTime::Field(f) => {
                bounded("the event-time field", &f.name, MAX_FIELD_NAME_BYTES)?;
                printable("the event-time field", &f.name)?;
                EventTimeSource::Field {
                    name: f.name,
                    format: f.format,
                }
            }
        };
        let assigner = assigner(info.window, limits)?;
        let watermark_delay_ms = span(
            "watermark delay",
            info.watermark_delay_ms,
            0,
            TEN_YEARS_MS,
            "declare a shorter watermark_delay",
        )?;
        let allowed_lateness_ms = span(
            "allowed lateness",
            info.allowed_lateness_ms,
            0,
            TEN_YEARS_MS,
            "declare a shorter allowed_lateness",
        )?;
        let emit = match info.emit {
            wit::EmitMode::OnUpdate => EmitMode::OnUpdate,
            wit::EmitMode::OnClose => EmitMode::OnClose,
            wit::EmitMode::Both => EmitMode::Both,
        };
        if emit.updates() {
            span(
                "update interval",
                info.update_interval_ms,
                MIN_UPDATE_INTERVAL_MS,
                MAX_UPDATE_INTERVAL_MS,
                "declare an interval within it, or emit on_close()",
            )?;
        }
        Ok(Self {
            name,
            version: info.version,
            table,
            inputs,
            key_field,
            event_time,
            assigner,
            watermark_delay_ms,
            allowed_lateness_ms,
            emit,
            update_interval: Duration::from_millis(info.update_interval_ms),
            outputs,
            state_version: info.state_version,
            has_filter: info.has_filter,
            sections: BTreeMap::new(),
        })
    }

    /// The stages' sections of the app's manifest.
    pub fn with_sections(mut self, sections: BTreeMap<String, toml::Table>) -> Self {
        self.sections = sections;
        self
    }
}

/// The window, each length within 1 ms ..= ten years, and no more windows per record than the
/// operator allows.
fn assigner(window: wit::Window, limits: &SpecLimits) -> Result<Assigner, SpecError> {
    const MIN: u64 = 1;
    let assigner = match window {
        wit::Window::Tumbling(size_ms) => Assigner::Tumbling {
            size_ms: span(
                "window size",
                size_ms,
                MIN,
                TEN_YEARS_MS,
                "declare a size within it",
            )?,
        },
        wit::Window::Sliding(s) => Assigner::Sliding {
            size_ms: span(
                "window size",
                s.size_ms,
                MIN,
                TEN_YEARS_MS,
                "declare a size within it",
            )?,
            slide_ms: span(
                "window slide",
                s.slide_ms,
                MIN,
                TEN_YEARS_MS,
                "declare a slide within it",
            )?,
        },
        wit::Window::Session(gap_ms) => Assigner::Session {
            gap_ms: span(
                "session gap",
                gap_ms,
                MIN,
                TEN_YEARS_MS,
                "declare a gap within it",
            )?,
        },
    };
    let windows = assigner.max_windows_per_record();
    if let Assigner::Sliding { size_ms, slide_ms } = assigner {
        if windows > limits.max_windows_per_record {
            return Err(SpecError::TooManyWindows {
                size_ms,
                slide_ms,
                windows,
                max: limits.max_windows_per_record,
                min_slide_ms: size_ms.div_ceil(limits.max_windows_per_record.max(1)),
            });
        }
    }
    Ok(assigner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn field(name: &str, kind: FieldType) -> wit::Field {
        wit::Field {
            name: name.into(),
            kind,
        }
    }

    /// reviews-daily as it describes itself.
    fn reviews() -> AppInfo {
        AppInfo {
            name: "reviews-daily".into(),
            version: "1.0.0".into(),
            table: "aggregated_reviews".into(),
            inputs: vec![field("star_rating", FieldType::Integer)],
            key_field: "product_id".into(),
            event_time: wit::EventTime::Field(wit::TimeField {
                name: "review_date".into(),
                format: TimeFormat::Date,
            }),
            window: wit::Window::Tumbling(DAY),
            watermark_delay_ms: 2 * DAY,
            allowed_lateness_ms: 0,
            emit: wit::EmitMode::OnUpdate,
            update_interval_ms: 1000,
            outputs: vec![field("avg_star_rating", FieldType::Double)],
            state_version: 1,
            has_filter: false,
        }
    }

    fn refused(info: AppInfo) -> String {
        AppSpec::from_info(info, &SpecLimits::default())
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_composite_key_is_for_batch_only() {
        let info = AppInfo {
            key_field: "product_id,month".into(),
            ..reviews()
        };
        let err = refused(info.clone());
        assert!(
            err.contains("a composite key is for `mysimbdp batch`"),
            "{err}"
        );
        let batch = SpecLimits {
            composite_keys: true,
            ..SpecLimits::default()
        };
        let spec = AppSpec::from_info(info, &batch).expect("a batch app may group by two fields");
        assert_eq!(
            spec.key_fields().collect::<Vec<_>>(),
            ["product_id", "month"]
        );
        for (key, needle) in [
            ("product_id,product_id", "declared twice"),
            ("a,b,c,d,e", "at most 4"),
            ("product_id,Month", "key field `Month` is not valid"),
        ] {
            let err = AppSpec::from_info(
                AppInfo {
                    key_field: key.into(),
                    ..reviews()
                },
                &batch,
            )
            .expect_err(key)
            .to_string();
            assert!(err.contains(needle), "{key}: {err}");
        }
    }

    fn sliding(size_ms: u64, slide_ms: u64) -> wit::Window {
        wit::Window::Sliding(wit::Sliding { size_ms, slide_ms })
    }

    #[test]
    fn a_sane_app_is_accepted() {
        let spec = AppSpec::from_info(reviews(), &SpecLimits::default()).unwrap();
        assert_eq!(spec.assigner, Assigner::Tumbling { size_ms: DAY });
        assert_eq!(spec.watermark_delay_ms, 2 * DAY);
        let on_close = AppInfo {
            window: sliding(TEN_YEARS_MS, TEN_YEARS_MS / 1000),
            emit: wit::EmitMode::OnClose,
            update_interval_ms: 0,
            watermark_delay_ms: TEN_YEARS_MS,
            allowed_lateness_ms: TEN_YEARS_MS,
            ..reviews()
        };
        AppSpec::from_info(on_close, &SpecLimits::default()).expect("every bound is inclusive");
    }

    #[test]
    fn a_one_ms_slide_is_refused_with_the_count_the_bound_and_the_fix() {
        let err = refused(AppInfo {
            window: sliding(30 * DAY, 1),
            ..reviews()
        });
        assert_eq!(
            err,
            "window slide 1 ms gives 2592000000 windows per record (size 2592000000 ms); at most 1000 are allowed ([limits] max_windows_per_record): use a larger slide, at least 2592000 ms"
        );
        let limits = SpecLimits {
            max_windows_per_record: 30,
            ..SpecLimits::default()
        };
        let daily = AppInfo {
            window: sliding(30 * DAY, DAY),
            ..reviews()
        };
        assert!(
            AppSpec::from_info(daily.clone(), &limits).is_ok(),
            "30 windows"
        );
        let limits = SpecLimits {
            max_windows_per_record: 29,
            ..SpecLimits::default()
        };
        let err = AppSpec::from_info(daily, &limits).unwrap_err();
        assert!(err.to_string().contains("gives 30 windows"), "{err}");
    }

    #[test]
    fn lengths_of_time_are_bounded() {
        for (window, needle) in [
            (
                wit::Window::Tumbling(0),
                "window size 0 ms (0 ms) is outside 1 ms ..= 10 years (315576000000 ms)",
            ),
            (
                wit::Window::Tumbling(TEN_YEARS_MS + 1),
                "window size 315576000001 ms (10 years) is outside",
            ),
            (sliding(DAY, 0), "window slide 0 ms"),
            (sliding(DAY, 1 << 63), "window slide 9223372036854775808 ms"),
            (
                sliding(u64::MAX, DAY),
                "window size 18446744073709551615 ms",
            ),
            (wit::Window::Session(0), "session gap 0 ms"),
        ] {
            let err = refused(AppInfo {
                window,
                ..reviews()
            });
            assert!(err.starts_with(needle), "{err}");
        }
        let sessions = AppSpec::from_info(
            AppInfo {
                window: wit::Window::Session(DAY),
                ..reviews()
            },
            &SpecLimits::default(),
        )
        .unwrap();
        assert_eq!(sessions.assigner, Assigner::Session { gap_ms: DAY });
        let err = refused(AppInfo {
            watermark_delay_ms: u64::MAX,
            ..reviews()
        });
        assert!(
            err.starts_with("watermark delay 18446744073709551615 ms"),
            "{err}"
        );
        assert!(err.ends_with("declare a shorter watermark_delay"), "{err}");
        let err = refused(AppInfo {
            allowed_lateness_ms: TEN_YEARS_MS + 1,
            ..reviews()
        });
        assert!(err.starts_with("allowed lateness 315576000001 ms"), "{err}");
    }

    #[test]
    fn the_update_interval_is_sane_when_updates_are_emitted() {
        for bad in [0, 9, DAY + 1, u64::MAX] {
            let err = refused(AppInfo {
                update_interval_ms: bad,
                ..reviews()
            });
            assert!(
                err.starts_with(&format!("update interval {bad} ms"))
                    && err.contains("outside 10 ms ..= 1 day (86400000 ms)"),
                "{err}"
            );
        }
        for good in [10, DAY] {
            let info = AppInfo {
                update_interval_ms: good,
                emit: wit::EmitMode::Both,
                ..reviews()
            };
            assert!(AppSpec::from_info(info, &SpecLimits::default()).is_ok());
        }
    }

    #[test]
    fn names_and_strings_are_bounded_and_never_echoed_whole() {
        let long = "x".repeat(100_000);
        let err = refused(AppInfo {
            version: long.clone(),
            ..reviews()
        });
        assert!(err.starts_with("the description holds 100"), "{err}");
        for info in [
            AppInfo {
                version: "v".repeat(65),
                ..reviews()
            },
            AppInfo {
                name: "a".repeat(65),
                ..reviews()
            },
            AppInfo {
                table: "t".repeat(49),
                ..reviews()
            },
            AppInfo {
                inputs: vec![field(&"f".repeat(129), FieldType::Integer)],
                ..reviews()
            },
        ] {
            let err = refused(info);
            assert!(err.contains("at most") && err.len() < 200, "{err}");
        }
        let err = refused(AppInfo {
            version: "1.0\n\u{1b}[31m".into(),
            ..reviews()
        });
        assert_eq!(
            err,
            "the version string `1.0\\n\\u{1b}[31m` contains a control character or is empty: use printable text"
        );
        let many: Vec<wit::Field> = (0..129)
            .map(|i| field(&format!("f{i}"), FieldType::Integer))
            .collect();
        assert_eq!(
            refused(AppInfo {
                inputs: many,
                ..reviews()
            }),
            "the app declares 129 input fields; at most 128 are allowed"
        );
        let err = refused(AppInfo {
            name: "Bad\u{7}".into(),
            ..reviews()
        });
        assert!(err.contains("Bad\\u{7}"), "escaped: {err}");
    }
}
