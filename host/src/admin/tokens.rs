//! Tenants' admin tokens: each tenant's token sees and steers only that tenant's apps. Only a
//! SHA-256 digest of a token is kept, in the platform's own keyspace, so every host serving
//! the admin API knows every tenant's token and none can be read back. A token names its
//! tenant (`<tenant>.<secret>`, a `.` never being part of a tenant id), so checking one is a
//! single-row read, remembered for a few seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use sha2::{Digest, Sha256};

use crate::checkpoint::KEYSPACE;
use crate::names::TenantId;
use crate::sink::cassandra::{failed, prepare, CassandraError};

/// How long a looked-up digest is trusted: a revoked or rotated token stops working within it.
const REMEMBERED: Duration = Duration::from_secs(5);

/// A token's digest; compared in constant time.
type TokenDigest = [u8; 32];

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two digests are equal, in time independent of where they differ (both are always
/// 32 bytes, so their lengths say nothing).
pub fn same_digest(a: &TokenDigest, b: &TokenDigest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `given` is `expected`, compared through their digests: constant time, length
/// included.
pub fn same_token(given: &str, expected: &str) -> bool {
    same_digest(&digest(given), &digest(expected))
}

/// The tenants' token digests in Cassandra.
pub struct TenantTokens {
    session: Arc<Session>,
    insert: PreparedStatement,
    select: PreparedStatement,
    list: PreparedStatement,
    delete: PreparedStatement,
    /// tenant → (digest if it has a token, when looked up).
    seen: Mutex<HashMap<String, (Option<TokenDigest>, Instant)>>,
}

impl TenantTokens {
    /// Creates the table when missing (the keyspace is the checkpoint store's).
    pub async fn open(session: Arc<Session>) -> Result<Self, CassandraError> {
        let table = format!("{KEYSPACE}.tenant_tokens");
        session
            .query_unpaged(
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (tenant text PRIMARY KEY, digest blob, \
                     issued timestamp)"
                ),
                &[],
            )
            .await
            .map_err(failed(format!("creating {table}")))?;
        let prepare = |cql: String| prepare(&session, cql);
        Ok(Self {
            insert: prepare(format!(
                "INSERT INTO {table} (tenant, digest, issued) VALUES (?, ?, ?)"
            ))
            .await?,
            select: prepare(format!("SELECT digest FROM {table} WHERE tenant = ?")).await?,
            list: prepare(format!("SELECT tenant FROM {table}")).await?,
            delete: prepare(format!("DELETE FROM {table} WHERE tenant = ?")).await?,
            session,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// A new token for `tenant`, replacing any it had; shown once, only its digest is kept.
    pub async fn issue(&self, tenant: &TenantId, now_ms: i64) -> Result<String, CassandraError> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let token = format!("{tenant}.{hex}");
        self.session
            .execute_unpaged(
                &self.insert,
                (
                    tenant.as_str(),
                    digest(&token).to_vec(),
                    CqlTimestamp(now_ms),
                ),
            )
            .await
            .map_err(failed(format!("storing the token of {tenant}")))?;
        self.forget(tenant.as_str());
        Ok(token)
    }

    /// The tenants that have a token, in order.
    pub async fn list(&self) -> Result<Vec<String>, CassandraError> {
        let rows = self
            .session
            .execute_unpaged(&self.list, &[])
            .await
            .map_err(failed("listing the tenants' tokens"))?
            .into_rows_result()
            .map_err(|e| CassandraError::new("listing the tenants' tokens", e.to_string()))?;
        let mut tenants = rows
            .rows::<(String,)>()
            .map_err(|e| CassandraError::new("listing the tenants' tokens", e.to_string()))?
            .filter_map(|row| row.ok().map(|(t,)| t))
            .collect::<Vec<_>>();
        tenants.sort();
        Ok(tenants)
    }

    /// Whether `tenant` has a token.
    pub async fn exists(&self, tenant: &TenantId) -> Result<bool, CassandraError> {
        Ok(self.stored(tenant.as_str()).await?.is_some())
    }

    /// Removes `tenant`'s token.
    pub async fn revoke(&self, tenant: &TenantId) -> Result<(), CassandraError> {
        self.session
            .execute_unpaged(&self.delete, (tenant.as_str(),))
            .await
            .map_err(failed(format!("removing the token of {tenant}")))?;
        self.forget(tenant.as_str());
        Ok(())
    }

    /// The tenant a token acts for, if it is that tenant's current token.
    pub async fn tenant_of(&self, token: &str) -> Result<Option<TenantId>, CassandraError> {
        let Some((tenant, _)) = token.split_once('.') else {
            return Ok(None);
        };
        let Ok(tenant) = TenantId::new(tenant) else {
            return Ok(None);
        };
        let stored = self.stored(tenant.as_str()).await?;
        Ok(stored
            .filter(|stored| same_digest(stored, &digest(token)))
            .map(|_| tenant))
    }

    async fn stored(&self, tenant: &str) -> Result<Option<TokenDigest>, CassandraError> {
        if let Some((stored, at)) = self.seen.lock().ok().and_then(|s| s.get(tenant).copied()) {
            if at.elapsed() < REMEMBERED {
                return Ok(stored);
            }
        }
        let rows = self
            .session
            .execute_unpaged(&self.select, (tenant,))
            .await
            .map_err(failed(format!("reading the token of {tenant}")))?
            .into_rows_result()
            .map_err(|e| CassandraError::new("reading a token", e.to_string()))?;
        let stored = rows
            .maybe_first_row::<(Option<Vec<u8>>,)>()
            .map_err(|e| CassandraError::new("reading a token", e.to_string()))?
            .and_then(|(d,)| d)
            .and_then(|d| TokenDigest::try_from(d.as_slice()).ok());
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(tenant.to_owned(), (stored, Instant::now()));
        }
        Ok(stored)
    }

    fn forget(&self, tenant: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_digest() {
        assert!(same_token("operator-token", "operator-token"));
        assert!(!same_token("operator-token", "operator-tokeN"));
        assert!(!same_token("short", "operator-token"), "lengths differ");
        assert!(!same_token("", "operator-token"));
    }
}
