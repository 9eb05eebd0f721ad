//! The trigger's settings file: where Kafka and Airflow are, the Airflow user, and each
//! tenant's contact for the workflow's notification.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::access::{KafkaAccess, PasswordSource, SaslMechanism};
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
    /// The Kafka user the trigger reads the alerts topics as; unset: no login.
    user: Option<String>,
    #[serde(default = "default_mechanism")]
    sasl_mechanism: SaslMechanism,
    /// A file holding the user's password (relative to this file).
    password_file: Option<PathBuf>,
    /// The CA certificate (PEM) of the brokers: TLS on.
    ca_file: Option<PathBuf>,
}

fn default_mechanism() -> SaslMechanism {
    SaslMechanism::ScramSha256
}

impl KafkaSection {
    /// How the trigger reaches Kafka; relative files are relative to `base`.
    fn access(&self, base: &Path) -> Result<KafkaAccess, String> {
        let access = KafkaAccess::plain(&self.bootstrap)
            .with_ca_file(self.ca_file.as_ref().map(|f| base.join(f)));
        let Some(user) = &self.user else {
            return Ok(access);
        };
        let mut source = PasswordSource {
            password_env: None,
            password_file: self.password_file.clone(),
        };
        source.rebase(base);
        let password = source
            .read()
            .map_err(|problem| format!("`kafka.password_file`: {problem}"))?;
        Ok(access.with_login(self.sasl_mechanism, user, password))
    }
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

/// `[workflow]` in the platform's config (`mysimbdp run`): the platform then triggers the DAG
/// itself, for each tenant under `[workflow.tenants.<id>]`, as `mysimbdp trigger` would.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    airflow_url: String,
    user: String,
    /// A file holding the password; relative to the config file.
    password_file: PathBuf,
    #[serde(default = "default_dag")]
    dag: String,
    #[serde(default = "default_group")]
    group: String,
    #[serde(default = "default_listen")]
    status_listen: String,
    #[serde(default)]
    tenants: std::collections::BTreeMap<String, WorkflowTenant>,
}

/// A tenant's contact under `[workflow.tenants.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowTenant {
    contact: Option<String>,
    webhook: Option<String>,
    #[serde(default = "default_from")]
    history_from: String,
}

fn default_listen() -> String {
    StatusSection::default().listen
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
    pub kafka: KafkaAccess,
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
        let airflow = file.airflow;
        let kafka = file
            .kafka
            .access(path.parent().unwrap_or(Path::new(".")))
            .map_err(refuse)?;
        build(
            path,
            kafka,
            file.kafka.group,
            (
                airflow.url,
                airflow.user,
                airflow.password_file,
                airflow.dag,
            ),
            file.status.listen,
            file.tenants,
            ("tenants", "airflow.url", "airflow.password_file"),
        )
    }

    /// From the `[workflow]` section of the platform's config at `path`.
    pub fn from_platform(
        workflow: &WorkflowConfig,
        kafka: KafkaAccess,
        path: &Path,
    ) -> Result<Self, SettingsError> {
        let tenants = workflow
            .tenants
            .iter()
            .map(|(id, t)| TenantSection {
                id: id.clone(),
                contact: t.contact.clone(),
                webhook: t.webhook.clone(),
                history_from: t.history_from.clone(),
            })
            .collect();
        build(
            path,
            kafka,
            workflow.group.clone(),
            (
                workflow.airflow_url.clone(),
                workflow.user.clone(),
                workflow.password_file.clone(),
                workflow.dag.clone(),
            ),
            workflow.status_listen.clone(),
            tenants,
            (
                "workflow.tenants",
                "workflow.airflow_url",
                "workflow.password_file",
            ),
        )
    }
}

/// Checks the settings, wherever they were written; `fields` names the tenants list, the URL
/// and the password file as the file spells them.
fn build(
    path: &Path,
    kafka: KafkaAccess,
    group: String,
    (url, user, password_file, dag): (String, String, PathBuf, String),
    status_listen: String,
    sections: Vec<TenantSection>,
    (tenants_field, url_field, password_field): (&str, &str, &str),
) -> Result<TriggerSettings, SettingsError> {
    let refuse = |reason: String| SettingsError {
        path: path.display().to_string(),
        reason,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let password_path = base.join(&password_file);
    let password = std::fs::read_to_string(&password_path)
        .map_err(|e| {
            refuse(format!(
                "`{password_field}`: cannot read {}: {e}; start Airflow with `just up` (it writes the password there)",
                password_path.display()
            ))
        })?
        .trim()
        .to_owned();
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(refuse(format!(
            "`{url_field}` `{url}` is not an http(s) URL: write e.g. http://127.0.0.1:9480"
        )));
    }
    if sections.is_empty() {
        return Err(refuse(format!(
            "no `{tenants_field}`: name at least one tenant whose alerts trigger the workflow"
        )));
    }
    let mut tenants = Vec::new();
    for (i, t) in sections.into_iter().enumerate() {
        let field = format!("{tenants_field}[{i}]");
        TenantId::new(&t.id).map_err(|e| refuse(format!("`{field}.id`: {e}")))?;
        if let Some(contact) = &t.contact {
            if !contact.contains('@')
                || contact.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(refuse(format!(
                    "`{field}.contact` `{contact}` is not an e-mail address: write e.g. ops@example.com"
                )));
            }
        }
        if let Some(hook) = &t.webhook {
            if !hook.starts_with("http://") && !hook.starts_with("https://") {
                return Err(refuse(format!(
                    "`{field}.webhook` `{hook}` is not an http(s) URL"
                )));
            }
        }
        crate::names::cql_identifier("history table", &t.history_from)
            .map_err(|e| refuse(format!("`{field}.history_from`: {e}")))?;
        tenants.push(TenantContact {
            id: t.id,
            contact: t.contact,
            webhook: t.webhook,
            history_from: t.history_from,
        });
    }
    Ok(TriggerSettings {
        kafka,
        group,
        airflow_url: url,
        user,
        password,
        dag,
        status_listen,
        tenants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mysimbdp-settings-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        std::fs::write(dir.join("password"), "secret\n").expect("a password file");
        dir
    }

    #[test]
    fn the_platform_section_gives_the_same_settings_and_names_bad_fields() {
        let dir = scratch("platform");
        let config = dir.join("mysimbdp.toml");
        let parse = |text: &str| toml::from_str::<WorkflowConfig>(text).expect("valid TOML");
        let good = parse(
            "airflow_url = \"http://127.0.0.1:9480\"\nuser = \"mysimbdp\"\npassword_file = \"password\"\n\
             [tenants.acme]\ncontact = \"ops@acme.example\"\n",
        );
        let settings =
            TriggerSettings::from_platform(&good, KafkaAccess::plain("127.0.0.1:9092"), &config)
                .expect("accepted");
        assert_eq!(settings.password, "secret");
        assert_eq!(settings.dag, "critical_condition");
        assert_eq!(settings.tenants[0].history_from, "aggregated_reviews");
        let bad = parse(
            "airflow_url = \"http://127.0.0.1:9480\"\nuser = \"mysimbdp\"\npassword_file = \"password\"\n\
             [tenants.acme]\ncontact = \"ops at acme\"\n",
        );
        let err =
            TriggerSettings::from_platform(&bad, KafkaAccess::plain("127.0.0.1:9092"), &config)
                .expect_err("refused")
                .to_string();
        assert!(
            err.contains("`workflow.tenants[0].contact` `ops at acme` is not an e-mail address"),
            "{err}"
        );
        let missing = parse(
            "airflow_url = \"http://127.0.0.1:9480\"\nuser = \"mysimbdp\"\npassword_file = \"nope\"\n\
             [tenants.acme]\n",
        );
        let err =
            TriggerSettings::from_platform(&missing, KafkaAccess::plain("127.0.0.1:9092"), &config)
                .expect_err("refused")
                .to_string();
        assert!(
            err.contains("`workflow.password_file`: cannot read"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
