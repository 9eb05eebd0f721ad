//! The platform's config file: which tenants run which apps, and where Kafka and Cassandra are.
//! A bad file is refused with the field that is wrong and how to fix it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::access::{CassandraAccess, KafkaAccess, PasswordSource, SaslMechanism};
use crate::app::Quotas;
use crate::checkpoint::Delivery;
use crate::names::{StreamName, TenantId};
use crate::plugin::SpecLimits;

/// Cassandra's default mutation limit: a larger result row could never be written.
const MAX_RESULT_BYTES: usize = 16 << 20;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}: `{field}`: {problem}; {fix}")]
    Invalid {
        path: String,
        field: String,
        problem: String,
        fix: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub cassandra: CassandraConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub runner: RunnerConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// External services apps may call from their enrich stage, by name (`[services.<name>]`).
    #[serde(default)]
    pub services: crate::enrich::Services,
    /// The alert workflow the platform triggers (`[workflow]`), if any.
    #[serde(default)]
    pub workflow: Option<crate::workflow::WorkflowConfig>,
    /// The Kafka and Cassandra settings with their passwords read, once the file is checked.
    #[serde(skip)]
    resolved: Option<(KafkaAccess, CassandraAccess)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub bootstrap: String,
    /// Partitions of the topics the platform creates.
    pub partitions: i32,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`: how `user` logs in (SASL); unset: no login.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// The platform's Kafka user (a super user, or one allowed to manage users and ACLs).
    pub user: Option<String>,
    /// An environment variable holding the user's password.
    pub password_env: Option<String>,
    /// A file holding the user's password (relative to this file).
    pub password_file: Option<PathBuf>,
    /// The CA certificate (PEM) the brokers' certificates are checked against: TLS on.
    pub ca_file: Option<PathBuf>,
}

/// `127.0.0.1:<port>`, the port from `var` when set (as `deploy/local` reads it too).
fn local_address(var: &str, port: u16) -> String {
    let port = std::env::var(var)
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(port);
    format!("127.0.0.1:{port}")
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap: local_address("MYSIMBDP_KAFKA_PORT", 9092),
            partitions: 4,
            sasl_mechanism: None,
            user: None,
            password_env: None,
            password_file: None,
            ca_file: None,
        }
    }
}

/// A refused security setting: the field, the problem, the fix.
type Refusal = (&'static str, String, &'static str);

/// The login settings of one service, checked: the user, its password, the CA file.
fn login(
    section: &'static str,
    user: &Option<String>,
    password: PasswordSource,
    ca_file: &Option<PathBuf>,
) -> Result<Option<(String, crate::access::Password)>, Refusal> {
    if let Some(ca) = ca_file.as_ref().filter(|f| !f.is_file()) {
        return Err((
            if section == "kafka" {
                "kafka.ca_file"
            } else {
                "cassandra.ca_file"
            },
            format!("{} is not a file", ca.display()),
            "give the CA certificate (PEM) that signed the servers' certificates, or leave it out",
        ));
    }
    let Some(user) = user else {
        if password.password_env.is_some() || password.password_file.is_some() {
            return Err((
                if section == "kafka" {
                    "kafka.user"
                } else {
                    "cassandra.user"
                },
                "a password is set but no user".into(),
                "set the user the password belongs to",
            ));
        }
        return Ok(None);
    };
    let password = password.read().map_err(|problem| {
        (
            if section == "kafka" {
                "kafka.password_file"
            } else {
                "cassandra.password_file"
            },
            problem,
            "set exactly one of password_env (a variable holding it) or password_file",
        )
    })?;
    Ok(Some((user.clone(), password)))
}

impl KafkaConfig {
    fn password_source(&self) -> PasswordSource {
        PasswordSource {
            password_env: self.password_env.clone(),
            password_file: self.password_file.clone(),
        }
    }

    /// How the platform reaches Kafka, with its password read.
    fn access(&self) -> Result<KafkaAccess, Refusal> {
        let login = login("kafka", &self.user, self.password_source(), &self.ca_file)?;
        let access = KafkaAccess::plain(&self.bootstrap).with_ca_file(self.ca_file.clone());
        match (login, self.sasl_mechanism) {
            (None, None) => Ok(access),
            (Some((user, password)), Some(mechanism)) => {
                Ok(access.with_login(mechanism, &user, password))
            }
            (Some(_), None) => Err((
                "kafka.sasl_mechanism",
                "a user is set but no mechanism".into(),
                "set sasl_mechanism = \"SCRAM-SHA-256\" (or SCRAM-SHA-512, PLAIN)",
            )),
            (None, Some(_)) => Err((
                "kafka.user",
                "a SASL mechanism is set but no user".into(),
                "set user and password_env or password_file",
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CassandraConfig {
    pub nodes: Vec<String>,
    /// Replication factor of the tenants' keyspaces.
    pub replication: u32,
    /// How long an app waits out a Cassandra outage (timeouts, unreachable nodes), retrying,
    /// before it stops with the reason.
    pub outage_patience_ms: u64,
    /// How long one request may take before it counts as failed (and is retried).
    pub request_timeout_ms: u64,
    /// The platform's role (a superuser, or one that may create keyspaces and roles).
    pub user: Option<String>,
    /// An environment variable holding the role's password.
    pub password_env: Option<String>,
    /// A file holding the role's password (relative to this file).
    pub password_file: Option<PathBuf>,
    /// The CA certificate (PEM) the nodes' certificates are checked against: TLS on.
    pub ca_file: Option<PathBuf>,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            nodes: vec![local_address("MYSIMBDP_CASSANDRA_PORT", 9042)],
            replication: 1,
            outage_patience_ms: 600_000,
            request_timeout_ms: 10_000,
            user: None,
            password_env: None,
            password_file: None,
            ca_file: None,
        }
    }
}

impl CassandraConfig {
    /// How the platform reaches Cassandra, with its password read.
    fn access(&self) -> Result<CassandraAccess, Refusal> {
        let source = PasswordSource {
            password_env: self.password_env.clone(),
            password_file: self.password_file.clone(),
        };
        let login = login("cassandra", &self.user, source, &self.ca_file)?;
        let access = CassandraAccess::plain(&self.nodes).with_ca_file(self.ca_file.clone());
        Ok(match login {
            Some((role, password)) => access.with_login(&role, password),
            None => access,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<String>,
    /// An environment variable holding the token, to keep it out of the file.
    pub token_env: Option<String>,
    // Deploys: which `.wasm` files the admin API may read, and how big an upload may be.
    /// The only folder a deploy by path may read from (relative to this file); unset: none.
    pub apps_dir: Option<PathBuf>,
    /// The largest `.wasm` accepted, uploaded or read from a file.
    pub max_upload_mb: usize,
    /// Where each host keeps what deploys, rollbacks and removals changed (relative to this
    /// file), so that a restart runs it again: `<deployed_dir>/<instance>/`.
    pub deployed_dir: PathBuf,
    /// The admin API's certificate chain (PEM): with `tls_key`, it serves HTTPS. Required on
    /// any address but loopback.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
            token: None,
            token_env: None,
            apps_dir: None,
            max_upload_mb: 64,
            deployed_dir: PathBuf::from("deployed"),
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Linear memory per app instance.
    pub memory_mb: usize,
    /// Deadline of one plugin call.
    pub call_deadline_ms: u64,
    /// This many plugin failures within `failure_window_ms` stop the app.
    pub max_failures: usize,
    pub failure_window_ms: u64,
    /// Windows one record may fall in (window size / slide): more refuses the app at load.
    pub max_windows_per_record: u64,
    /// Records dated further ahead of the wall clock go to the dead-letter topic.
    pub max_event_time_ahead_ms: u64,
    /// Open (key, window) pairs per app on this host.
    pub max_open_windows: usize,
    /// Distinct keys with an open window per app on this host.
    pub max_keys: usize,
    /// Bytes of a record's key.
    pub max_key_bytes: usize,
    /// Bytes of a message (value and key).
    pub max_record_bytes: usize,
    /// Bytes of a result row as JSON.
    pub max_result_bytes: usize,
    /// CPU an app's worker may use, in cores (1 = its whole thread): above it the worker
    /// sleeps and its input waits in Kafka.
    pub max_cpu_cores: f64,
    /// Scheduling niceness of app workers: above the platform's shared threads (0), so tenant
    /// code yields the cores to ingestion and the sinks that every app needs.
    pub worker_nice: i32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let quotas = Quotas::default();
        Self {
            memory_mb: 256,
            call_deadline_ms: 10_000,
            max_failures: 3,
            failure_window_ms: 600_000,
            max_windows_per_record: SpecLimits::default().max_windows_per_record,
            max_event_time_ahead_ms: quotas.max_event_time_ahead_ms,
            max_open_windows: quotas.max_open_windows,
            max_keys: quotas.max_keys,
            max_key_bytes: quotas.max_key_bytes,
            max_record_bytes: quotas.max_record_bytes,
            max_result_bytes: quotas.max_result_bytes,
            max_cpu_cores: 1.0,
            worker_nice: 5,
        }
    }
}

impl LimitsConfig {
    /// What an app may declare.
    pub fn spec(&self) -> SpecLimits {
        SpecLimits {
            max_windows_per_record: self.max_windows_per_record,
            ..SpecLimits::default()
        }
    }

    /// What an app may hold, per record and on this host.
    pub fn quotas(&self) -> Quotas {
        Quotas {
            max_event_time_ahead_ms: self.max_event_time_ahead_ms,
            max_open_windows: self.max_open_windows,
            max_keys: self.max_keys,
            max_key_bytes: self.max_key_bytes,
            max_record_bytes: self.max_record_bytes,
            max_result_bytes: self.max_result_bytes,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// How often state, watermark and offsets are saved; a crash replays at most this much.
    pub interval_ms: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { interval_ms: 5_000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// Most records per plugin call.
    pub batch_max: usize,
    /// Longest wait to fill a batch.
    pub batch_wait_ms: u64,
    /// A partition silent this long stops holding the watermark back.
    pub idle_partition_timeout_ms: u64,
    /// An app with nothing to do this long closes its Kafka clients until its input moves
    /// (their threads cost CPU even when idle); 0 keeps them open.
    pub hibernate_after_ms: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_max: 4096,
            batch_wait_ms: 20,
            idle_partition_timeout_ms: 30_000,
            hibernate_after_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app's `.wasm` component; relative paths are from the config file's folder.
    pub path: PathBuf,
    /// The tenant's stream the app reads: topic `<tenant>.<stream>`.
    pub stream: String,
    /// What survives a crash: `exactly-once` (the default), `at-least-once` or `at-most-once`.
    #[serde(default)]
    pub delivery: Delivery,
}

/// One app to run, with its names checked.
#[derive(Debug, Clone)]
pub struct AppEntry {
    pub tenant: TenantId,
    pub stream: StreamName,
    pub path: PathBuf,
    pub delivery: Delivery,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::read(path, true)
    }

    /// The file for an operator's command that only logs in to Kafka and Cassandra as the
    /// platform (`mysimbdp tenant … --config`): checked as for a start, except that it may
    /// configure no tenant yet and needs no admin token.
    pub fn load_logins(path: &Path) -> Result<Self, ConfigError> {
        Self::read(path, false)
    }

    fn read(path: &Path, for_start: bool) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [
            &mut config.admin.apps_dir,
            &mut config.kafka.password_file,
            &mut config.kafka.ca_file,
            &mut config.cassandra.password_file,
            &mut config.cassandra.ca_file,
            &mut config.admin.tls_cert,
            &mut config.admin.tls_key,
        ] {
            if let Some(path) = file.as_mut().filter(|d| d.is_relative()) {
                *path = base.join(&*path);
            }
        }
        if config.admin.deployed_dir.is_relative() {
            config.admin.deployed_dir = base.join(&config.admin.deployed_dir);
        }
        for tenant in &mut config.tenants {
            for app in &mut tenant.apps {
                if app.path.is_relative() {
                    app.path = base.join(&app.path);
                }
            }
        }
        config.check(&shown, for_start)?;
        if let (Ok(kafka), Ok(cassandra)) = (config.kafka.access(), config.cassandra.access()) {
            config.resolved = Some((kafka, cassandra));
        }
        Ok(config)
    }

    fn check(&self, path: &str, for_start: bool) -> Result<(), ConfigError> {
        let invalid = |field: String, problem: String, fix: &str| ConfigError::Invalid {
            path: path.into(),
            field,
            problem,
            fix: fix.into(),
        };
        for (name, service) in &self.services {
            if let Some((field, problem, fix)) = service.problem() {
                return Err(invalid(format!("services.{name}.{field}"), problem, fix));
            }
        }
        let refused = |(field, problem, fix): Refusal| invalid(field.into(), problem, fix);
        self.kafka.access().map_err(refused)?;
        self.cassandra.access().map_err(refused)?;
        if self.kafka.partitions < 1 {
            return Err(invalid(
                "kafka.partitions".into(),
                format!("{} is below 1", self.kafka.partitions),
                "use at least 1",
            ));
        }
        if self.cassandra.nodes.is_empty() {
            return Err(invalid(
                "cassandra.nodes".into(),
                "no node given".into(),
                "list at least one host:port, e.g. [\"127.0.0.1:9042\"]",
            ));
        }
        if self.runner.batch_max == 0 {
            return Err(invalid(
                "runner.batch_max".into(),
                "is 0".into(),
                "use at least 1 (4096 is a good size)",
            ));
        }
        if (1..1_000).contains(&self.runner.hibernate_after_ms) {
            return Err(invalid(
                "runner.hibernate_after_ms".into(),
                format!("{} is below 1000", self.runner.hibernate_after_ms),
                "use 0 to keep idle apps' Kafka clients open, or at least 1000 (60000 is the default)",
            ));
        }
        if self.checkpoint.interval_ms < 100 {
            return Err(invalid(
                "checkpoint.interval_ms".into(),
                format!("{} is below 100", self.checkpoint.interval_ms),
                "use at least 100 (5000 is the default)",
            ));
        }
        for (field, value, fix) in [
            (
                "cassandra.request_timeout_ms",
                self.cassandra.request_timeout_ms,
                "use the longest a write may take before it is retried (10000 is the default)",
            ),
            (
                "cassandra.outage_patience_ms",
                self.cassandra.outage_patience_ms,
                "use how long an app may wait out an outage before it stops (600000 is the default)",
            ),
            (
                "runner.idle_partition_timeout_ms",
                self.runner.idle_partition_timeout_ms,
                "use how long a partition may be silent before the others' time moves on without it (30000 is the default); at 0 every partition is idle at once and no window would close before a drain",
            ),
        ] {
            if value == 0 {
                return Err(invalid(field.into(), "is 0".into(), fix));
            }
        }
        match (&self.admin.tls_cert, &self.admin.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(
                    "admin.tls_key".into(),
                    "only one of tls_cert and tls_key is set".into(),
                    "give both the certificate chain and its private key (PEM files)",
                ))
            }
            (Some(cert), Some(key)) => {
                for (field, file) in [("admin.tls_cert", cert), ("admin.tls_key", key)] {
                    if !file.is_file() {
                        return Err(invalid(
                            field.into(),
                            format!("{} is not a file", file.display()),
                            "give a PEM file",
                        ));
                    }
                }
            }
            (None, None) if !self.admin.listen.ip().is_loopback() => {
                return Err(invalid(
                    "admin.listen".into(),
                    format!("{} is not a loopback address and no certificate is given", self.admin.listen),
                    "set admin.tls_cert and admin.tls_key (tokens must not cross a network in clear), or listen on 127.0.0.1",
                ))
            }
            (None, None) => {}
        }
        if self.admin.max_upload_mb == 0 || self.admin.max_upload_mb > 4096 {
            return Err(invalid(
                "admin.max_upload_mb".into(),
                format!("{} is not within 1..=4096", self.admin.max_upload_mb),
                "use the size of your largest app with room to grow (64 is the default)",
            ));
        }
        if let Some(dir) = self.admin.apps_dir.as_ref().filter(|d| !d.is_dir()) {
            return Err(invalid(
                "admin.apps_dir".into(),
                format!("{} is not a directory", dir.display()),
                "give the folder that deploys by path may read `.wasm` files from, or leave it out",
            ));
        }
        if self.limits.max_failures == 0 {
            return Err(invalid(
                "limits.max_failures".into(),
                "is 0".into(),
                "use at least 1 (3 is the default)",
            ));
        }
        let l = &self.limits;
        for (field, value, fix) in [
            (
                "limits.max_windows_per_record",
                l.max_windows_per_record,
                "use at least 1 (1000 is the default)",
            ),
            (
                "limits.max_open_windows",
                l.max_open_windows as u64,
                "use at least 1 (1000000 is the default)",
            ),
            (
                "limits.max_keys",
                l.max_keys as u64,
                "use at least 1 (1000000 is the default)",
            ),
            (
                "limits.max_key_bytes",
                l.max_key_bytes as u64,
                "use at least 1 (1024 is the default)",
            ),
            (
                "limits.max_record_bytes",
                l.max_record_bytes as u64,
                "use at least 1 (262144 is the default)",
            ),
            (
                "limits.max_result_bytes",
                l.max_result_bytes as u64,
                "use at least 1 (524288 is the default)",
            ),
        ] {
            if value == 0 {
                return Err(invalid(field.into(), "is 0".into(), fix));
            }
        }
        if l.max_result_bytes > MAX_RESULT_BYTES {
            return Err(invalid(
                "limits.max_result_bytes".into(),
                format!("is {}", l.max_result_bytes),
                "use at most 16777216 (Cassandra's default mutation limit; 524288 is the default, and Kafka's message.max.bytes must allow it)",
            ));
        }
        if !(l.max_cpu_cores > 0.0 && l.max_cpu_cores <= 1.0) {
            return Err(invalid(
                "limits.max_cpu_cores".into(),
                format!("is {}", l.max_cpu_cores),
                "use a share of one core above 0 and at most 1 (1 is the default: an app's worker is one thread)",
            ));
        }
        if !(0..=19).contains(&l.worker_nice) {
            return Err(invalid(
                "limits.worker_nice".into(),
                format!("is {}", l.worker_nice),
                "use 0 (the platform's own priority) to 19 (the lowest); 5 is the default",
            ));
        }
        if for_start && self.tenants.is_empty() {
            return Err(invalid(
                "tenants".into(),
                "no tenant is configured".into(),
                "add a [[tenants]] table with an id and [[tenants.apps]]",
            ));
        }
        for (t, tenant) in self.tenants.iter().enumerate() {
            TenantId::new(&tenant.id).map_err(|e| {
                invalid(
                    format!("tenants[{t}].id"),
                    e.to_string(),
                    "it is also the Cassandra keyspace",
                )
            })?;
            for (a, app) in tenant.apps.iter().enumerate() {
                let field = format!("tenants[{t}].apps[{a}]");
                StreamName::new(&app.stream).map_err(|e| {
                    invalid(
                        format!("{field}.stream"),
                        e.to_string(),
                        "the input topic is <tenant>.<stream>",
                    )
                })?;
                if !app.path.is_file() {
                    return Err(invalid(
                        format!("{field}.path"),
                        format!("{} does not exist", app.path.display()),
                        "build the app with `just build-apps` or give the path of its .wasm",
                    ));
                }
            }
        }
        if !for_start {
            return Ok(());
        }
        self.token().map(|_| ()).map_err(|problem| {
            invalid(
                "admin.token".into(),
                problem,
                "set admin.token, or admin.token_env to a variable that holds it",
            )
        })
    }

    /// How the platform reaches Kafka, as the file says (its password read when it was loaded).
    pub fn kafka_access(&self) -> KafkaAccess {
        self.resolved
            .as_ref()
            .map(|(kafka, _)| kafka.clone())
            .unwrap_or_else(|| KafkaAccess::plain(&self.kafka.bootstrap))
    }

    /// How the platform reaches Cassandra, as the file says (its password read when it was
    /// loaded).
    pub fn cassandra_access(&self) -> CassandraAccess {
        self.resolved
            .as_ref()
            .map(|(_, cassandra)| cassandra.clone())
            .unwrap_or_else(|| CassandraAccess::plain(&self.cassandra.nodes))
    }

    /// The operator token, from the file or the environment.
    pub fn token(&self) -> Result<String, String> {
        let token = match (&self.admin.token, &self.admin.token_env) {
            (Some(token), _) => token.clone(),
            (None, Some(var)) => {
                std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
            }
            (None, None) => return Err("no admin token is configured".into()),
        };
        if token.len() < 8 {
            return Err("the token is shorter than 8 characters".into());
        }
        Ok(token)
    }

    /// Every configured app, with names checked.
    pub fn apps(&self) -> Vec<AppEntry> {
        self.tenants
            .iter()
            .flat_map(|t| t.apps.iter().map(move |a| (t, a)))
            .filter_map(|(t, a)| {
                Some(AppEntry {
                    tenant: TenantId::new(&t.id).ok()?,
                    stream: StreamName::new(&a.stream).ok()?,
                    path: a.path.clone(),
                    delivery: a.delivery,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!("mysimbdp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.wasm"), b"").unwrap();
        // One file per call: tests run in parallel, and two writing one file race.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("c{n}.toml"));
        std::fs::write(&path, text).unwrap();
        Config::load(&path).map_err(|e| e.to_string())
    }

    const GOOD: &str = "[admin]\ntoken = \"0123456789\"\n[[tenants]]\nid = \"acme\"\n[[tenants.apps]]\npath = \"app.wasm\"\nstream = \"reviews\"\n";

    #[test]
    fn a_good_file_loads_with_defaults() {
        let config = load(GOOD).unwrap();
        assert_eq!(config.kafka.bootstrap, "127.0.0.1:9092");
        assert_eq!(config.apps().len(), 1);
        assert!(config.apps()[0].path.is_absolute());
    }

    #[test]
    fn mistakes_name_the_field_and_the_fix() {
        let err = load(&GOOD.replace("acme", "Acme")).unwrap_err();
        assert!(
            err.contains("`tenants[0].id`") && err.contains("keyspace"),
            "{err}"
        );
        let err = load(&GOOD.replace("app.wasm", "missing.wasm")).unwrap_err();
        assert!(
            err.contains("tenants[0].apps[0].path") && err.contains("missing.wasm does not exist"),
            "{err}"
        );
        let err = load(&GOOD.replace("stream =", "strem =")).unwrap_err();
        assert!(err.contains("strem"), "{err}");
        let err = load(&GOOD.replace("token = \"0123456789\"", "")).unwrap_err();
        assert!(err.contains("admin.token"), "{err}");
        let err = load(&format!("[limits]\nmax_windows_per_record = 0\n{GOOD}")).unwrap_err();
        assert!(
            err.contains("`limits.max_windows_per_record`: is 0; use at least 1"),
            "{err}"
        );
        let err = load(&format!("[runner]\nhibernate_after_ms = 500\n{GOOD}")).unwrap_err();
        assert!(
            err.contains("`runner.hibernate_after_ms`: 500 is below 1000; use 0 to keep"),
            "{err}"
        );
        let err = load(&format!("[runner]\nidle_partition_timeout_ms = 0\n{GOOD}")).unwrap_err();
        assert!(
            err.contains("`runner.idle_partition_timeout_ms`: is 0; use how long a partition"),
            "{err}"
        );
        let never = load(&format!("[runner]\nhibernate_after_ms = 0\n{GOOD}"));
        assert_eq!(never.map(|c| c.runner.hibernate_after_ms), Ok(0));
    }

    #[test]
    fn limits_reach_the_spec_check_and_the_processor() {
        let config = load(GOOD).unwrap();
        assert_eq!(config.limits.spec().max_windows_per_record, 1000);
        assert_eq!(config.limits.quotas().max_event_time_ahead_ms, 86_400_000);
        let text = format!(
            "[limits]\nmax_windows_per_record = 50\nmax_event_time_ahead_ms = 60000\nmax_open_windows = 7\nmax_keys = 6\nmax_key_bytes = 5\nmax_record_bytes = 4\nmax_result_bytes = 3\n{GOOD}"
        );
        let config = load(&text).unwrap();
        assert_eq!(config.limits.spec().max_windows_per_record, 50);
        assert_eq!(
            config.limits.quotas(),
            Quotas {
                max_event_time_ahead_ms: 60_000,
                max_open_windows: 7,
                max_keys: 6,
                max_key_bytes: 5,
                max_record_bytes: 4,
                max_result_bytes: 3,
            }
        );
    }

    #[test]
    fn security_settings_name_the_field_and_the_fix() {
        let with = |section: &str, lines: &str| {
            GOOD.replace("[admin]\n", &format!("[{section}]\n{lines}\n[admin]\n"))
        };
        let err = load(&with(
            "kafka",
            "user = \"mysimbdp\"\nsasl_mechanism = \"SCRAM-SHA-256\"",
        ))
        .unwrap_err();
        assert!(
            err.contains("`kafka.password_file`") && err.contains("password_env"),
            "{err}"
        );
        let err = load(&with("kafka", "user = \"u\"\npassword_env = \"MYSIMBDP_TEST_NO_SUCH_VAR\"\nsasl_mechanism = \"PLAIN\"")).unwrap_err();
        assert!(
            err.contains("MYSIMBDP_TEST_NO_SUCH_VAR is not set"),
            "{err}"
        );
        let err = load(&with("kafka", "sasl_mechanism = \"SCRAM-SHA-1\"")).unwrap_err();
        assert!(err.contains("SCRAM-SHA-1"), "{err}");
        let err = load(&with("cassandra", "password_file = \"app.wasm\"")).unwrap_err();
        assert!(err.contains("`cassandra.user`"), "{err}");
        let err = load(&with("cassandra", "ca_file = \"nowhere.pem\"")).unwrap_err();
        assert!(
            err.contains("`cassandra.ca_file`") && err.contains("not a file"),
            "{err}"
        );
        let err =
            load(&GOOD.replace("[admin]\n", "[admin]\nlisten = \"0.0.0.0:9180\"\n")).unwrap_err();
        assert!(
            err.contains("`admin.listen`") && err.contains("tls_cert"),
            "{err}"
        );
        let err =
            load(&GOOD.replace("[admin]\n", "[admin]\ntls_cert = \"app.wasm\"\n")).unwrap_err();
        assert!(err.contains("`admin.tls_key`"), "{err}");
    }

    #[test]
    fn a_password_file_logs_the_platform_in() {
        let dir = std::env::temp_dir().join(format!("mysimbdp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kafka.password"), "s3cret\n").unwrap();
        let text = GOOD.replace(
            "[admin]\n",
            "[kafka]\nsasl_mechanism = \"SCRAM-SHA-256\"\nuser = \"mysimbdp\"\npassword_file = \"kafka.password\"\n[admin]\n",
        );
        let config = load(&text).unwrap();
        let client = config.kafka_access().client_config();
        assert_eq!(client.get("sasl.username"), Some("mysimbdp"));
        assert_eq!(client.get("sasl.password"), Some("s3cret"));
        assert_eq!(client.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(config.cassandra_access().role(), None);
    }

    #[test]
    fn deploy_settings_are_checked() {
        let config = load(&format!("{GOOD}# the deploy defaults\n")).unwrap();
        assert_eq!(
            (config.admin.max_upload_mb, config.admin.apps_dir),
            (64, None)
        );
        let config = load(&GOOD.replace("[admin]\n", "[admin]\napps_dir = \".\"\n")).unwrap();
        assert!(config.admin.apps_dir.unwrap().is_absolute());
        let err =
            load(&GOOD.replace("[admin]\n", "[admin]\napps_dir = \"nowhere\"\n")).unwrap_err();
        assert!(
            err.contains("admin.apps_dir") && err.contains("not a directory"),
            "{err}"
        );
        let err = load(&GOOD.replace("[admin]\n", "[admin]\nmax_upload_mb = 0\n")).unwrap_err();
        assert!(err.contains("admin.max_upload_mb"), "{err}");
    }
}
