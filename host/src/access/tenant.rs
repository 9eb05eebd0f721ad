//! What `mysimbdp tenant add|rotate|remove` does in Kafka and Cassandra: a tenant gets a Kafka
//! user with prefixed ACLs on its own topics and groups, and a Cassandra role that may read its
//! own keyspace. Each is managed only when the platform itself logs in to that service: a
//! cluster without authentication has nothing to wall off.

use std::sync::Arc;

use scylla::client::session::Session;
use serde::Serialize;

use super::kafka_admin::{KafkaAdmin, KafkaAdminError, Operation, PrefixAcl, Resource};
use super::{cassandra_roles, CassandraAccess, KafkaAccess, Password, SaslMechanism};
use crate::names::TenantId;
use crate::sink::cassandra::CassandraError;

/// Why a tenant's access could not be granted or revoked.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Kafka(#[from] KafkaAdminError),
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    #[error("the Kafka admin task stopped: {0}")]
    Task(String),
}

/// A tenant's new credentials, shown once.
#[derive(Debug, Serialize)]
pub struct TenantCredentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaLogin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cassandra: Option<CassandraLogin>,
}

/// How a tenant logs in to Kafka.
#[derive(Debug, Serialize)]
pub struct KafkaLogin {
    pub bootstrap: String,
    pub mechanism: &'static str,
    pub user: String,
    pub password: String,
}

/// How a tenant logs in to Cassandra.
#[derive(Debug, Serialize)]
pub struct CassandraLogin {
    pub role: String,
    pub password: String,
}

/// Grants and revokes tenants' access to Kafka and Cassandra, as the platform.
pub struct TenantAccess {
    kafka: Option<(KafkaAccess, SaslMechanism)>,
    session: Arc<Session>,
    cassandra_roles: bool,
    replication: u32,
}

impl TenantAccess {
    /// Manages Kafka users when the platform logs in to Kafka with SCRAM, and Cassandra roles
    /// when it logs in to Cassandra; `session` is the platform's.
    pub fn new(
        kafka: &KafkaAccess,
        cassandra: &CassandraAccess,
        session: Arc<Session>,
        replication: u32,
    ) -> Self {
        Self {
            kafka: kafka
                .mechanism()
                .filter(|m| *m != SaslMechanism::Plain)
                .map(|m| (kafka.clone(), m)),
            session,
            cassandra_roles: cassandra.role().is_some(),
            replication,
        }
    }

    /// The ACLs a tenant gets: its topics (`<tenant>.` prefix: its input streams to write, its
    /// results, late and dead-letter topics to read) and its consumer groups (same prefix).
    pub fn acls(tenant: &TenantId) -> Vec<PrefixAcl> {
        let prefix = format!("{tenant}.");
        let principal = format!("User:{tenant}");
        let topic = [
            Operation::Read,
            Operation::Write,
            Operation::Create,
            Operation::Describe,
        ];
        let group = [Operation::Read, Operation::Describe];
        topic
            .iter()
            .map(|op| (Resource::Topic, *op))
            .chain(group.iter().map(|op| (Resource::Group, *op)))
            .map(|(resource, operation)| PrefixAcl {
                resource,
                prefix: prefix.clone(),
                principal: principal.clone(),
                operation,
            })
            .collect()
    }

    /// Creates the tenant's Kafka user and Cassandra role, or gives them new passwords.
    pub async fn grant(&self, tenant: &TenantId) -> Result<TenantCredentials, AccessError> {
        let kafka = match &self.kafka {
            Some((access, mechanism)) => {
                let password = Password::generate();
                let (admin_access, mechanism, t, p) =
                    (access.clone(), *mechanism, tenant.clone(), password.clone());
                tokio::task::spawn_blocking(move || -> Result<(), KafkaAdminError> {
                    let admin = KafkaAdmin::new(&admin_access)?;
                    admin.upsert_scram_user(t.as_str(), mechanism, &p)?;
                    admin.create_acls(&Self::acls(&t))
                })
                .await
                .map_err(|e| AccessError::Task(e.to_string()))??;
                Some(KafkaLogin {
                    bootstrap: access.bootstrap.clone(),
                    mechanism: mechanism.name(),
                    user: tenant.to_string(),
                    password: password.expose().to_owned(),
                })
            }
            None => None,
        };
        let cassandra = if self.cassandra_roles {
            let password = Password::generate();
            cassandra_roles::ensure_role(&self.session, tenant, &password, self.replication)
                .await?;
            Some(CassandraLogin {
                role: tenant.to_string(),
                password: password.expose().to_owned(),
            })
        } else {
            None
        };
        tracing::info!(%tenant, kafka = kafka.is_some(), cassandra = cassandra.is_some(), "tenant access granted");
        Ok(TenantCredentials { kafka, cassandra })
    }

    /// Removes the tenant's Kafka user and ACLs and its Cassandra role; its data stays.
    pub async fn revoke(&self, tenant: &TenantId) -> Result<(), AccessError> {
        if let Some((access, mechanism)) = &self.kafka {
            let (access, mechanism, t) = (access.clone(), *mechanism, tenant.clone());
            tokio::task::spawn_blocking(move || -> Result<(), KafkaAdminError> {
                let admin = KafkaAdmin::new(&access)?;
                admin.delete_acls_of(&format!("User:{t}"))?;
                admin.delete_scram_user(t.as_str(), mechanism)
            })
            .await
            .map_err(|e| AccessError::Task(e.to_string()))??;
        }
        if self.cassandra_roles {
            cassandra_roles::drop_role(&self.session, tenant).await?;
        }
        tracing::info!(%tenant, "tenant access revoked");
        Ok(())
    }
}
