//! What a tenant declares about enrichment, in `<app>.enrich.toml` beside its `.wasm`: which
//! service (by the operator's name, never a URL), which input fields are sent, which fields come
//! back and with which types, the batch size, and what happens when the service fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::EnrichError;
use crate::plugin::{AppSpec, FieldType};

/// The largest batch an app may ask for: one request body stays a few MiB.
pub const MAX_BATCH: usize = 4096;

/// The manifest as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichManifest {
    /// The service's name in the platform's `[services.<name>]`.
    pub service: String,
    /// Records per request.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// What happens to a record whose batch the service answered wrongly (after the retries).
    pub on_failure: OnFailure,
    /// Request field → the app's input field sent in it, one array over the batch.
    pub send: BTreeMap<String, String>,
    /// The app's input field → what fills it from each result.
    pub receive: BTreeMap<String, Receive>,
    /// A boolean input field of the app, set where the declared defaults were used.
    pub marker: Option<String>,
}

fn default_batch() -> usize {
    64
}

/// What a service failure does to the records of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// The records go to the dead-letter topic with the reason.
    DeadLetter,
    /// The records go on with the declared defaults, and the marker field set.
    Default,
}

/// One returned field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receive {
    /// The key in each result object; the field's own name when absent.
    pub from: Option<String>,
    /// `double`, `integer`, `boolean` or `text`: must be the type the app declares.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The value used under `on_failure = "default"`.
    pub default: Option<toml::Value>,
}

/// The types a service may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Double,
    Integer,
    Boolean,
    Text,
}

impl Kind {
    fn field_type(self) -> FieldType {
        match self {
            Kind::Double => FieldType::Double,
            Kind::Integer => FieldType::Integer,
            Kind::Boolean => FieldType::Boolean,
            Kind::Text => FieldType::Text,
        }
    }
}

/// A value of a returned field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Double(f64),
    Integer(i64),
    Boolean(bool),
    Text(String),
}

impl Value {
    /// `json` as a value of `kind`, if it is one (an integral number is a double too).
    pub fn from_json(kind: Kind, json: &serde_json::Value) -> Option<Value> {
        match kind {
            Kind::Double => json.as_f64().map(Value::Double),
            Kind::Integer => json.as_i64().map(Value::Integer),
            Kind::Boolean => json.as_bool().map(Value::Boolean),
            Kind::Text => json.as_str().map(|s| Value::Text(s.to_owned())),
        }
    }

    fn from_toml(kind: Kind, toml: &toml::Value) -> Option<Value> {
        match (kind, toml) {
            (Kind::Double, toml::Value::Float(f)) => Some(Value::Double(*f)),
            (Kind::Double, toml::Value::Integer(i)) => Some(Value::Double(*i as f64)),
            (Kind::Integer, toml::Value::Integer(i)) => Some(Value::Integer(*i)),
            (Kind::Boolean, toml::Value::Boolean(b)) => Some(Value::Boolean(*b)),
            (Kind::Text, toml::Value::String(s)) => Some(Value::Text(s.clone())),
            _ => None,
        }
    }

    /// The value a column holds before the service answers.
    pub fn zero(kind: Kind) -> Value {
        match kind {
            Kind::Double => Value::Double(0.0),
            Kind::Integer => Value::Integer(0),
            Kind::Boolean => Value::Boolean(false),
            Kind::Text => Value::Text(String::new()),
        }
    }
}

/// One returned field, resolved against the app.
#[derive(Debug, Clone)]
pub struct Returned {
    /// Index among the app's inputs.
    pub input: usize,
    pub from: String,
    pub kind: Kind,
    pub default: Option<Value>,
}

/// The manifest checked against the app it belongs to: fields as input indices.
#[derive(Debug, Clone)]
pub struct Plan {
    pub service: String,
    pub batch_size: usize,
    pub on_failure: OnFailure,
    /// (request field, input index).
    pub sends: Vec<(String, usize)>,
    pub returns: Vec<Returned>,
    /// Input index of the marker field.
    pub marker: Option<usize>,
}

impl EnrichManifest {
    /// Where a manifest for the app at `wasm` lives: `<name>.enrich.toml` beside it.
    pub fn path_beside(wasm: &Path) -> PathBuf {
        wasm.with_extension("enrich.toml")
    }

    /// The manifest beside `wasm`, if there is one.
    pub fn beside(wasm: &Path) -> Result<Option<Self>, EnrichError> {
        let path = Self::path_beside(wasm);
        if !path.exists() {
            return Ok(None);
        }
        Self::read(&path).map(Some)
    }

    pub fn read(path: &Path) -> Result<Self, EnrichError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| EnrichError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| EnrichError::Parse {
            path: shown,
            message,
        })
    }

    /// The `[enrich]` section of the app's own (v0.2) manifest, if it has one.
    pub fn embedded(spec: &AppSpec) -> Result<Option<Self>, EnrichError> {
        let Some(section) = spec.sections.get("enrich") else {
            return Ok(None);
        };
        toml::Value::Table(section.clone())
            .try_into()
            .map(Some)
            .map_err(|e: toml::de::Error| EnrichError::Parse {
                path: format!("[enrich] in the manifest of {}", spec.name),
                message: e.message().to_owned(),
            })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks the manifest against the app's declared inputs.
    pub fn plan(&self, spec: &AppSpec) -> Result<Plan, EnrichError> {
        let invalid = |problem: String| EnrichError::Invalid {
            app: spec.name.to_string(),
            problem,
        };
        let input = |field: &str| {
            spec.inputs
                .iter()
                .position(|f| f.name == field)
                .ok_or_else(|| invalid(format!("`{field}` is not an input field of the app")))
        };
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(invalid(format!(
                "batch_size {} is outside 1..={MAX_BATCH}",
                self.batch_size
            )));
        }
        if self.send.is_empty() || self.receive.is_empty() {
            return Err(invalid(
                "declare at least one field in [send] and one in [receive]".into(),
            ));
        }
        let mut sends = Vec::new();
        for (name, field) in &self.send {
            sends.push((name.clone(), input(field)?));
        }
        let mut returns = Vec::new();
        for (field, receive) in &self.receive {
            let index = input(field)?;
            if self.send.values().any(|s| s == field) {
                return Err(invalid(format!("`{field}` is both sent and received")));
            }
            let declared = spec.inputs[index].kind;
            if declared != receive.kind.field_type() {
                return Err(invalid(format!(
                    "`{field}` is {declared:?} in the app but {:?} in [receive]",
                    receive.kind
                )));
            }
            let default = match (&receive.default, self.on_failure) {
                (Some(value), _) => {
                    Some(Value::from_toml(receive.kind, value).ok_or_else(|| {
                        invalid(format!(
                            "the default of `{field}` is not a {:?}",
                            receive.kind
                        ))
                    })?)
                }
                (None, OnFailure::Default) => {
                    return Err(invalid(format!(
                        "on_failure = \"default\" needs a default for `{field}`"
                    )))
                }
                (None, OnFailure::DeadLetter) => None,
            };
            returns.push(Returned {
                input: index,
                from: receive.from.clone().unwrap_or_else(|| field.clone()),
                kind: receive.kind,
                default,
            });
        }
        let marker = match &self.marker {
            Some(field) => {
                let index = input(field)?;
                if spec.inputs[index].kind != FieldType::Boolean
                    || returns.iter().any(|r| r.input == index)
                    || sends.iter().any(|(_, s)| *s == index)
                {
                    return Err(invalid(format!(
                        "the marker `{field}` must be a boolean input of its own"
                    )));
                }
                Some(index)
            }
            None => None,
        };
        let platform_field = |i: usize| {
            let name = &spec.inputs[i].name;
            *name == spec.key_field
                || matches!(&spec.event_time, crate::plugin::EventTimeSource::Field { name: t, .. } if t == name)
        };
        if let Some(r) = returns.iter().find(|r| platform_field(r.input)) {
            return Err(invalid(format!(
                "`{}` is the key or event-time field: the platform reads it from the record",
                spec.inputs[r.input].name
            )));
        }
        Ok(Plan {
            service: self.service.clone(),
            batch_size: self.batch_size,
            on_failure: self.on_failure,
            sends,
            returns,
            marker,
        })
    }
}

impl Plan {
    /// The input fields the stage fills, with the value they hold until it does: the decoder
    /// does not look for them in the records.
    pub fn supplied(&self) -> Vec<(usize, Value)> {
        let mut fields: Vec<(usize, Value)> = self
            .returns
            .iter()
            .map(|r| (r.input, Value::zero(r.kind)))
            .collect();
        if let Some(marker) = self.marker {
            fields.push((marker, Value::Boolean(false)));
        }
        fields
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_manifest_parses_with_defaults() {
        let m = EnrichManifest::parse(
            r#"
service = "sentiment"
on_failure = "default"
marker = "enrich_failed"
[send]
texts = "review_body"
[receive]
sentiment = { type = "double", default = 0.0 }
predicted_stars = { from = "stars", type = "integer", default = 0 }
"#,
        )
        .unwrap();
        assert_eq!(m.batch_size, 64);
        assert_eq!(m.on_failure, OnFailure::Default);
        assert_eq!(m.receive["predicted_stars"].from.as_deref(), Some("stars"));
    }

    #[test]
    fn unknown_keys_and_policies_are_refused() {
        let base = "service = \"s\"\n[send]\nt = \"a\"\n[receive]\nb = { type = \"double\" }\n";
        assert!(EnrichManifest::parse(&format!("on_failure = \"drop\"\n{base}")).is_err());
        assert!(EnrichManifest::parse(&format!("url = \"http://x\"\n{base}")).is_err());
    }

    /// An app with a text to send and fields of each returned type.
    pub(crate) fn spec() -> AppSpec {
        use crate::plugin::{EmitMode, EventTimeSource, FieldSpec, TimeFormat};
        let field = |name: &str, kind| FieldSpec {
            name: name.into(),
            kind,
        };
        AppSpec {
            name: crate::names::AppName::new("s").unwrap(),
            version: "1".into(),
            table: "t".into(),
            inputs: vec![
                field("review_body", FieldType::Text),
                field("sentiment", FieldType::Double),
                field("stars", FieldType::Integer),
                field("failed", FieldType::Boolean),
            ],
            key_field: "product_id".into(),
            event_time: EventTimeSource::Field {
                name: "review_date".into(),
                format: TimeFormat::Date,
            },
            assigner: crate::window::Assigner::Tumbling { size_ms: 1 },
            watermark_delay_ms: 0,
            allowed_lateness_ms: 0,
            emit: EmitMode::OnClose,
            update_interval: std::time::Duration::from_secs(1),
            outputs: vec![],
            state_version: 1,
            has_filter: false,
            sections: Default::default(),
        }
    }

    fn plan(text: &str) -> Result<Plan, String> {
        let m = EnrichManifest::parse(text)?;
        m.plan(&spec()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_plan_resolves_fields_and_what_the_decoder_leaves_out() {
        let p = plan(
            "service = \"s\"\non_failure = \"default\"\nmarker = \"failed\"\n[send]\ntexts = \"review_body\"\n\
             [receive]\nsentiment = { type = \"double\", default = 0 }\nstars = { type = \"integer\", default = 3 }\n",
        )
        .unwrap();
        assert_eq!(p.sends, vec![("texts".to_owned(), 0)]);
        assert_eq!(p.returns[1].default, Some(Value::Integer(3)));
        let supplied: Vec<usize> = p.supplied().iter().map(|(i, _)| *i).collect();
        assert_eq!(supplied, vec![1, 2, 3]);
    }

    #[test]
    fn a_plan_refuses_what_the_app_does_not_declare_as_declared() {
        let with = |receive: &str, policy: &str| {
            plan(&format!(
                "service = \"s\"\non_failure = \"{policy}\"\n[send]\ntexts = \"review_body\"\n[receive]\n{receive}\n"
            ))
        };
        assert!(with("sentiment = { type = \"integer\" }", "dead-letter")
            .unwrap_err()
            .contains("Double in the app"));
        assert!(with("nope = { type = \"double\" }", "dead-letter")
            .unwrap_err()
            .contains("not an input field"));
        assert!(with("sentiment = { type = \"double\" }", "default")
            .unwrap_err()
            .contains("needs a default"));
        assert!(with("review_body = { type = \"text\" }", "dead-letter")
            .unwrap_err()
            .contains("both sent and received"));
    }

    #[test]
    fn json_values_are_typed() {
        let v = serde_json::json!(3);
        assert_eq!(Value::from_json(Kind::Double, &v), Some(Value::Double(3.0)));
        assert_eq!(Value::from_json(Kind::Integer, &v), Some(Value::Integer(3)));
        assert_eq!(
            Value::from_json(Kind::Integer, &serde_json::json!(2.5)),
            None
        );
        assert_eq!(Value::from_json(Kind::Text, &v), None);
    }
}
