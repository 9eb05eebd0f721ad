//! The v0.2 manifest: what an app declares about itself, as a TOML document its `manifest`
//! call returns. The platform reads its own keys strictly (an unknown key is refused with its
//! name, so a typo or a setting this platform does not know yet never passes unnoticed) and
//! keeps the sections a stage owns (`[enrich]`) for that stage.
//!
//! ```toml
//! name = "reviews-daily"
//! version = "1.2.0"
//! table = "aggregated_reviews"
//! key = "product_id"
//! state_version = 1
//! filter = false
//! inputs = [{ name = "product_id", type = "text" }, { name = "star_rating", type = "integer" }]
//! outputs = [{ name = "avg_star_rating", type = "double" }]
//! event_time = { field = "review_date", format = "date" }   # or { ingestion = true }
//! window = { tumbling_ms = 86400000 }   # or { size_ms, slide_ms }, or { session_gap_ms }
//! watermark_delay_ms = 172800000
//! allowed_lateness_ms = 0
//! emit = { mode = "on-update", interval_ms = 1000 }   # on-update, on-close or both
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::since_v0_1::types::{AppInfo, EmitMode, EventTime, Field, Sliding, TimeField, Window};
use crate::model::{FieldType, TimeFormat};

/// Sections that belong to a stage of the platform rather than to the app's description.
pub const SECTIONS: [&str; 1] = ["enrich"];

/// A manifest read: the description, and the stages' sections.
pub struct Manifest {
    pub info: AppInfo,
    pub sections: BTreeMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    name: String,
    version: String,
    table: String,
    key: String,
    state_version: u32,
    #[serde(default)]
    filter: bool,
    inputs: Vec<FieldDecl>,
    outputs: Vec<FieldDecl>,
    event_time: TimeDecl,
    window: WindowDecl,
    #[serde(default)]
    watermark_delay_ms: u64,
    #[serde(default)]
    allowed_lateness_ms: u64,
    emit: EmitDecl,
    #[serde(default)]
    enrich: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldDecl {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeDecl {
    field: Option<String>,
    format: Option<String>,
    #[serde(default)]
    ingestion: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowDecl {
    tumbling_ms: Option<u64>,
    size_ms: Option<u64>,
    slide_ms: Option<u64>,
    session_gap_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitDecl {
    mode: String,
    #[serde(default)]
    interval_ms: u64,
}

fn field_type(field: &str, kind: &str) -> Result<FieldType, String> {
    FieldType::named(kind).ok_or_else(|| {
        format!(
            "field `{field}` has type `{kind}`; use boolean, integer, double, text or timestamp"
        )
    })
}

fn fields(declared: Vec<FieldDecl>) -> Result<Vec<Field>, String> {
    declared
        .into_iter()
        .map(|f| {
            Ok(Field {
                kind: field_type(&f.name, &f.kind)?,
                name: f.name,
            })
        })
        .collect()
}

impl TimeDecl {
    fn read(self) -> Result<EventTime, String> {
        match (self.ingestion, self.field, self.format) {
            (true, None, None) => Ok(EventTime::Ingestion),
            (false, Some(name), Some(format)) => Ok(EventTime::Field(TimeField {
                format: TimeFormat::named(&format).ok_or_else(|| {
                    format!("event_time.format is `{format}`; use date, rfc3339, epoch-millis or epoch-seconds")
                })?,
                name,
            })),
            _ => Err("event_time takes either `field` and `format`, or `ingestion = true`".into()),
        }
    }
}

impl WindowDecl {
    fn read(self) -> Result<Window, String> {
        match (
            self.tumbling_ms,
            self.size_ms,
            self.slide_ms,
            self.session_gap_ms,
        ) {
            (Some(size), None, None, None) => Ok(Window::Tumbling(size)),
            (None, Some(size_ms), Some(slide_ms), None) => {
                Ok(Window::Sliding(Sliding { size_ms, slide_ms }))
            }
            (None, None, None, Some(gap)) => Ok(Window::Session(gap)),
            _ => Err(
                "window takes one of `tumbling_ms`, `size_ms` with `slide_ms`, or `session_gap_ms`"
                    .into(),
            ),
        }
    }
}

impl EmitDecl {
    fn read(self) -> Result<(EmitMode, u64), String> {
        let mode = match self.mode.as_str() {
            "on-update" => EmitMode::OnUpdate,
            "on-close" => EmitMode::OnClose,
            "both" => EmitMode::Both,
            other => {
                return Err(format!(
                    "emit.mode is `{other}`; use on-update, on-close or both"
                ))
            }
        };
        Ok((mode, self.interval_ms))
    }
}

/// Reads a manifest; the refusal names the key and the fix.
pub fn parse(text: &str) -> Result<Manifest, String> {
    let doc: Document = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let (emit, update_interval_ms) = doc.emit.read()?;
    let info = AppInfo {
        name: doc.name,
        version: doc.version,
        table: doc.table,
        inputs: fields(doc.inputs)?,
        key_field: doc.key,
        event_time: doc.event_time.read()?,
        window: doc.window.read()?,
        watermark_delay_ms: doc.watermark_delay_ms,
        allowed_lateness_ms: doc.allowed_lateness_ms,
        emit,
        update_interval_ms,
        outputs: fields(doc.outputs)?,
        state_version: doc.state_version,
        has_filter: doc.filter,
    };
    let sections = doc
        .enrich
        .map(|table| (SECTIONS[0].to_owned(), table))
        .into_iter()
        .collect();
    Ok(Manifest { info, sections })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAILY: &str = r#"
        name = "reviews-daily"
        version = "1.0.0"
        table = "aggregated_reviews"
        key = "product_id"
        state_version = 1
        inputs = [{ name = "product_id", type = "text" }, { name = "star_rating", type = "integer" }]
        outputs = [{ name = "avg_star_rating", type = "double" }]
        event_time = { field = "review_date", format = "date" }
        window = { tumbling_ms = 86400000 }
        watermark_delay_ms = 172800000
        emit = { mode = "on-update", interval_ms = 1000 }
    "#;

    #[test]
    fn a_manifest_reads_as_the_description_v0_1_would_give() {
        let m = parse(DAILY).unwrap();
        assert_eq!(m.info.name, "reviews-daily");
        assert_eq!(m.info.window, Window::Tumbling(86_400_000));
        assert_eq!(
            m.info.event_time,
            EventTime::Field(TimeField {
                name: "review_date".into(),
                format: TimeFormat::Date
            })
        );
        assert_eq!(m.info.inputs[1].kind, FieldType::Integer);
        assert_eq!(
            (m.info.emit, m.info.update_interval_ms),
            (EmitMode::OnUpdate, 1000)
        );
        assert!(!m.info.has_filter && m.sections.is_empty());
    }

    #[test]
    fn an_unknown_or_wrong_key_is_named() {
        let typo = DAILY.replace("state_version", "state_versoin");
        let error = parse(&typo).err().unwrap();
        assert!(error.contains("state_versoin"), "{error}");
        let kind = DAILY.replace("\"integer\"", "\"int\"");
        let error = parse(&kind).err().unwrap();
        assert!(
            error.contains("star_rating") && error.contains("integer"),
            "{error}"
        );
        let window = DAILY.replace(
            "tumbling_ms = 86400000",
            "tumbling_ms = 1, session_gap_ms = 2",
        );
        assert!(parse(&window)
            .err()
            .unwrap()
            .contains("window takes one of"));
    }

    #[test]
    fn a_stage_section_is_kept_for_its_stage() {
        let text = format!("{DAILY}\n[enrich]\nservice = \"sentiment\"\n");
        let m = parse(&text).unwrap();
        assert_eq!(m.sections["enrich"]["service"].as_str(), Some("sentiment"));
    }
}
