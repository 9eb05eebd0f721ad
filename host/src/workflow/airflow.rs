//! Airflow's REST API, as far as the trigger needs it: a JWT from `/auth/token`, then one DAG
//! run per alert whose run id Airflow refuses to create twice.

use std::time::Duration;

use serde_json::{json, Value};

/// Why a trigger did not happen (yet); every one of these is retried.
#[derive(Debug, thiserror::Error)]
pub enum AirflowError {
    #[error("Airflow at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Airflow refused the credentials of user `{user}` ({status}): check [airflow] user and password_file")]
    Credentials { user: String, status: u16 },
    #[error("Airflow answered {status} to {what}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
}

/// What a trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggered {
    /// A new DAG run.
    Created,
    /// The run id exists: this alert was triggered before.
    AlreadyThere,
}

/// A client for one Airflow API server and one user.
pub struct Airflow {
    url: String,
    user: String,
    password: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl Airflow {
    pub fn new(url: &str, user: &str, password: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Self {
            url: url.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            agent,
            token: None,
        }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> AirflowError {
        AirflowError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    fn login(&mut self) -> Result<String, AirflowError> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let mut response = self
            .agent
            .post(&format!("{}/auth/token", self.url))
            .send_json(json!({"username": self.user, "password": self.password}))
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(AirflowError::Credentials {
                user: self.user.clone(),
                status,
            });
        }
        let body: Value = response
            .body_mut()
            .read_json()
            .map_err(|e| self.unreachable(e))?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| AirflowError::Refused {
                what: "a token request".into(),
                status,
                body: body.to_string(),
            })?
            .to_owned();
        self.token = Some(token.clone());
        Ok(token)
    }

    /// Creates the run `run_id` of `dag` with `conf`; a run id that exists is not an error.
    pub fn trigger(
        &mut self,
        dag: &str,
        run_id: &str,
        conf: &Value,
    ) -> Result<Triggered, AirflowError> {
        let token = self.login()?;
        let url = format!("{}/api/v2/dags/{dag}/dagRuns", self.url);
        let mut response = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .send_json(json!({"dag_run_id": run_id, "logical_date": null, "conf": conf}))
            .map_err(|e| self.unreachable(e))?;
        match response.status().as_u16() {
            200 | 201 => Ok(Triggered::Created),
            409 => Ok(Triggered::AlreadyThere),
            status => {
                if status == 401 {
                    // The token expired (or the server's secret changed): log in again next time.
                    self.token = None;
                }
                let body = response.body_mut().read_to_string().unwrap_or_default();
                Err(AirflowError::Refused {
                    what: format!("creating run {run_id} of DAG {dag}"),
                    status,
                    body: body.chars().take(500).collect(),
                })
            }
        }
    }
}

/// A DAG run id for an alert id: Airflow allows `[A-Za-z0-9_.~:+-]`, so every other character
/// becomes `_`, and a digest of the whole id keeps two ids that differ only there apart.
pub fn run_id_of(alert_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let readable: String = alert_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.~:+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(180)
        .collect();
    let digest = Sha256::digest(alert_id.as_bytes());
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("alert__{readable}__{short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_allowed_by_airflow_and_stable() {
        let id = run_id_of("acme.reviews-alerts/B00X/2015-03-01T00:00:00Z");
        assert!(
            id.starts_with("alert__acme.reviews-alerts_B00X_2015-03-01T00:00:00Z__"),
            "{id}"
        );
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.~:+-".contains(c)));
        assert_eq!(
            id,
            run_id_of("acme.reviews-alerts/B00X/2015-03-01T00:00:00Z")
        );
        assert_ne!(run_id_of("a/b c/t"), run_id_of("a/b_c/t"));
    }
}
