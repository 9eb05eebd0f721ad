//! Who the platform is when it talks to Kafka and Cassandra, and what each tenant may reach
//! there. The platform's own credentials come from its config (passwords from the environment or
//! a file, never from the config text or a command line); a tenant's are issued by
//! `mysimbdp tenant add` and kept nowhere by the platform.

mod cassandra_roles;
mod kafka_admin;
mod tenant;

use std::fmt;
use std::path::{Path, PathBuf};

use rdkafka::config::ClientConfig;
use serde::Deserialize;

pub use kafka_admin::{KafkaAdmin, KafkaAdminError};
pub use tenant::{wall_off_outputs, AccessError, TenantAccess, TenantCredentials};

/// Where a password is read from: an environment variable or a file (its first line).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PasswordSource {
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl PasswordSource {
    /// Makes a relative `password_file` relative to the config file's folder.
    pub fn rebase(&mut self, base: &Path) {
        if let Some(file) = self.password_file.as_mut().filter(|f| f.is_relative()) {
            *file = base.join(&*file);
        }
    }

    /// The password, or why it cannot be read (for the config error).
    pub fn read(&self) -> Result<Password, String> {
        let value = match (&self.password_env, &self.password_file) {
            (Some(_), Some(_)) => return Err("both password_env and password_file are set".into()),
            (Some(var), None) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
            }
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            (None, None) => return Err("a user is set but no password_env or password_file".into()),
        };
        if value.is_empty() {
            return Err("the password is empty".into());
        }
        Ok(Password(value))
    }
}

/// A password: never shown by `Debug` or in a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// 32 random bytes as hex: what the platform issues to tenants.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The secret itself, for the client that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

/// The SASL mechanisms a Kafka client can log in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    #[serde(rename = "PLAIN")]
    Plain,
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            "PLAIN" => Ok(Self::Plain),
            _ => Err(format!(
                "`{name}` is not a SASL mechanism: use SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN"
            )),
        }
    }
}

impl SaslMechanism {
    /// The name librdkafka and the broker use.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::Plain => "PLAIN",
        }
    }
}

/// How to reach Kafka: where, as whom, and whether over TLS.
#[derive(Debug, Clone)]
pub struct KafkaAccess {
    pub bootstrap: String,
    login: Option<(SaslMechanism, String, Password)>,
    ca_file: Option<PathBuf>,
}

impl KafkaAccess {
    /// Kafka without authentication or TLS.
    pub fn plain(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            login: None,
            ca_file: None,
        }
    }

    /// Logs in as `user` with `password`.
    pub fn with_login(mut self, mechanism: SaslMechanism, user: &str, password: Password) -> Self {
        self.login = Some((mechanism, user.into(), password));
        self
    }

    /// Checks the brokers' certificates against the CA in `ca_file` (TLS on).
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Self {
        self.ca_file = ca_file;
        self
    }

    /// The user it logs in as, if any.
    pub fn user(&self) -> Option<&str> {
        self.login.as_ref().map(|(_, user, _)| user.as_str())
    }

    /// The SASL mechanism it logs in with, if any.
    pub fn mechanism(&self) -> Option<SaslMechanism> {
        self.login.as_ref().map(|(m, _, _)| *m)
    }

    /// librdkafka's settings for a client of this cluster (bootstrap, security protocol, login).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        let protocol = match (&self.login, &self.ca_file) {
            (None, None) => "plaintext",
            (None, Some(_)) => "ssl",
            (Some(_), None) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let Some((mechanism, user, password)) = &self.login {
            config
                .set("sasl.mechanism", mechanism.name())
                .set("sasl.username", user)
                .set("sasl.password", password.expose());
        }
        if let Some(ca) = &self.ca_file {
            config.set("ssl.ca.location", ca.to_string_lossy());
        }
        config
    }
}

/// How to reach Cassandra: which nodes, as which role, and whether over TLS.
#[derive(Debug, Clone)]
pub struct CassandraAccess {
    pub nodes: Vec<String>,
    login: Option<(String, Password)>,
    ca_file: Option<PathBuf>,
}

/// Why a TLS setting could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS with CA file {file}: {message}")]
pub struct TlsError {
    file: String,
    message: String,
}

impl CassandraAccess {
    /// Cassandra without a login or TLS.
    pub fn plain(nodes: &[String]) -> Self {
        Self {
            nodes: nodes.to_vec(),
            login: None,
            ca_file: None,
        }
    }

    /// Logs in as `role` with `password`.
    pub fn with_login(mut self, role: &str, password: Password) -> Self {
        self.login = Some((role.into(), password));
        self
    }

    /// Checks the nodes' certificates against the CA in `ca_file` (TLS on).
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Self {
        self.ca_file = ca_file;
        self
    }

    /// The role it logs in as, if any.
    pub fn role(&self) -> Option<&str> {
        self.login.as_ref().map(|(role, _)| role.as_str())
    }

    /// A session builder with the nodes, the login and TLS set.
    pub fn session_builder(
        &self,
    ) -> Result<scylla::client::session_builder::SessionBuilder, TlsError> {
        let mut builder =
            scylla::client::session_builder::SessionBuilder::new().known_nodes(&self.nodes);
        if let Some((role, password)) = &self.login {
            builder = builder.user(role, password.expose());
        }
        if let Some(ca) = &self.ca_file {
            builder = builder.tls_context(Some(tls_context(ca)?));
        }
        Ok(builder)
    }
}

/// An OpenSSL client context that trusts only the CA in `ca`.
fn tls_context(ca: &Path) -> Result<openssl::ssl::SslContext, TlsError> {
    let err = |e: openssl::error::ErrorStack| TlsError {
        file: ca.display().to_string(),
        message: e.to_string(),
    };
    let mut context =
        openssl::ssl::SslContextBuilder::new(openssl::ssl::SslMethod::tls_client()).map_err(err)?;
    context.set_ca_file(ca).map_err(err)?;
    context.set_verify(openssl::ssl::SslVerifyMode::PEER);
    Ok(context.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_security_protocol_follows_login_and_tls() {
        let plain = KafkaAccess::plain("h:1").client_config();
        assert_eq!(plain.get("security.protocol"), Some("plaintext"));
        let sasl = KafkaAccess::plain("h:1")
            .with_login(SaslMechanism::ScramSha256, "acme", Password("pw".into()))
            .client_config();
        assert_eq!(sasl.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(sasl.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(sasl.get("sasl.username"), Some("acme"));
        let tls = KafkaAccess::plain("h:1")
            .with_login(SaslMechanism::Plain, "acme", Password("pw".into()))
            .with_ca_file(Some("/ca.pem".into()))
            .client_config();
        assert_eq!(tls.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(tls.get("ssl.ca.location"), Some("/ca.pem"));
    }

    #[test]
    fn passwords_come_from_one_source_and_never_show() {
        let none = PasswordSource::default();
        assert!(none.read().unwrap_err().contains("no password_env"));
        let both = PasswordSource {
            password_env: Some("X".into()),
            password_file: Some("/x".into()),
        };
        assert!(both.read().unwrap_err().contains("both"));
        let missing = PasswordSource {
            password_env: Some("MYSIMBDP_TEST_NO_SUCH_VARIABLE".into()),
            password_file: None,
        };
        assert!(missing.read().unwrap_err().contains("is not set"));
        let p = Password::generate();
        assert_eq!(p.expose().len(), 64);
        assert_eq!(format!("{p:?}"), "Password(…)");
    }
}
