//! Helpers shared by the end-to-end tests: where the built artifacts are, a check that real Kafka
//! and Cassandra answer, a handle on a running platform, readers for Kafka topics and Cassandra
//! tables, and an expectation of the reviews app's results computed from the TSV alone (without
//! any platform code), so that the tests compare the platform with an independent computation.

mod access;
mod alerts;
mod cassandra;
mod checks;
mod env;
mod faulty;
mod history;
mod kafka;
mod platform;
mod reviews;
mod scenario;
mod sentiment;
mod workflow;

pub use access::{
    auth_on, batch_command, cassandra_builder, cassandra_builder_for, cassandra_node,
    kafka_bootstrap, kafka_client, kafka_client_as, kafka_client_for, kafka_tls_bootstrap, owner,
    produce_command, remember_tenant, secret_file, services_ca_file, tenant_credentials,
    wait_for_kafka_login, TenantCredentials, PLATFORM_USER,
};
pub use alerts::{
    check_alerts, critical_plants, day_counts, expected_alerts, plant_reviews, DayCounts, DayKey,
    Plant, ALERT_MIN_REVIEWS,
};
pub use cassandra::{
    encrypted_connections, final_windows, read_aggregated_reviews, read_daily_reviews, sum_column,
    Services,
};
pub use checks::{
    check_cassandra, check_dead_letters, check_late_topic, check_results_topic, examples, Repeats,
};
pub use env::{
    mysimbdp_bin, reviews_daily_wasm, run_command, state_dir, target_dir, tenant_app_wasm,
    unique_tenant_id, workspace_dir, CommandOutput, TestEnv,
};
pub use faulty::{Faults, FaultyService};
pub use history::{
    all_time_from_csv, all_time_from_parquet, diff_maps, expected_history, month_of, parquet_rows,
    parse_csv, read_all_time, read_extremes, read_seasonal, seasonal_from_csv, ExpectedHistory,
    Extremes, Totals,
};
pub use kafka::{
    committed_offsets, create_topic, end_offsets_total, produce, produce_to_partition, read_topic,
    send_as, topic_exists, topic_partitions, KafkaRecord,
};
pub use platform::{AppSpec, Platform, PlatformConfig};
pub use reviews::{
    days_from_civil, diff_aggregates, expected_from_tsv, format_iso_date, parse_iso_date,
    parse_utc_timestamp_ms, DailyAggregate, ExpectedReviews, LateRow, MalformedRow, WindowKey,
    LATE_MIN_DAYS_BEHIND, MS_PER_DAY, ON_TIME_MAX_DAYS_BEHIND,
};
pub use scenario::{
    check_reviews_outputs, generate_reviews, produce_reviews, send_part, split_tsv, stream_reviews,
};
pub use sentiment::{
    check_sentiment, diff_sentiment, expected_sentiment, read_review_sentiment, read_reviews,
    score_texts, sentiment_app, sentiment_url, services_toml, shipped_manifest, OwnService,
    SentimentRow, TsvReview, REVIEWS_SENTIMENT, REVIEW_SENTIMENT_TABLE,
};
pub use workflow::{
    airflow_runs_of, airflow_token, airflow_url, check_workflow_services, http_get, mails_to,
    s3_url, smtp_addr, Mail, Relay, Webhook,
};

/// The reference app's name, as its `describe()` declares it.
pub const REVIEWS_DAILY: &str = "reviews-daily";
/// The reference app's Cassandra table, as its `describe()` declares it.
pub const AGGREGATED_REVIEWS: &str = "aggregated_reviews";

/// A tokio runtime for one blocking call into an async client (scylla, rdkafka's admin API):
/// the tests themselves stay synchronous, so they can also drive child processes and HTTP simply.
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build a tokio runtime: {e}"))?;
    Ok(runtime.block_on(future))
}
