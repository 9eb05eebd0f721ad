//! The steps the end-to-end tests share: generate reviews and their expectation, send them to
//! the tenant's input topic (at once or as a paced stream), and check everything the reviews app
//! wrote.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::access::produce_command;
use crate::checks::{
    check_cassandra, check_dead_letters, check_late_topic, check_results_topic, Repeats,
};
use crate::env::{mysimbdp_bin, run_command, TestEnv};
use crate::kafka::{create_topic, topic_exists};
use crate::reviews::{expected_from_tsv, ExpectedReviews};

/// `mysimbdp gen --rows ROWS --seed SEED EXTRA…` into the scratch folder, and what the reviews
/// app must make of it, computed from the file alone.
pub fn generate_reviews(
    env: &TestEnv,
    rows: u32,
    seed: u64,
    extra: &[&str],
) -> Result<(PathBuf, ExpectedReviews)> {
    let tsv = env.path("reviews.tsv");
    let mut gen = Command::new(mysimbdp_bin()?);
    gen.arg("gen")
        .arg("--out")
        .arg(&tsv)
        .args(["--rows", &rows.to_string(), "--seed", &seed.to_string()])
        .args(extra);
    run_command(env, "gen", &mut gen, Duration::from_secs(300))?.ensure_success("mysimbdp gen")?;
    let expected = expected_from_tsv(&tsv)?;
    Ok((tsv, expected))
}

/// `mysimbdp produce` of the file to `<tenant>.reviews`, as the tenant; the stream is created
/// first (as the operator would, with `produce`'s default of 4 partitions) unless it exists,
/// since a tenant may not create topics.
fn producer(env: &TestEnv, tsv: &PathBuf) -> Result<Command> {
    let topic = env.topic("reviews");
    if !topic_exists(&topic)? {
        create_topic(&topic, 4)?;
    }
    let mut command = produce_command(&env.tenant)?;
    command
        .arg("--file")
        .arg(tsv)
        .args(["--tenant", &env.tenant]);
    Ok(command)
}

/// Sends the whole file to `<tenant>.reviews` as fast as Kafka takes it.
pub fn produce_reviews(env: &TestEnv, tsv: &PathBuf) -> Result<()> {
    let mut command = producer(env, tsv)?;
    run_command(env, "produce", &mut command, Duration::from_secs(600))?
        .ensure_success("mysimbdp produce")
}

/// Sends a part of the input at `PART_RATE` records/s and returns once all of it is in Kafka.
/// Paced like a live stream, not as one burst: a burst into partitions that all sit at their
/// end lets the first partition fetched run far ahead in event time of the others (they hold
/// the watermark back, so nothing is lost, but rows the expectation calls late, by file order,
/// would then count), and the tests want every row's fate to be independent of fetch timing.
pub fn send_part(env: &TestEnv, part: &PathBuf) -> Result<()> {
    let mut command = producer(env, part)?;
    command.args(["--rate", &PART_RATE.to_string()]);
    run_command(env, "produce", &mut command, Duration::from_secs(600))?
        .ensure_success("mysimbdp produce")
}

/// Records per second of [`send_part`].
pub const PART_RATE: u32 = 8_000;

/// Cuts the TSV into `parts` files of consecutive rows (each with the header), in the scratch
/// folder: a test sends them one at a time, so that it knows input is still to come whenever it
/// acts, however fast the machine is.
pub fn split_tsv(env: &TestEnv, tsv: &Path, parts: usize) -> Result<Vec<PathBuf>> {
    let bytes = std::fs::read(tsv).with_context(|| format!("cannot read {}", tsv.display()))?;
    let mut lines = bytes.split_inclusive(|b| *b == b'\n');
    let header = lines.next().context("an empty TSV")?;
    let rows: Vec<&[u8]> = lines.collect();
    let per_part = rows.len().div_ceil(parts.max(1)).max(1);
    let mut files = Vec::new();
    for (i, chunk) in rows.chunks(per_part).enumerate() {
        let path = env.path(&format!("part-{i}.tsv"));
        let mut body = header.to_vec();
        for row in chunk {
            body.extend_from_slice(row);
            if !row.ends_with(b"\n") {
                body.push(b'\n');
            }
        }
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

/// Starts sending the file at `rate` records/s; the caller waits for the child.
pub fn stream_reviews(env: &TestEnv, tsv: &PathBuf, rate: u32) -> Result<Child> {
    producer(env, tsv)?
        .args(["--rate", &rate.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mysimbdp produce")
}

/// Everything the reviews app wrote, against the expectation: the Cassandra rows, the results
/// topic read committed, the late and dead-letter topics. Returns the failed checks, in words.
pub fn check_reviews_outputs(
    env: &TestEnv,
    expected: &ExpectedReviews,
    repeats: Repeats,
) -> Vec<String> {
    let checks = [
        ("Cassandra", check_cassandra(env, expected)),
        ("results topic", check_results_topic(env, expected, repeats)),
        ("late topic", check_late_topic(env, expected, repeats)),
        (
            "dead-letter topic",
            check_dead_letters(env, expected, repeats),
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(what, result)| result.err().map(|e| format!("{what}: {e:#}")))
        .collect()
}
