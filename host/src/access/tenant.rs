//! What `mysimbdp tenant add|rotate|remove` does in Kafka and Cassandra: a tenant gets a Kafka
//! user with prefixed ACLs on its own topics and groups, and a Cassandra role that may read its
//! own keyspace. Each is managed only when the platform itself logs in to that service: a
//! cluster without authentication has nothing to wall off.

use std::sync::Arc;

use scylla::client::session::Session;
use serde::Serialize;

use super::kafka_admin::{KafkaAdmin, KafkaAdminError, Operation, Permission, PrefixAcl, Resource};
use super::{cassandra_roles, CassandraAccess, KafkaAccess, Password, SaslMechanism};
use crate::names::{AppName, TenantId};
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
    /// apps' results, late, dead-letter and alerts topics to read) and its consumer groups (same
    /// prefix). No Create: a tenant cannot make topics, so it can neither fill the cluster with
    /// partitions nor make an output topic of an app before the platform does; the operator or
    /// the platform creates input streams, and [`output_walls`] keep the tenant from writing
    /// its apps' outputs.
    pub fn acls(tenant: &TenantId) -> Vec<PrefixAcl> {
        let prefix = format!("{tenant}.");
        let principal = format!("User:{tenant}");
        let topic = [Operation::Read, Operation::Write, Operation::Describe];
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
                permission: Permission::Allow,
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
                    // The current set only: a grant of an older release may have allowed more.
                    admin.delete_acls_of(&format!("User:{t}"), Permission::Allow)?;
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
                // The DENY walls of its apps' outputs stay: a tenant added again is still
                // kept from writing the outputs of the apps it ran.
                admin.delete_acls_of(&format!("User:{t}"), Permission::Allow)?;
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

/// The DENY rules that keep `tenant` from writing (or creating) the topics of its app `app`:
/// every topic named `<tenant>.<app>.…` (results, late, dead letters, alerts, and any output a
/// later version adds). Stream and app names hold no `.`, so no input stream `<tenant>.<stream>`
/// starts with that prefix.
pub fn output_walls(tenant: &TenantId, app: &AppName) -> Vec<PrefixAcl> {
    [Operation::Write, Operation::Create]
        .into_iter()
        .map(|operation| PrefixAcl {
            resource: Resource::Topic,
            prefix: format!("{tenant}.{app}."),
            principal: format!("User:{tenant}"),
            operation,
            permission: Permission::Deny,
        })
        .collect()
}

/// Places [`output_walls`] for `app` before the platform creates or writes its topics, where
/// the platform manages tenants' Kafka users (it logs in with SCRAM); creating rules that exist
/// is a no-op, so every host does it at every start of the app.
pub fn wall_off_outputs(
    kafka: &KafkaAccess,
    admin: &KafkaAdmin,
    tenant: &TenantId,
    app: &AppName,
) -> Result<(), KafkaAdminError> {
    if !matches!(
        kafka.mechanism(),
        Some(SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512)
    ) {
        return Ok(());
    }
    admin.create_acls(&output_walls(tenant, app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_may_not_create_topics_nor_write_its_apps_outputs() {
        let tenant = TenantId::new("acme").expect("a tenant id");
        let app = AppName::new("reviews-daily").expect("an app name");
        let allowed = TenantAccess::acls(&tenant);
        assert!(allowed
            .iter()
            .all(|a| a.permission == Permission::Allow && a.operation != Operation::Create));
        let walls = output_walls(&tenant, &app);
        assert!(walls.iter().all(|w| w.permission == Permission::Deny
            && w.prefix == "acme.reviews-daily."
            && w.principal == "User:acme"));
        let topics = crate::names::AppTopics::new(
            &tenant,
            &crate::names::StreamName::new("reviews").expect("a stream"),
            &app,
        );
        for output in [
            &topics.results,
            &topics.late,
            &topics.dead_letters,
            &topics.alerts,
        ] {
            assert!(output.starts_with(&walls[0].prefix), "{output}");
        }
        assert!(!topics.input.starts_with(&walls[0].prefix));
    }
}
