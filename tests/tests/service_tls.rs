//! The platform's connections to Kafka and Cassandra over TLS, as a production cluster wants
//! them. The local services listen with TLS too (`deploy/local/lib.sh` `ensure_tls`: a CA made
//! there and a certificate for 127.0.0.1; Kafka on its TLS listener, Cassandra on its one port,
//! encryption optional): a platform given `ca_file` and Kafka's TLS listener runs reviews-daily to
//! exact rows while Cassandra lists its connections as encrypted; a platform that trusts another
//! CA does not start, and says which service's certificate it could not verify.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use mysimbdp_tests::{
    create_topic, encrypted_connections, generate_reviews, produce_reviews,
    read_aggregated_reviews, run_command, services_ca_file, AppSpec, Platform, PlatformConfig,
    Services, TestEnv, REVIEWS_DAILY,
};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[test]
fn the_platform_reaches_kafka_and_cassandra_over_tls_and_refuses_another_ca() -> Result<()> {
    Services::check()?;
    let ca = services_ca_file();
    ensure!(
        ca.is_file(),
        "no {}: the services were started by an older `just up`; restart them (`just down && just up`)",
        ca.display()
    );
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, 3_000, 5, &["--late", "0", "--malformed", "0"])?;
    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let before: usize = encrypted_connections()?.values().sum();

    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.kafka_ca = Some(ca.clone());
    config.cassandra_ca = Some(ca);
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let during = encrypted_connections()?;
    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, DRAIN_TIMEOUT)?;
    ensure!(
        status["records_processed"] == expected.on_time_rows,
        "processed over TLS: {status}"
    );
    let rows = read_aggregated_reviews(&env.tenant)?;
    let exit = platform.stop()?;
    ensure!(exit.success(), "the platform exited with {exit}");

    eprintln!(
        "Cassandra's encrypted connections: {before} before the platform, {during:?} while it ran"
    );
    ensure!(
        during.values().sum::<usize>() > before,
        "Cassandra saw no new encrypted connection while the platform ran \
         ({before} before, {during:?} during)"
    );
    ensure!(
        rows == expected.windows,
        "over TLS the table has {} rows for the {} expected",
        rows.len(),
        expected.windows.len()
    );
    refuses_another_ca(&env)
}

/// A CA that signed neither service's certificate: for both (Cassandra, reached first, refuses),
/// then for Kafka alone. Each start ends with the service, the refusal and the setting to fix.
/// (In the same test as the one above: a start here opens encrypted connections to Cassandra,
/// which the count above must not see.)
fn refuses_another_ca(env: &TestEnv) -> Result<()> {
    let other = env.path("other-ca.pem");
    let mut make = std::process::Command::new("openssl");
    make.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    ])
    .args(["-subj", "/CN=not the services' CA", "-keyout"])
    .arg(env.path("other-ca.key"))
    .arg("-out")
    .arg(&other);
    run_command(env, "openssl", &mut make, Duration::from_secs(60))?
        .ensure_success("openssl req")?;

    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.kafka_ca = Some(other.clone());
    config.cassandra_ca = Some(other);
    let both = start_refused(env, "wrong-ca-both", &config)?;
    config.cassandra_ca = Some(services_ca_file());
    let kafka = start_refused(env, "wrong-ca-kafka", &config)?;

    for (output, service, setting) in [
        (&both, "Cassandra", "`cassandra.ca_file`"),
        (&kafka, "Kafka at", "`kafka.ca_file`"),
    ] {
        let error = output
            .lines()
            .find(|l| l.starts_with("error: "))
            .with_context(|| format!("no error line in the platform's output:\n{output}"))?;
        ensure!(
            error.contains(service)
                && error.contains("certificate verify failed")
                && error.contains(setting),
            "the error does not name {service}, the refused certificate and {setting}: {error}"
        );
    }
    Ok(())
}

/// Starts a platform on `config` that must end on its own, unsuccessfully; its output.
fn start_refused(env: &TestEnv, name: &str, config: &PlatformConfig) -> Result<String> {
    let mut platform = Platform::start(env, name, config)?;
    let exit = platform
        .wait_exit(Duration::from_secs(120))
        .context("the platform kept running with a CA that did not sign the certificate")?;
    ensure!(!exit.success(), "the platform exited with {exit}");
    Ok(std::fs::read_to_string(platform.log_path())?)
}
