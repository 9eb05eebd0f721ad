//! A tenant's stream written by producers the platform does not control: Kafka's own Java
//! console producer sends consecutive parts of the reviews, each compressed with another of
//! Kafka's codecs (gzip, snappy, lz4, zstd), and reviews-daily must read all of them to the
//! exact rows computed from the TSV alone. zstd, Kafka's usual choice today, was the one the
//! platform's Kafka client was built without: its batches were never read, the app said it was
//! running, and only the log said "Local: Not implemented".

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_cassandra, create_topic, generate_reviews, run_command, split_tsv, workspace_dir,
    AppSpec, Platform, PlatformConfig, Services, TestEnv, REVIEWS_DAILY,
};
use serde_json::{Map, Value};

const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];
const ROWS: u32 = 4_000;
const SEED: u64 = 20_261_201;
const PARTITIONS: i32 = 4;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);
/// The columns the TSV holds as integers, sent as JSON numbers as `mysimbdp produce` does.
const INTEGER_COLUMNS: [&str; 5] = [
    "customer_id",
    "product_parent",
    "star_rating",
    "helpful_votes",
    "total_votes",
];

#[test]
fn a_stream_in_every_kafka_codec_is_read_exactly() -> Result<()> {
    let services = Services::check()?;
    eprintln!("services: {services:?}");
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, ROWS, SEED, &["--late", "0", "--malformed", "0"])?;
    ensure!(
        expected.valid_rows == ROWS as usize,
        "the generated TSV holds {} valid rows, not {ROWS}",
        expected.valid_rows
    );
    let topic = env.topic("reviews");
    create_topic(&topic, PARTITIONS)?;
    let parts = split_tsv(&env, &tsv, CODECS.len())?;
    for (part, codec) in parts.iter().zip(CODECS) {
        let lines = keyed_json_lines(part)?;
        send_with_java_producer(&env, &topic, codec, &lines)
            .with_context(|| format!("sending {} with {codec}", part.display()))?;
    }

    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, DRAIN_TIMEOUT)?;
    eprintln!("drained: {status}");

    let mut failures = Vec::new();
    if let Err(error) = check_cassandra(&env, &expected) {
        failures.push(format!("{error:#}"));
    }
    let count = |name: &str| status.get(name).and_then(Value::as_u64);
    if count("records_processed") != Some(expected.on_time_rows as u64) {
        failures.push(format!(
            "the status counts {:?} records processed, {} were sent",
            count("records_processed"),
            expected.on_time_rows
        ));
    }
    if count("dead_letters") != Some(0) {
        failures.push(format!(
            "the status counts {:?} dead letters, none expected",
            count("dead_letters")
        ));
    }
    match status.get("unreadable").and_then(Value::as_array) {
        Some(unreadable) if unreadable.is_empty() => {}
        _ => failures.push(format!(
            "the status should list no unreadable partition: {:?}",
            status.get("unreadable")
        )),
    }
    platform.stop()?;
    if !failures.is_empty() {
        bail!(
            "{} check(s) failed (platform log: {}):\n{}",
            failures.len(),
            platform.log_path().display(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// The TSV's rows as `product_id<TAB>json` lines, as the console producer reads keyed input.
fn keyed_json_lines(tsv: &std::path::Path) -> Result<String> {
    let text =
        std::fs::read_to_string(tsv).with_context(|| format!("reading {}", tsv.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("an empty TSV")?.split('\t').collect();
    let mut out = String::new();
    for line in lines {
        let mut object = Map::new();
        for (name, text) in header.iter().zip(line.split('\t')) {
            let value = match text.parse::<i64>() {
                Ok(n) if INTEGER_COLUMNS.contains(name) => Value::from(n),
                _ => Value::from(text),
            };
            object.insert((*name).to_owned(), value);
        }
        let key = object
            .get("product_id")
            .and_then(Value::as_str)
            .context("a row without product_id")?
            .to_owned();
        out.push_str(&key);
        out.push('\t');
        out.push_str(&Value::Object(object).to_string());
        out.push('\n');
    }
    Ok(out)
}

/// Kafka's `ConsoleProducer`, from the jars `just up` fetched, as the platform's user, sends
/// `lines` compressed with `codec`.
fn send_with_java_producer(env: &TestEnv, topic: &str, codec: &str, lines: &str) -> Result<()> {
    let input = env.path(&format!("{codec}.txt"));
    std::fs::File::create(&input)?.write_all(lines.as_bytes())?;
    let script = r#"source "$1/deploy/local/lib.sh" &&
        kafka_tool org.apache.kafka.tools.ConsoleProducer \
          --bootstrap-server "127.0.0.1:$KAFKA_PORT" --topic "$2" --compression-codec "$3" \
          --producer.config "$(kafka_tools_config)" \
          --property parse.key=true --property "key.separator=	" <"$4""#;
    let mut command = Command::new("bash");
    command
        .args(["-c", script, "send"])
        .arg(workspace_dir())
        .args([topic, codec])
        .arg(&input)
        .stdin(Stdio::null());
    run_command(
        env,
        &format!("console producer ({codec})"),
        &mut command,
        Duration::from_secs(120),
    )?
    .ensure_success(&format!("Kafka's console producer with {codec}"))
}
