//! How the platform reaches Kafka and Cassandra: over TLS, as a production cluster wants, and
//! what a start says when it cannot. The local services listen with TLS too
//! (`deploy/local/lib.sh` `ensure_tls`: a CA made there and a certificate for 127.0.0.1; Kafka on
//! its TLS listener, Cassandra on its one port, encryption optional): a platform given `ca_file`
//! and Kafka's TLS listener runs reviews-daily to exact rows while Cassandra lists its connections
//! as encrypted; a platform that trusts another CA, or logs in to Kafka with a wrong password,
//! does not start, and says which service refused it and which setting to check.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    auth_on, create_topic, encrypted_connections, generate_reviews, mysimbdp_bin, produce_reviews,
    read_aggregated_reviews, run_command, secret_file, services_ca_file, AppSpec, Platform,
    PlatformConfig, Services, TestEnv, REVIEWS_DAILY,
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
        let error = error_line(output)?;
        ensure!(
            error.contains(service)
                && error.contains("certificate verify failed")
                && error.contains(setting),
            "the error does not name {service}, the refused certificate and {setting}: {error}"
        );
    }
    Ok(())
}

/// The platform's last word: the `error: …` line its output ends with.
fn error_line(output: &str) -> Result<&str> {
    output
        .lines()
        .find(|l| l.starts_with("error: "))
        .with_context(|| format!("no error line in the platform's output:\n{output}"))
}

/// A wrong Kafka password ends the start at once with the broker's refusal and the settings to
/// check, not with a timeout in whatever used Kafka first.
#[test]
fn a_refused_kafka_login_stops_the_start() -> Result<()> {
    if !auth_on() {
        bail!(
            "this test needs the services with authentication, and MYSIMBDP_AUTH=off says they \
             run without: start them with authentication (the default of deploy/local/up.sh)"
        );
    }
    Services::check()?;
    let env = TestEnv::new()?;
    let wrong = env.path("wrong.password");
    std::fs::write(&wrong, "not the platform's password\n")?;
    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let right = format!(
        "password_file = {:?}",
        secret_file("kafka-platform.password").to_string_lossy()
    );
    let toml = config.to_toml();
    ensure!(toml.contains(&right), "no Kafka password file in:\n{toml}");
    let path = env.path("wrong-login.toml");
    std::fs::write(
        &path,
        toml.replacen(
            &right,
            &format!("password_file = {:?}", wrong.to_string_lossy()),
            1,
        ),
    )?;
    let mut run = std::process::Command::new(mysimbdp_bin()?);
    run.arg("run").arg("--config").arg(&path);
    let output = run_command(&env, "wrong-login", &mut run, Duration::from_secs(120))?;
    ensure!(
        !output.status.success(),
        "the platform started with a wrong password"
    );
    let said = format!("{}{}", output.stdout, output.stderr);
    let error = error_line(&said)?;
    ensure!(
        error.contains("Kafka at")
            && error.contains("Authentication failed")
            && error.contains("`kafka.user`, its password"),
        "the error does not name Kafka, the refused login and the settings: {error}"
    );
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
