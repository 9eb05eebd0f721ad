//! Where the local services listen and, when they run with authentication (the default;
//! `MYSIMBDP_AUTH=off` as `deploy/local` reads it too), how the harness logs in: as the platform's
//! own Kafka user and Cassandra role, whose passwords `deploy/local/up.sh` generated under
//! `.state/secrets/`. Tenants' credentials come from `mysimbdp tenant add` instead.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use rdkafka::ClientConfig;
use scylla::client::session_builder::SessionBuilder;

use crate::env::{mysimbdp_bin, workspace_dir};

/// The platform's user in Kafka and role in Cassandra (`deploy/local`'s PLATFORM_USER).
pub const PLATFORM_USER: &str = "mysimbdp";

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

/// Kafka's bootstrap address as `just up` starts it (`MYSIMBDP_KAFKA_PORT`, default 9092).
pub fn kafka_bootstrap() -> String {
    format!("127.0.0.1:{}", port("MYSIMBDP_KAFKA_PORT", 9092))
}

/// Cassandra's native-protocol address as `just up` starts it (`MYSIMBDP_CASSANDRA_PORT`,
/// default 9042).
pub fn cassandra_node() -> String {
    format!("127.0.0.1:{}", port("MYSIMBDP_CASSANDRA_PORT", 9042))
}

/// Whether the local services run with authentication: yes unless `MYSIMBDP_AUTH=off`, as
/// `deploy/local` decides.
pub fn auth_on() -> bool {
    std::env::var("MYSIMBDP_AUTH").as_deref() != Ok("off")
}

/// A file under `.state/secrets/` (or `$MYSIMBDP_STATE_DIR/secrets/`) that
/// `deploy/local/up.sh` generated.
pub fn secret_file(name: &str) -> PathBuf {
    let state = match std::env::var_os("MYSIMBDP_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_dir().join(".state"),
    };
    state.join("secrets").join(name)
}

fn secret(name: &str) -> Result<String> {
    let path = secret_file(name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} cannot be read: the services run with authentication unless MYSIMBDP_AUTH=off; \
             start them with deploy/local/up.sh (it generates the passwords), or set \
             MYSIMBDP_AUTH=off for services without authentication",
            path.display()
        )
    })?;
    Ok(text.trim().to_owned())
}

/// A Kafka client of the local cluster, logged in as the platform when authentication is on.
pub fn kafka_client() -> Result<ClientConfig> {
    if auth_on() {
        Ok(kafka_client_as(
            PLATFORM_USER,
            &secret("kafka-platform.password")?,
        ))
    } else {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", kafka_bootstrap());
        Ok(config)
    }
}

/// A Kafka client of the local cluster logged in as `user` (SCRAM-SHA-256).
pub fn kafka_client_as(user: &str, password: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka_bootstrap())
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", user)
        .set("sasl.password", password);
    config
}

/// A Cassandra session builder for the local node, logged in as the platform when
/// authentication is on.
pub fn cassandra_builder() -> Result<SessionBuilder> {
    let builder = SessionBuilder::new().known_node(cassandra_node());
    if auth_on() {
        Ok(builder.user(PLATFORM_USER, secret("cassandra-platform.password")?))
    } else {
        Ok(builder)
    }
}

/// The `[kafka]` and `[cassandra]` login lines of a platform config (empty without
/// authentication): the platform's user, its password by file.
pub fn platform_login_toml() -> (String, String) {
    if !auth_on() {
        return (String::new(), String::new());
    }
    let file = |name: &str| format!("{:?}", secret_file(name).to_string_lossy());
    (
        format!(
            "sasl_mechanism = \"SCRAM-SHA-256\"\nuser = \"{PLATFORM_USER}\"\npassword_file = {}\n",
            file("kafka-platform.password")
        ),
        format!(
            "user = \"{PLATFORM_USER}\"\npassword_file = {}\n",
            file("cassandra-platform.password")
        ),
    )
}

/// `mysimbdp produce --bootstrap <local Kafka>`, logged in as the platform when authentication
/// is on (the password in the child's environment, never on its command line).
pub fn produce_command() -> Result<Command> {
    let mut command = Command::new(mysimbdp_bin()?);
    command
        .arg("produce")
        .args(["--bootstrap", &kafka_bootstrap()]);
    if auth_on() {
        command.env("MYSIMBDP_KAFKA_USER", PLATFORM_USER).env(
            "MYSIMBDP_KAFKA_PASSWORD",
            secret("kafka-platform.password")?,
        );
    }
    Ok(command)
}

/// `mysimbdp batch --cassandra <local node>`, logged in as the platform's role when
/// authentication is on (its password by file, named in the child's environment).
pub fn batch_command() -> Result<Command> {
    let mut command = Command::new(mysimbdp_bin()?);
    command
        .arg("batch")
        .args(["--cassandra", &cassandra_node()]);
    if auth_on() {
        secret("cassandra-platform.password")?;
        command.env("MYSIMBDP_CASSANDRA_USER", PLATFORM_USER).env(
            "MYSIMBDP_CASSANDRA_PASSWORD_FILE",
            secret_file("cassandra-platform.password"),
        );
    }
    Ok(command)
}

/// What `mysimbdp tenant add|rotate` printed: the tenant's admin token and, with authentication
/// on, its Kafka user and Cassandra role with their passwords.
#[derive(Debug, Clone)]
pub struct TenantCredentials {
    pub token: String,
    pub kafka: Option<(String, String)>,
    pub cassandra: Option<(String, String)>,
}

impl TenantCredentials {
    /// Reads the `KEY=value` lines of the command's standard output.
    pub fn parse(stdout: &str) -> Result<Self> {
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let pair = |user: &str, password: &str| Some((value(user)?, value(password)?));
        Ok(Self {
            token: value("MYSIMBDP_ADMIN_TOKEN")
                .with_context(|| format!("no MYSIMBDP_ADMIN_TOKEN line in {stdout:?}"))?,
            kafka: pair("MYSIMBDP_KAFKA_USER", "MYSIMBDP_KAFKA_PASSWORD"),
            cassandra: pair("MYSIMBDP_CASSANDRA_USER", "MYSIMBDP_CASSANDRA_PASSWORD"),
        })
    }

    /// A Kafka client logged in as this tenant.
    pub fn kafka_client(&self) -> Result<ClientConfig> {
        let (user, password) = self
            .kafka
            .as_ref()
            .context("no Kafka credentials were issued (is MYSIMBDP_AUTH=off?)")?;
        Ok(kafka_client_as(user, password))
    }

    /// A Cassandra session builder logged in as this tenant's role.
    pub fn cassandra_builder(&self) -> Result<SessionBuilder> {
        let (role, password) = self
            .cassandra
            .as_ref()
            .context("no Cassandra credentials were issued (is MYSIMBDP_AUTH=off?)")?;
        Ok(SessionBuilder::new()
            .known_node(cassandra_node())
            .user(role, password))
    }
}
