//! Tenants walled off from each other on the real local services with authentication on
//! (the default; not with `MYSIMBDP_AUTH=off`): the operator gives tenants A and B their credentials with
//! `mysimbdp tenant add`; B sends its reviews with its own Kafka user and its app runs. With A's
//! Kafka user, writing B's input, reading B's results, late and dead-letter topics, or joining
//! B's consumer groups is refused by the broker; with A's Cassandra role, reading or writing B's
//! keyspace or the platform's `mysimbdp` keyspace is refused by Cassandra; with A's admin token,
//! every request about B's app is answered 403, and `/metrics` shows none of B's series. B's
//! results stay exact, read with B's own credentials. A's own topic answers A, so the refusals
//! are about B, not about A. B reads its app's results topic, but writing any of its app's
//! outputs (results, late, dead letters, alerts) or creating a topic is refused by the broker,
//! while B still writes its input. `tenant rotate` retires A's old passwords and `tenant remove`
//! its new ones, in Kafka and Cassandra.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysimbdp_tests::{
    auth_on, create_topic, parse_iso_date, send_as, AppSpec, CommandOutput, Platform,
    PlatformConfig, Services, TenantCredentials, TestEnv, AGGREGATED_REVIEWS, MS_PER_DAY,
    REVIEWS_DAILY,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

const DAYS: i64 = 20;
/// How long a refusal may take to come back before it counts as missing.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// Errors the client reports outside of `poll` (librdkafka hands some refusals, such as a
/// topic's metadata being denied, to the client's error callback).
#[derive(Default)]
struct Errors(Mutex<Vec<RDKafkaErrorCode>>);

impl ClientContext for Errors {
    fn error(&self, error: rdkafka::error::KafkaError, _reason: &str) {
        let code = error.rdkafka_error_code();
        if let (Some(code), Ok(mut all)) = (code, self.0.lock()) {
            if code != RDKafkaErrorCode::PartitionEOF {
                all.push(code);
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Errors {}

/// What subscribing to `topic` in `group` and reading from its start gives: the first error
/// the broker's answers raise, or `Ok(n)` once a message (n = 1) or the end of a partition
/// (n = 0) was reached.
fn read_first(
    client: &ClientConfig,
    group: &str,
    topic: &str,
) -> Result<Result<usize, RDKafkaErrorCode>> {
    let consumer: BaseConsumer<Errors> = client
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Errors::default())
        .context("cannot create a consumer")?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + ANSWER_WITHIN;
    while Instant::now() < deadline {
        let polled = consumer.poll(Duration::from_millis(500));
        let reported = consumer
            .context()
            .0
            .lock()
            .ok()
            .and_then(|e| e.first().copied());
        if let Some(code) = reported {
            return Ok(Err(code));
        }
        match polled {
            None => {}
            Some(Ok(_)) => return Ok(Ok(1)),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(Ok(0)),
            Some(Err(e)) => match e.rdkafka_error_code() {
                Some(code) => return Ok(Err(code)),
                None => bail!("a client error without a code: {e}"),
            },
        }
    }
    bail!("reading {topic} in group {group}: neither a message, the end of a partition nor an error within {ANSWER_WITHIN:?}")
}

/// The error the broker gives for `topic` in a metadata request (describing it), if any.
fn describe(client: &ClientConfig, topic: &str) -> Result<Option<RDKafkaErrorCode>> {
    let consumer: BaseConsumer = client.clone().create().context("cannot create a client")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), ANSWER_WITHIN)
        .with_context(|| format!("the metadata request for {topic} failed"))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .and_then(|t| t.error())
        .map(RDKafkaErrorCode::from))
}

/// The broker's answer when `client` creates `topic` (one partition).
fn create_as(client: &ClientConfig, topic: &str) -> Result<Result<(), RDKafkaErrorCode>> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        client.create().context("cannot create an admin client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(admin.create_topics(
        [&NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
        &AdminOptions::new().request_timeout(Some(ANSWER_WITHIN)),
    ))?;
    Ok(results
        .into_iter()
        .next()
        .context("no answer for the topic")?
        .map(|_| ())
        .map_err(|(_, code)| code))
}

/// Whether the broker refuses `client`'s login (SASL authentication fails) rather than
/// answering a metadata request.
fn kafka_login_refused(client: &ClientConfig) -> Result<bool> {
    let consumer: BaseConsumer<Errors> = client
        .clone()
        .create_with_context(Errors::default())
        .context("cannot create a client")?;
    let answered = consumer.fetch_metadata(None, Duration::from_secs(20));
    // librdkafka hands the authentication failure to the error callback on the next polls.
    let until = Instant::now() + Duration::from_secs(20);
    while answered.is_err()
        && Instant::now() < until
        && consumer
            .context()
            .0
            .lock()
            .map(|e| e.is_empty())
            .unwrap_or(false)
    {
        let _ = consumer.poll(Duration::from_millis(200));
    }
    let errors = consumer
        .context()
        .0
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    match answered {
        Ok(_) => Ok(false),
        Err(_)
            if errors.iter().any(|e| {
                matches!(
                    e,
                    RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed
                )
            }) =>
        {
            Ok(true)
        }
        Err(e) => bail!("no answer and no authentication failure: {e} ({errors:?})"),
    }
}

/// Whether Cassandra refuses the role's login.
fn cassandra_login_refused(
    runtime: &tokio::runtime::Runtime,
    credentials: &TenantCredentials,
) -> Result<bool> {
    let builder = credentials.cassandra_builder()?;
    match runtime.block_on(builder.build()) {
        Ok(_) => Ok(false),
        Err(e)
            if ["authentic", "incorrect"]
                .iter()
                .any(|w| e.to_string().to_lowercase().contains(w)) =>
        {
            Ok(true)
        }
        Err(e) => bail!("Cassandra did not answer the login: {e}"),
    }
}

/// Whether Cassandra refused the statement as unauthorized.
fn unauthorized(
    result: &Result<scylla::response::query_result::QueryResult, ExecutionError>,
) -> bool {
    matches!(
        result,
        Err(ExecutionError::LastAttemptError(
            RequestAttemptError::DbError(DbError::Unauthorized, _)
        ))
    )
}

fn credentials(output: &CommandOutput) -> Result<TenantCredentials> {
    output.ensure_success("mysimbdp tenant add")?;
    TenantCredentials::parse(&output.stdout)
}

#[test]
fn tenants_are_walled_off_in_kafka_cassandra_and_the_admin_api() -> Result<()> {
    if !auth_on() {
        bail!(
            "the isolation test needs the services with authentication, and MYSIMBDP_AUTH=off \
             says they run without: start them with authentication (the default of \
             deploy/local/up.sh) and run it without MYSIMBDP_AUTH=off"
        );
    }
    Services::check()?;
    let env = TestEnv::new()?;
    let b = env.tenant.clone();
    let a = format!("{b}a");
    create_topic(&env.topic("reviews"), 1)?;
    let config = PlatformConfig::new(&b, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let add = |tenant: &str| {
        platform.command_as(
            &env,
            &format!("tenant-add-{tenant}"),
            platform.token(),
            &["tenant", "add", "--tenant", tenant],
        )
    };
    let cred_a = credentials(&add(&a)?)?;
    let cred_b = credentials(&add(&b)?)?;
    let kafka_a = cred_a.kafka_client()?;
    let kafka_b = cred_b.kafka_client()?;

    // B sends twenty days of one product with its own Kafka user.
    let reviews: Vec<(String, String)> = (1..=DAYS)
        .map(|day| {
            (
                "P1".to_owned(),
                format!(
                    r#"{{"review_id":"R{day}","product_id":"P1","review_date":"2015-03-{day:02}","star_rating":4,"helpful_votes":1,"total_votes":2}}"#
                ),
            )
        })
        .collect();
    let sent = send_as(&kafka_b, &env.topic("reviews"), &reviews)?;
    if sent.iter().any(Option::is_some) || sent.len() != reviews.len() {
        bail!("B could not send its own reviews: {sent:?}");
    }

    let mut failures = Vec::new();
    // Kafka, as A: its own topic works; every one of B's is refused.
    // The operator creates A's stream through the admin API (a tenant may not create topics).
    platform
        .command_as(
            &env,
            "tenant-stream-a",
            platform.token(),
            &[
                "tenant",
                "stream",
                "--tenant",
                &a,
                "--stream",
                "reviews",
                "--partitions",
                "1",
            ],
        )?
        .ensure_success("mysimbdp tenant stream")?;
    let own = send_as(&kafka_a, &format!("{a}.reviews"), &reviews[..1])?;
    if own != [None] {
        failures.push(format!("A could not write its own topic: {own:?}"));
    }
    let forged = vec![(
        "P1".to_owned(),
        r#"{"review_id":"X","product_id":"P1","review_date":"2015-03-01","star_rating":1,"helpful_votes":0,"total_votes":0}"#.to_owned(),
    )];
    let wrote = send_as(&kafka_a, &env.topic("reviews"), &forged)?;
    if wrote != [Some(RDKafkaErrorCode::TopicAuthorizationFailed)] {
        failures.push(format!(
            "A writing B's input: {wrote:?}, expected TopicAuthorizationFailed"
        ));
    }
    let app_topics =
        ["results", "late", "dead-letters"].map(|t| format!("{b}.{REVIEWS_DAILY}.{t}"));
    for topic in app_topics.iter().chain([&env.topic("reviews")]) {
        let described = describe(&kafka_a, topic)?;
        if described != Some(RDKafkaErrorCode::TopicAuthorizationFailed) {
            failures.push(format!(
                "A describing {topic}: {described:?}, expected TopicAuthorizationFailed"
            ));
        }
        let read = read_first(&kafka_a, &format!("{a}.reader"), topic)?;
        if read != Err(RDKafkaErrorCode::TopicAuthorizationFailed) {
            failures.push(format!(
                "A reading {topic}: {read:?}, expected TopicAuthorizationFailed"
            ));
        }
    }
    for group in [
        format!("mysimbdp.{b}.{REVIEWS_DAILY}"),
        format!("{b}.reader"),
    ] {
        let joined = read_first(&kafka_a, &group, &format!("{a}.reviews"))?;
        if joined != Err(RDKafkaErrorCode::GroupAuthorizationFailed) {
            failures.push(format!(
                "A joining group {group}: {joined:?}, expected GroupAuthorizationFailed"
            ));
        }
    }

    // Cassandra, as A: B's keyspace and the platform's are refused, reading and writing.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let session = cred_a
            .cassandra_builder()?
            .build()
            .await
            .context("A's role cannot log in")?;
        for cql in [
            format!("SELECT * FROM {b}.{AGGREGATED_REVIEWS}"),
            format!(
                "INSERT INTO {b}.{AGGREGATED_REVIEWS} (product_id, window_start) VALUES ('P1', 0)"
            ),
            format!("DELETE FROM {b}.{AGGREGATED_REVIEWS} WHERE product_id = 'P1'"),
            "SELECT * FROM mysimbdp.tenant_tokens".to_owned(),
            format!("INSERT INTO mysimbdp.tenant_tokens (tenant, digest) VALUES ('{b}', 0x00)"),
            format!("DROP KEYSPACE {b}"),
            format!("CREATE TABLE {a}.x (k text PRIMARY KEY)"),
        ] {
            let result = session.query_unpaged(cql.as_str(), ()).await;
            if !unauthorized(&result) {
                failures.push(format!(
                    "A's role ran `{cql}`: {result:?}, expected Unauthorized"
                ));
            }
        }
        anyhow::Ok(())
    })?;

    // The admin API, as A: every request about B's app is refused and changes nothing.
    let app_b = format!("/apps/{b}/{REVIEWS_DAILY}");
    for (method, path) in [
        ("GET", app_b.clone()),
        ("POST", format!("{app_b}/drain")),
        ("POST", format!("{app_b}/pause")),
        ("POST", format!("{app_b}/remove")),
        ("POST", format!("/apps/{b}/deploy")),
        ("POST", format!("/tenants/{b}/token")),
        ("POST", format!("/tenants/{b}/streams/other")),
        ("POST", format!("/tenants/{a}/streams/other")),
    ] {
        let (code, body) = platform.admin_request_as(&cred_a.token, method, &path)?;
        if code != 403 {
            failures.push(format!(
                "A: {method} {path} answered {code} ({body}), expected 403"
            ));
        }
    }

    // /metrics: B's series only with a token that sees B; nothing of any tenant without one.
    let b_series = format!("tenant=\"{b}\"");
    let (_, operator_sees) = platform.admin_request("GET", "/metrics")?;
    let (code, a_sees) = platform.admin_request_as(&cred_a.token, "GET", "/metrics")?;
    let mut anonymous = ureq::get(&format!("{}/metrics", platform.admin_url())).call()?;
    let anonymous = anonymous.body_mut().read_to_string()?;
    if !operator_sees.contains(&b_series) {
        failures.push("the operator's /metrics lacks B's series".to_owned());
    }
    if code != 200 || a_sees.contains(&b_series) {
        failures.push(format!("A's /metrics ({code}) shows B's series"));
    }
    if anonymous.contains("tenant=") {
        failures.push("/metrics without a token shows tenants' series".to_owned());
    }

    // B's results are exact, read with B's own credentials.
    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(300))?;
    let counts = runtime.block_on(async {
        let session = cred_b
            .cassandra_builder()?
            .build()
            .await
            .context("B's role cannot log in")?;
        let rows = session
            .query_unpaged(
                format!("SELECT product_id, window_start, number_of_reviews FROM {b}.{AGGREGATED_REVIEWS}"),
                (),
            )
            .await
            .context("B cannot read its own results")?
            .into_rows_result()?
            .rows::<(String, scylla::value::CqlTimestamp, Option<i64>)>()?
            .collect::<Result<Vec<_>, _>>()?;
        anyhow::Ok(rows)
    })?;
    let first = parse_iso_date("2015-03-01").context("a date")?;
    let exact = counts.len() == DAYS as usize
        && (0..DAYS).all(|d| {
            counts.iter().any(|(p, start, n)| {
                p == "P1" && start.0 == (first + d) * MS_PER_DAY && *n == Some(1)
            })
        });
    if !exact {
        failures.push(format!("B's rows are not one review per day: {counts:?}"));
    }
    let results = read_first(&kafka_b, &format!("{b}.reader"), &app_topics[0])?;
    let results = results.map(|_| 1);
    if results != Ok(1) {
        failures.push(format!("B reading its own results topic: {results:?}"));
    }

    // B's app's outputs are the platform's to write: B reads them, but writing (or creating)
    // one is refused by the broker, while B still writes its input; nor may B create a topic
    // an app of its could use later.
    for topic in &app_topics {
        let wrote = send_as(&kafka_b, topic, &forged)?;
        if wrote != [Some(RDKafkaErrorCode::TopicAuthorizationFailed)] {
            failures.push(format!(
                "B writing its own app's {topic}: {wrote:?}, expected TopicAuthorizationFailed"
            ));
        }
    }
    let input = send_as(&kafka_b, &env.topic("reviews"), &reviews[..1])?;
    if input != [None] {
        failures.push(format!(
            "B writing its own input after the walls: {input:?}"
        ));
    }
    for topic in [
        format!("{b}.{REVIEWS_DAILY}.alerts"),
        format!("{b}.later.results"),
        format!("{b}.newstream"),
    ] {
        let created = create_as(&kafka_b, &topic)?;
        if !matches!(
            created,
            Err(RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed)
        ) {
            failures.push(format!(
                "B creating {topic}: {created:?}, expected an authorization failure"
            ));
        }
    }

    // Rotating A's secrets retires the old ones at once; removing A retires the new ones too.
    let rotate = platform.command_as(
        &env,
        "tenant-rotate-a",
        platform.token(),
        &["tenant", "rotate", "--tenant", &a],
    )?;
    let rotated = credentials(&rotate)?;
    for (what, cred, refused) in [("A's old", &cred_a, true), ("A's rotated", &rotated, false)] {
        let (kafka, cassandra) = (
            kafka_login_refused(&cred.kafka_client()?)?,
            cassandra_login_refused(&runtime, cred)?,
        );
        if (kafka, cassandra) != (refused, refused) {
            failures.push(format!(
                "{what} credentials: Kafka login refused {kafka}, Cassandra login refused {cassandra}; expected {refused}"
            ));
        }
    }
    platform
        .command_as(
            &env,
            "tenant-remove-a",
            platform.token(),
            &["tenant", "remove", "--tenant", &a],
        )?
        .ensure_success("mysimbdp tenant remove")?;
    let (kafka, cassandra) = (
        kafka_login_refused(&rotated.kafka_client()?)?,
        cassandra_login_refused(&runtime, &rotated)?,
    );
    if !(kafka && cassandra) {
        failures.push(format!(
            "removed A: Kafka login refused {kafka}, Cassandra login refused {cassandra}"
        ));
    }
    platform.stop()?;
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
