//! The names a tenant's data lives under: validated once, so that no topic, keyspace or table
//! name is ever built from an unchecked string.

use std::fmt;

/// Why a name was refused, and what a valid one looks like.
#[derive(Debug, thiserror::Error)]
#[error("{what} `{value}` is not valid: {rule}")]
pub struct NameError {
    what: &'static str,
    value: String,
    rule: &'static str,
}

const CQL_RULE: &str =
    "use 1 to 48 characters: a lowercase letter, then lowercase letters, digits or `_`";

const TENANT_RULE: &str = "use 1 to 48 characters: a lowercase letter, then lowercase letters or \
     digits (no `_`: Kafka treats `.` and `_` in topic names as the same, so `a_b.c` and `a.b_c` \
     would collide)";

const RESERVED_RULE: &str = "the name is reserved (the platform's own `mysimbdp`, Cassandra's \
     `system*` keyspaces and `cassandra` role, or a CQL reserved word): choose another";

/// CQL's reserved words (Cassandra 5.0): none can name a keyspace or a role unquoted.
const CQL_RESERVED: &[&str] = &[
    "add",
    "aggregate",
    "all",
    "allow",
    "alter",
    "and",
    "apply",
    "asc",
    "authorize",
    "batch",
    "begin",
    "by",
    "columnfamily",
    "create",
    "default",
    "delete",
    "desc",
    "describe",
    "drop",
    "entries",
    "execute",
    "from",
    "full",
    "function",
    "grant",
    "if",
    "in",
    "index",
    "infinity",
    "insert",
    "into",
    "is",
    "keyspace",
    "limit",
    "materialized",
    "mbean",
    "mbeans",
    "modify",
    "nan",
    "norecursive",
    "not",
    "null",
    "of",
    "on",
    "or",
    "order",
    "primary",
    "rename",
    "replace",
    "revoke",
    "schema",
    "select",
    "set",
    "table",
    "to",
    "token",
    "truncate",
    "unlogged",
    "unset",
    "update",
    "use",
    "using",
    "view",
    "where",
    "with",
];

/// Names no tenant may take: the platform's own keyspace, user and role, Cassandra's system
/// keyspaces and default role, and CQL's reserved words.
fn is_reserved(s: &str) -> bool {
    s == "mysimbdp" || s == "cassandra" || s.starts_with("system") || CQL_RESERVED.contains(&s)
}

fn is_cql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 48
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// A tenant id; it is also the tenant's Cassandra keyspace and role and its Kafka user, so it
/// is a CQL identifier without `_` (which would let two tenants' topics collide) and never a
/// reserved name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn new(value: &str) -> Result<Self, NameError> {
        let refuse = |rule| {
            Err(NameError {
                what: "tenant id",
                value: value.into(),
                rule,
            })
        };
        if !is_cql_identifier(value) || value.contains('_') {
            refuse(TENANT_RULE)
        } else if is_reserved(value) {
            refuse(RESERVED_RULE)
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Kafka topic a stream of this tenant arrives on.
    pub fn stream_topic(&self, stream: &StreamName) -> String {
        format!("{}.{}", self.0, stream.0)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Letters, digits and `-`: safe inside a Kafka topic name and a URL path, and free of `.` and
/// `_`, which Kafka treats as the same character when it checks topic names for collisions.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

const PLAIN_RULE: &str = "use 1 to 64 characters among lowercase letters, digits and `-` (no \
     `_`: Kafka treats `.` and `_` in topic names as the same)";

/// A tenant's stream, such as `reviews`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamName(String);

impl StreamName {
    pub fn new(value: &str) -> Result<Self, NameError> {
        if is_plain_name(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError {
                what: "stream name",
                value: value.into(),
                rule: PLAIN_RULE,
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An app's name as it describes itself, such as `reviews-daily`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppName(String);

impl AppName {
    pub fn new(value: &str) -> Result<Self, NameError> {
        if is_plain_name(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError {
                what: "app name",
                value: value.into(),
                rule: PLAIN_RULE,
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A CQL identifier for a table or column the app declares.
pub fn cql_identifier(what: &'static str, value: &str) -> Result<String, NameError> {
    if is_cql_identifier(value) {
        Ok(value.to_owned())
    } else {
        Err(NameError {
            what,
            value: value.into(),
            rule: CQL_RULE,
        })
    }
}

/// Every topic one app reads or writes.
#[derive(Debug, Clone)]
pub struct AppTopics {
    pub input: String,
    pub results: String,
    pub late: String,
    pub dead_letters: String,
    /// Alerts of an app with an `alert` output (see `crate::alerts`).
    pub alerts: String,
    /// The Kafka consumer group: one per app, so that more hosts share its partitions.
    pub group: String,
}

impl AppTopics {
    pub fn new(tenant: &TenantId, stream: &StreamName, app: &AppName) -> Self {
        let prefix = format!("{tenant}.{app}");
        Self {
            input: tenant.stream_topic(stream),
            results: format!("{prefix}.results"),
            late: format!("{prefix}.late"),
            dead_letters: format!("{prefix}.dead-letters"),
            alerts: format!("{prefix}.alerts"),
            group: format!("mysimbdp.{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_cql_identifiers() {
        assert!(TenantId::new("acme2").is_ok());
        for bad in [
            "",
            "2acme",
            "Acme",
            "ac-me",
            "a.b",
            "acme_2",
            &"a".repeat(49),
        ] {
            let err = TenantId::new(bad).unwrap_err().to_string();
            assert!(err.contains("tenant id"), "{err}");
        }
    }

    #[test]
    fn reserved_tenant_ids_are_refused() {
        for reserved in [
            "mysimbdp",
            "system",
            "system_auth",
            "systemx",
            "cassandra",
            "select",
            "keyspace",
        ] {
            let err = TenantId::new(reserved).unwrap_err().to_string();
            assert!(
                err.contains("reserved") || err.contains("no `_`"),
                "{reserved}: {err}"
            );
        }
        assert!(TenantId::new("selector").is_ok());
    }

    /// Kafka refuses a topic whose name equals an existing one once every `.` is read as `_`.
    fn kafka_collision_key(topic: &str) -> String {
        topic.replace('.', "_")
    }

    #[test]
    fn no_two_tenants_or_apps_topics_collide_in_kafka() {
        // Every name the rules accept over a small alphabet that includes `-`, `_` and `.`.
        let words: Vec<String> = {
            let alphabet = ['a', 'b', '1', '-', '_', '.'];
            let mut words: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
            for _ in 0..2 {
                let longer: Vec<String> = words
                    .iter()
                    .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                    .collect();
                words.extend(longer);
            }
            words
        };
        let tenants: Vec<TenantId> = words.iter().filter_map(|w| TenantId::new(w).ok()).collect();
        let streams: Vec<StreamName> = words
            .iter()
            .filter_map(|w| StreamName::new(w).ok())
            .collect();
        let apps: Vec<AppName> = words.iter().filter_map(|w| AppName::new(w).ok()).collect();
        assert!(tenants.len() > 10 && streams.len() > 10 && apps.len() > 10);
        let mut seen: std::collections::HashMap<String, String> = Default::default();
        let mut check = |topic: String| {
            if let Some(other) = seen.insert(kafka_collision_key(&topic), topic.clone()) {
                assert_eq!(other, topic, "two distinct topics collide in Kafka");
            }
        };
        for tenant in &tenants {
            for stream in &streams {
                check(tenant.stream_topic(stream));
            }
            for app in &apps {
                let topics = AppTopics::new(tenant, &streams[0], app);
                check(topics.results);
                check(topics.late);
                check(topics.dead_letters);
            }
        }
        // What the old rules allowed: tenant `a_b`'s stream `c` and tenant `a`'s stream `b_c`.
        assert!(TenantId::new("a_b").is_err() && StreamName::new("b_c").is_err());
    }

    #[test]
    fn topics_follow_the_naming_scheme() {
        let t = TenantId::new("acme").unwrap();
        let topics = AppTopics::new(
            &t,
            &StreamName::new("reviews").unwrap(),
            &AppName::new("reviews-daily").unwrap(),
        );
        assert_eq!(topics.input, "acme.reviews");
        assert_eq!(topics.results, "acme.reviews-daily.results");
        assert_eq!(topics.late, "acme.reviews-daily.late");
        assert_eq!(topics.dead_letters, "acme.reviews-daily.dead-letters");
    }
}
