//! Issuing and revoking a tenant's credentials: shared by the admin API and by
//! `mysimbdp tenant … --config`, which an operator runs before any platform is up.

use serde_json::{json, Value};

use super::tokens::TenantTokens;
use crate::access::{AccessError, TenantAccess};
use crate::names::TenantId;
use crate::sink::cassandra::CassandraError;

/// Why a tenant's credentials were not issued or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant `{0}` has a token: use `tenant rotate` to replace it")]
    Exists(TenantId),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Store(#[from] CassandraError),
}

/// Gives `tenant` a new admin token and, where the platform logs in to them, a Kafka user and
/// a Cassandra role with new passwords; unless `replace`, refuses a tenant that has a token.
/// The answer (`tenant`, `token`, `kafka`, `cassandra`) is the only place the secrets appear.
pub async fn issue(
    tokens: &TenantTokens,
    access: &TenantAccess,
    tenant: &TenantId,
    replace: bool,
    now_ms: i64,
) -> Result<Value, TenantError> {
    if !replace && tokens.exists(tenant).await? {
        return Err(TenantError::Exists(tenant.clone()));
    }
    let credentials = access.grant(tenant).await?;
    let token = tokens.issue(tenant, now_ms).await?;
    tracing::info!(%tenant, "tenant token issued");
    let mut answer = json!({ "tenant": tenant.as_str(), "token": token });
    if let Some(kafka) = credentials.kafka {
        answer["kafka"] = json!(kafka);
    }
    if let Some(cassandra) = credentials.cassandra {
        answer["cassandra"] = json!(cassandra);
    }
    Ok(answer)
}

/// Revokes `tenant`'s token, Kafka user and ACLs and Cassandra role; its data stays.
pub async fn revoke(
    tokens: &TenantTokens,
    access: &TenantAccess,
    tenant: &TenantId,
) -> Result<(), TenantError> {
    access.revoke(tenant).await?;
    tokens.revoke(tenant).await?;
    tracing::info!(%tenant, "tenant token revoked");
    Ok(())
}
