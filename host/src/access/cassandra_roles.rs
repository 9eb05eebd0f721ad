//! A tenant's Cassandra role: it logs in with its own password and may read its own keyspace,
//! nothing else. The platform's role creates the keyspace, so the platform owns it and alone
//! writes to it.

use scylla::client::session::Session;

use super::Password;
use crate::names::TenantId;
use crate::sink::cassandra::{failed, CassandraError};

/// Creates the tenant's keyspace and role when missing, sets the role's password, and grants it
/// SELECT on that keyspace alone.
pub async fn ensure_role(
    session: &Session,
    tenant: &TenantId,
    password: &Password,
    replication: u32,
) -> Result<(), CassandraError> {
    let t = tenant.as_str();
    let secret = literal(password)?;
    for (doing, cql) in [
        (
            format!("creating keyspace {t}"),
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {t} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': {replication}}}"
            ),
        ),
        (
            format!("creating role {t}"),
            format!("CREATE ROLE IF NOT EXISTS {t} WITH LOGIN = true AND PASSWORD = {secret}"),
        ),
        (
            format!("setting the password of role {t}"),
            format!("ALTER ROLE {t} WITH LOGIN = true AND PASSWORD = {secret}"),
        ),
        (
            format!("granting role {t} SELECT on keyspace {t}"),
            format!("GRANT SELECT ON KEYSPACE {t} TO {t}"),
        ),
    ] {
        session
            .query_unpaged(cql, &[])
            .await
            .map_err(failed(doing))?;
    }
    Ok(())
}

/// Drops the tenant's role (and with it its grants); its keyspace and data stay.
pub async fn drop_role(session: &Session, tenant: &TenantId) -> Result<(), CassandraError> {
    let t = tenant.as_str();
    session
        .query_unpaged(format!("DROP ROLE IF EXISTS {t}"), &[])
        .await
        .map_err(failed(format!("dropping role {t}")))?;
    Ok(())
}

/// Role statements take no bind markers, so the password is written as a CQL string literal;
/// the platform generates it as hex, and anything else is refused rather than escaped.
fn literal(password: &Password) -> Result<String, CassandraError> {
    let p = password.expose();
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CassandraError::new(
            "writing a role's password",
            "only generated (hex) passwords are accepted",
        ));
    }
    Ok(format!("'{p}'"))
}
