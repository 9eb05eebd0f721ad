//! Where the local services listen and, when they run with authentication (the default;
//! `MYSIMBDP_AUTH=off` as `deploy/local` reads it too), how the harness logs in: as the platform's
//! own Kafka user and Cassandra role, whose passwords `deploy/local/up.sh` generated under
//! `.state/secrets/`, for what only the platform or the operator does (creating a tenant's
//! streams, its own keyspace, its consumer groups); as a tenant, with the credentials that
//! `mysimbdp tenant add` issued, for what a tenant does (sending its input, reading its results
//! topics and tables): [`tenant_credentials`] issues them once per tenant and test process,
//! straight against the services (`tenant add --config`), before any platform runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::ClientConfig;
use scylla::client::session_builder::SessionBuilder;

use crate::env::{mysimbdp_bin, state_dir};

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

/// Kafka's TLS listener as `just up` starts it (`MYSIMBDP_KAFKA_TLS_PORT`, default two above
/// the Kafka port).
pub fn kafka_tls_bootstrap() -> String {
    let plain = port("MYSIMBDP_KAFKA_PORT", 9092);
    format!(
        "127.0.0.1:{}",
        port("MYSIMBDP_KAFKA_TLS_PORT", plain.saturating_add(2))
    )
}

/// The CA that signed the local services' certificates (`deploy/local/lib.sh` `ensure_tls`).
pub fn services_ca_file() -> PathBuf {
    state_dir().join("tls").join("ca.pem")
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
    state_dir().join("secrets").join(name)
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

/// `mysimbdp produce --bootstrap <local Kafka>`, logged in as `tenant` with the credentials
/// `tenant add` issued when authentication is on (the password in the child's environment,
/// never on its command line). The topic must exist: tenants cannot create topics.
pub fn produce_command(tenant: &str) -> Result<Command> {
    let mut command = Command::new(mysimbdp_bin()?);
    command
        .arg("produce")
        .args(["--bootstrap", &kafka_bootstrap()]);
    if auth_on() {
        let credentials = tenant_credentials(tenant)?;
        let (user, password) = credentials
            .kafka
            .as_ref()
            .context("tenant add issued no Kafka user")?;
        command
            .env("MYSIMBDP_KAFKA_USER", user)
            .env("MYSIMBDP_KAFKA_PASSWORD", password);
    }
    Ok(command)
}

/// The tenants' credentials this test process has: issued by [`tenant_credentials`] or handed
/// over by a test that issued them through the admin API ([`remember_tenant`]).
static TENANTS: Mutex<Option<HashMap<String, TenantCredentials>>> = Mutex::new(None);

/// `tenant`'s credentials, as `mysimbdp tenant add --tenant <tenant> --config <the platform's
/// logins>` issued them; issued on first use in this process, then remembered. Only with
/// authentication on (without it there is nothing to issue).
pub fn tenant_credentials(tenant: &str) -> Result<TenantCredentials> {
    // One issue at a time, so two threads never issue (and so rotate) the same tenant's.
    static ISSUING: Mutex<()> = Mutex::new(());
    let _issuing = ISSUING.lock();
    if let Some(known) = TENANTS
        .lock()
        .ok()
        .and_then(|t| t.as_ref()?.get(tenant).cloned())
    {
        return Ok(known);
    }
    let config = crate::env::target_dir()
        .join("e2e")
        .join(format!("operator-{}.toml", std::process::id()));
    let (kafka_login, cassandra_login) = platform_login_toml();
    std::fs::create_dir_all(config.parent().unwrap_or(&config))
        .with_context(|| format!("cannot create the folder of {}", config.display()))?;
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbootstrap = {:?}\n{kafka_login}\n[cassandra]\nnodes = [{:?}]\n{cassandra_login}",
            kafka_bootstrap(),
            cassandra_node()
        ),
    )
    .with_context(|| format!("cannot write {}", config.display()))?;
    let output = Command::new(mysimbdp_bin()?)
        .args(["tenant", "add", "--tenant", tenant, "--config"])
        .arg(&config)
        .output()
        .context("cannot run mysimbdp tenant add")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "mysimbdp tenant add --tenant {tenant} --config {} failed: {}",
            config.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let credentials = TenantCredentials::parse(&stdout)?;
    wait_for_kafka_login(&credentials)?;
    remember_tenant(tenant, credentials.clone());
    Ok(credentials)
}

/// Hands the harness a tenant's credentials that a test issued itself (through the admin API,
/// or new ones from `tenant rotate`), so that its readers and producers log in with them.
pub fn remember_tenant(tenant: &str, credentials: TenantCredentials) {
    if let Ok(mut tenants) = TENANTS.lock() {
        tenants
            .get_or_insert_with(HashMap::new)
            .insert(tenant.to_owned(), credentials);
    }
}

/// Waits until the broker accepts the new user's login: SCRAM credentials reach the broker
/// through the metadata log, a moment after the controller accepted them.
pub fn wait_for_kafka_login(credentials: &TenantCredentials) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let Some(client) = credentials
        .kafka
        .as_ref()
        .map(|(u, p)| kafka_client_as(u, p))
    else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let consumer: BaseConsumer = client.create().context("cannot create a Kafka client")?;
        match consumer.fetch_metadata(None, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                bail!("the broker did not accept a new tenant's login: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The tenant a topic or keyspace belongs to (`<tenant>.…` or `<tenant>`), if any: not the
/// platform's own `mysimbdp`, and not a name the platform's readers use for themselves.
pub fn owner(name: &str) -> Option<&str> {
    let tenant = name.split('.').next()?;
    let valid = tenant.starts_with(|c: char| c.is_ascii_lowercase())
        && tenant
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (valid && tenant != PLATFORM_USER).then_some(tenant)
}

/// A Kafka client for reading or writing `topic` as a tenant would: logged in as its owner with
/// authentication on, or as the platform for a topic no tenant owns. The second value is the
/// prefix its consumer groups take (a tenant may join only groups under its own).
pub fn kafka_client_for(topic: &str) -> Result<(ClientConfig, String)> {
    match owner(topic).filter(|_| auth_on()) {
        Some(tenant) => Ok((
            tenant_credentials(tenant)?.kafka_client()?,
            format!("{tenant}.tests"),
        )),
        None => Ok((kafka_client()?, "mysimbdp-tests".to_owned())),
    }
}

/// A Cassandra session builder for reading `keyspace`: as its tenant's role with
/// authentication on, as the platform for `mysimbdp` (checkpoints, token digests).
pub fn cassandra_builder_for(keyspace: &str) -> Result<SessionBuilder> {
    match owner(keyspace).filter(|_| auth_on()) {
        Some(tenant) => tenant_credentials(tenant)?.cassandra_builder(),
        None => cassandra_builder(),
    }
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
