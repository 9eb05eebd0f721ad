//! The enrich stage: between decoding and the app, the platform sends a batch's declared fields
//! to an external service the operator named, and the fields it answers become input columns of
//! the app. The sandbox gives apps no network; the platform makes the calls, asynchronously on
//! its runtime while the app's worker goes on, bounded in flight, with a timeout, retries with
//! backoff and a circuit breaker; while the service is slow or cannot be reached the input
//! waits in Kafka.
//!
//! `manifest` is what the tenant declares, `service` what the operator configures and how a
//! service is called, `stage` the stage itself, `metrics` what it counts.

pub mod manifest;
pub mod metrics;
pub mod service;
pub mod stage;

pub use manifest::{EnrichManifest, OnFailure, Plan};
pub use metrics::{BreakerState, EnrichMetrics, EnrichStatus};
pub use service::{ServiceClient, ServiceConfig, Services};
pub use stage::{Enricher, InFlight};

/// Why an app's enrich declaration cannot run.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("cannot read the enrich manifest {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("enrich manifest {path}: {message}")]
    Parse { path: String, message: String },
    #[error("enrich manifest of `{app}`: {problem}")]
    Invalid { app: String, problem: String },
    #[error("the app `{app}` calls the service `{service}`, which the operator does not define ([services.{service}] in the platform's config)")]
    UnknownService { app: String, service: String },
    #[error("tenant `{tenant}` may not call the service `{service}` (not in [services.{service}] tenants)")]
    NotAllowed { tenant: String, service: String },
    #[error("the URL of the service `{service}` does not parse: {reason}")]
    Url { service: String, reason: String },
}
