//! The trigger's settings file: where Kafka and Airflow are, the Airflow user, and each
//! tenant's contact for the workflow's notification.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::names::TenantId;

/// A refused settings file: the field and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SettingsError {
    path: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    kafka: KafkaSection,
    airflow: AirflowSection,
    #[serde(default)]
    status: StatusSection,
    tenants: Vec<TenantSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaSection {
    bootstrap: String,
    #[serde(default = "default_group")]
    group: String,
}

fn default_group() -> String {
    "mysimbdp.workflow".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AirflowSection {
    url: String,
    user: String,
    /// A file holding the password (never the password itself in this file).
    password_file: PathBuf,
    #[serde(default = "default_dag")]
    dag: String,
}

fn default_dag() -> String {
    "critical_condition".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusSection {
    listen: String,
}

impl Default for StatusSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9181".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSection {
    id: String,
    contact: Option<String>,
    webhook: Option<String>,
    #[serde(default = "default_from")]
    history_from: String,
}

fn default_from() -> String {
    "aggregated_reviews".into()
}

/// A tenant whose alerts trigger the workflow, and whom it tells.
#[derive(Debug, Clone)]
pub struct TenantContact {
    pub id: String,
    /// The e-mail address the workflow writes to.
    pub contact: Option<String>,
    /// A URL the workflow posts the alert and links to.
    pub webhook: Option<String>,
    /// The table of daily results the history analytics read.
    pub history_from: String,
}

/// The checked settings.
#[derive(Debug, Clone)]
pub struct TriggerSettings {
    pub bootstrap: String,
    pub group: String,
    pub airflow_url: String,
    pub user: String,
    pub password: String,
    pub dag: String,
    pub status_listen: String,
    pub tenants: Vec<TenantContact>,
}

impl TriggerSettings {
    /// Reads and checks the file; relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let refuse = |reason: String| SettingsError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| refuse(e.to_string()))?;
        let file: File = toml::from_str(&text).map_err(|e| refuse(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let password_path = base.join(&file.airflow.password_file);
        let password = std::fs::read_to_string(&password_path)
            .map_err(|e| {
                refuse(format!(
                    "`airflow.password_file`: cannot read {}: {e}; start Airflow with `just up` (it writes the password there)",
                    password_path.display()
                ))
            })?
            .trim()
            .to_owned();
        if !file.airflow.url.starts_with("http://") && !file.airflow.url.starts_with("https://") {
            return Err(refuse(format!(
                "`airflow.url` `{}` is not an http(s) URL: write e.g. http://127.0.0.1:9480",
                file.airflow.url
            )));
        }
        if file.tenants.is_empty() {
            return Err(refuse(
                "no `[[tenants]]`: name at least one tenant whose alerts trigger the workflow"
                    .into(),
            ));
        }
        let mut tenants = Vec::new();
        for (i, t) in file.tenants.into_iter().enumerate() {
            TenantId::new(&t.id).map_err(|e| refuse(format!("`tenants[{i}].id`: {e}")))?;
            if let Some(contact) = &t.contact {
                if !contact.contains('@')
                    || contact.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(refuse(format!(
                        "`tenants[{i}].contact` `{contact}` is not an e-mail address: write e.g. ops@example.com"
                    )));
                }
            }
            if let Some(hook) = &t.webhook {
                if !hook.starts_with("http://") && !hook.starts_with("https://") {
                    return Err(refuse(format!(
                        "`tenants[{i}].webhook` `{hook}` is not an http(s) URL"
                    )));
                }
            }
            crate::names::cql_identifier("history table", &t.history_from)
                .map_err(|e| refuse(format!("`tenants[{i}].history_from`: {e}")))?;
            tenants.push(TenantContact {
                id: t.id,
                contact: t.contact,
                webhook: t.webhook,
                history_from: t.history_from,
            });
        }
        Ok(Self {
            bootstrap: file.kafka.bootstrap,
            group: file.kafka.group,
            airflow_url: file.airflow.url,
            user: file.airflow.user,
            password,
            dag: file.airflow.dag,
            status_listen: file.status.listen,
            tenants,
        })
    }
}
