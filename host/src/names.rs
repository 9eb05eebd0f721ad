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

fn is_cql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 48
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// A tenant id; it is also the tenant's Cassandra keyspace, so it must be a CQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn new(value: &str) -> Result<Self, NameError> {
        if is_cql_identifier(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError {
                what: "tenant id",
                value: value.into(),
                rule: CQL_RULE,
            })
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

/// Letters, digits, `-` and `_`: safe inside a Kafka topic name and a URL path.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

const PLAIN_RULE: &str = "use 1 to 64 characters among lowercase letters, digits, `-` and `_`";

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
        assert!(TenantId::new("acme_2").is_ok());
        for bad in ["", "2acme", "Acme", "ac-me", "a.b", &"a".repeat(49)] {
            let err = TenantId::new(bad).unwrap_err().to_string();
            assert!(err.contains("tenant id"), "{err}");
        }
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
