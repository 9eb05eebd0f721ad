//! `mysimbdp tenant … --config <platform.toml>`: the operator's tenant commands straight against
//! Kafka and Cassandra, logged in as the platform (as `mysimbdp batch` is), so tenants and their
//! streams can be set up before any platform runs. The token digests go where the admin API
//! reads them, so a platform started later knows the tokens.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::Value;

use crate::access::TenantAccess;
use crate::admin::{tenants, TenantTokens};
use crate::checkpoint::CheckpointStore;
use crate::config::Config;
use crate::names::{StreamName, TenantId};

/// What the operator asks for.
pub enum Action<'a> {
    Issue { tenant: &'a str, replace: bool },
    Revoke { tenant: &'a str },
    List,
}

/// Creates a tenant's input stream topic `<tenant>.<stream>` as the platform, unless it exists:
/// tenants may write their streams but not create topics.
pub fn create_stream(
    config: &Path,
    tenant: &str,
    stream: &str,
    partitions: i32,
) -> anyhow::Result<String> {
    super::run::init_logging();
    let config = Config::load_logins(config)?;
    let topic = TenantId::new(tenant)?.stream_topic(&StreamName::new(stream)?);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(crate::source::kafka::ensure_topics(
            &config.kafka_access(),
            &[topic.as_str()],
            partitions,
        ))?;
    Ok(topic)
}

/// Runs `action` with the platform's logins from `config`; the answer has the admin API's shape.
pub fn run(config: &Path, action: Action<'_>) -> anyhow::Result<Value> {
    super::run::init_logging();
    let config = Config::load_logins(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let session = crate::sink::cassandra::connect(
            &config.cassandra_access(),
            Duration::from_millis(config.cassandra.request_timeout_ms),
        )
        .await?;
        // The platform's keyspace, which holds the token digests, may not exist yet.
        CheckpointStore::open(session.clone(), config.cassandra.replication).await?;
        let tokens = TenantTokens::open(session.clone()).await?;
        let access = TenantAccess::new(
            &config.kafka_access(),
            &config.cassandra_access(),
            Arc::clone(&session),
            config.cassandra.replication,
        );
        Ok(match action {
            Action::Issue { tenant, replace } => {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                tenants::issue(&tokens, &access, &TenantId::new(tenant)?, replace, now_ms).await?
            }
            Action::Revoke { tenant } => {
                let tenant = TenantId::new(tenant)?;
                tenants::revoke(&tokens, &access, &tenant).await?;
                serde_json::json!({ "tenant": tenant.as_str(), "revoked": true })
            }
            Action::List => serde_json::json!({ "tenants": tokens.list().await? }),
        })
    })
}
