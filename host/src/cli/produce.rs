//! `mysimbdp produce`: the tenant's data source. Sends a reviews TSV to the tenant's input topic,
//! one JSON message per row keyed by product_id: as fast as possible, at a fixed rate, or replayed
//! in review_date order at a chosen speed, which is how a historical file becomes a stream.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use flate2::bufread::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::tsv;
use crate::access::{KafkaAccess, PasswordSource, SaslMechanism};
use crate::names::{StreamName, TenantId};
use crate::source::kafka::{ensure_topics, TopicState};

/// Which file goes to which topic, and how fast.
#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// Reviews TSV with its header line, plain or gzip-compressed (e.g. `.tsv.gz`).
    #[arg(long)]
    pub file: PathBuf,
    /// Tenant whose input topic `<tenant>.<stream>` receives the rows.
    #[arg(long)]
    pub tenant: String,
    /// Stream name, the second half of the topic name.
    #[arg(long, default_value = "reviews")]
    pub stream: String,
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "MYSIMBDP_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// The tenant's Kafka user, as `mysimbdp tenant add` issued it; its password comes from
    /// MYSIMBDP_KAFKA_PASSWORD or --password-file, never from the command line.
    #[arg(long, env = "MYSIMBDP_KAFKA_USER")]
    pub user: Option<String>,
    /// How the user logs in.
    #[arg(
        long,
        env = "MYSIMBDP_KAFKA_SASL_MECHANISM",
        default_value = "SCRAM-SHA-256"
    )]
    pub sasl_mechanism: SaslMechanism,
    /// A file holding the user's password (instead of MYSIMBDP_KAFKA_PASSWORD).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// The CA certificate (PEM) of the brokers: TLS on.
    #[arg(long, env = "MYSIMBDP_KAFKA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Partitions of the topic if this command creates it; an existing topic is left as it is.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Records per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0.0, value_parser = parse_non_negative)]
    #[arg(conflicts_with = "replay_speed")]
    pub rate: f64,
    /// Replay in review_date order, this many seconds of event time per wall-clock second
    /// (86400 = one day per second). Reads the whole file first.
    #[arg(long, value_parser = parse_positive)]
    pub replay_speed: Option<f64>,
    /// Send only the first N rows of the file.
    #[arg(long)]
    pub limit: Option<u64>,
}

fn parse_non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("`{text}` is not a number ≥ 0")),
    }
}

fn parse_positive(text: &str) -> Result<f64, String> {
    match parse_non_negative(text) {
        Ok(value) if value > 0.0 => Ok(value),
        _ => Err(format!("`{text}` is not a number > 0")),
    }
}

/// How long `flush` may wait for the last deliveries before they count as failed.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long reading the cluster's topics may take before the broker counts as unreachable.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
const SECONDS_PER_DAY: f64 = 86_400.0;

/// Sends the file and prints a summary; fails if any message was not delivered.
pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let tenant = TenantId::new(&args.tenant)?;
    let topic = tenant.stream_topic(&StreamName::new(&args.stream)?);
    let bar = progress_bar();
    let input = open_input(&args.file, &bar)?;
    let kafka = kafka_access(&args)?;
    let topic_note = ensure_topic(&kafka, &topic, args.partitions)?;
    let producer = create_producer(&kafka)?;
    let mut sender = Sender::new(&producer, &topic, bar);
    let started = sender.send_all(input, &args)?;
    sender.bar.finish_and_clear();
    flush(&producer);
    let report = Report {
        stats: &sender.stats,
        deliveries: producer.context(),
        elapsed: started.elapsed(),
    };
    eprintln!("{}", report.render(&format!("{topic} ({topic_note})")));
    report.check()
}

/// Waits for the last deliveries; what is still queued after [`FLUSH_TIMEOUT`] counts as failed.
fn flush(producer: &BaseProducer<Deliveries>) {
    if producer.flush(FLUSH_TIMEOUT).is_err() {
        let stuck = producer.in_flight_count().max(0) as u64;
        let error = format!("not delivered within {FLUSH_TIMEOUT:?} of flushing");
        producer.context().fail(stuck, error);
    }
}

/// A progress bar on stderr, hidden unless stderr is a terminal.
fn progress_bar() -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(style(
        "{elapsed_precise} [{bar:24}] {bytes}/{total_bytes} read, {msg}",
    ));
    bar
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Opens the file, decompressing it when it starts with the gzip magic; the bar follows the
/// bytes read from disk.
fn open_input(path: &Path, bar: &ProgressBar) -> anyhow::Result<Box<dyn BufRead>> {
    let context = || format!("cannot read {}", path.display());
    let file = File::open(path).with_context(context)?;
    bar.set_length(file.metadata().with_context(context)?.len());
    let mut reader = BufReader::with_capacity(1 << 20, bar.wrap_read(file));
    if reader
        .fill_buf()
        .with_context(context)?
        .starts_with(&[0x1f, 0x8b])
    {
        let decoder = MultiGzDecoder::new(reader);
        Ok(Box::new(BufReader::with_capacity(1 << 20, decoder)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Kafka as the arguments and the environment say: with a login when a user is given.
fn kafka_access(args: &ProduceArgs) -> anyhow::Result<KafkaAccess> {
    let access = KafkaAccess::plain(&args.bootstrap).with_ca_file(args.ca_file.clone());
    let Some(user) = &args.user else {
        return Ok(access);
    };
    let source = PasswordSource {
        password_env: args
            .password_file
            .is_none()
            .then(|| "MYSIMBDP_KAFKA_PASSWORD".to_owned()),
        password_file: args.password_file.clone(),
    };
    let password = source
        .read()
        .map_err(|problem| anyhow::anyhow!("the password of Kafka user {user}: {problem}"))?;
    Ok(access.with_login(args.sasl_mechanism, user, password))
}

/// Creates the topic with `partitions` partitions unless it exists (then it is left as it is);
/// returns a note for the summary saying which. An existing topic is found in the cluster's
/// metadata first: a tenant may write its stream without the right to create topics.
fn ensure_topic(kafka: &KafkaAccess, topic: &str, partitions: i32) -> anyhow::Result<String> {
    let bootstrap = &kafka.bootstrap;
    let client: BaseConsumer = kafka
        .client_config()
        .create()
        .with_context(|| format!("cannot create a Kafka client for {bootstrap}"))?;
    // All topics' metadata: asking for the one topic could make the broker auto-create it.
    let metadata = client
        .fetch_metadata(None, METADATA_TIMEOUT)
        .with_context(|| format!("cannot reach Kafka at {bootstrap}"))?;
    if let Some(existing) = metadata.topics().iter().find(|t| t.name() == topic) {
        return Ok(format!(
            "existing topic, {} partitions",
            existing.partitions().len()
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime for the Kafka admin client")?;
    let states = runtime
        .block_on(ensure_topics(kafka, &[topic], partitions))
        .map_err(|e| {
            if e.not_authorized() {
                anyhow::anyhow!(
                    "topic {topic} does not exist and this Kafka user may not create topics: the \
                     operator creates a tenant's stream (`mysimbdp tenant stream --tenant … \
                     --stream …`), or an app reading it creates it when it starts"
                )
            } else {
                e.into()
            }
        })?;
    Ok(match states.first() {
        Some(TopicState::Created) => format!("created with {partitions} partitions"),
        _ => "existing topic".to_owned(),
    })
}

/// An idempotent producer: retries inside the client never duplicate or reorder a partition.
fn create_producer(kafka: &KafkaAccess) -> anyhow::Result<BaseProducer<Deliveries>> {
    let bootstrap = &kafka.bootstrap;
    kafka
        .client_config()
        .set("client.id", "mysimbdp-produce")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(Deliveries::default())
        .with_context(|| format!("cannot create a Kafka producer for {bootstrap}"))
}

/// Counts delivery outcomes as the client reports them, keeping the first error's text.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    fn fail(&self, count: u64, error: String) {
        if count == 0 {
            return;
        }
        self.failed.fetch_add(count, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn first_error(&self) -> String {
        self.first_error
            .lock()
            .ok()
            .and_then(|first| first.clone())
            .unwrap_or_default()
    }
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error");
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.fail(1, error.to_string());
        }
    }
}

/// What was sent.
#[derive(Debug, Default)]
struct Stats {
    rows: u64,
    bytes: u64,
    malformed: u64,
}

/// Sends rows one by one, reusing one buffer for the JSON.
struct Sender<'a> {
    producer: &'a BaseProducer<Deliveries>,
    topic: &'a str,
    json: Vec<u8>,
    stats: Stats,
    bar: ProgressBar,
}

impl<'a> Sender<'a> {
    fn new(producer: &'a BaseProducer<Deliveries>, topic: &'a str, bar: ProgressBar) -> Self {
        Self {
            producer,
            topic,
            json: Vec::with_capacity(64 * 1024),
            stats: Stats::default(),
            bar,
        }
    }

    /// Sends the rows as `args` says; returns when sending started (after loading, for a replay).
    fn send_all(&mut self, input: Box<dyn BufRead>, args: &ProduceArgs) -> anyhow::Result<Instant> {
        match args.replay_speed {
            Some(speed) => {
                let rows = load_sorted(input, &args.file, args.limit)?;
                let started = Instant::now();
                self.replay(&rows, speed, &args.file, started);
                Ok(started)
            }
            None => {
                let started = Instant::now();
                self.stream(input, &args.file, (args.rate, args.limit), started)?;
                Ok(started)
            }
        }
    }

    /// Sends up to `limit` rows in file order, `rate` per second (0: unpaced).
    fn stream(
        &mut self,
        mut input: Box<dyn BufRead>,
        path: &Path,
        (rate, limit): (f64, Option<u64>),
        started: Instant,
    ) -> anyhow::Result<()> {
        let mut lines = Lines::new(path);
        // Refresh the row count about ten times a second when paced.
        let refresh_every = if rate > 0.0 {
            (rate / 10.0).max(1.0) as u64
        } else {
            4096
        };
        while limit.is_none_or(|limit| self.stats.rows < limit) {
            let Some((number, line)) = lines.next(&mut *input)? else {
                break;
            };
            if rate > 0.0 {
                self.wait_until(started, self.stats.rows as f64 / rate);
            }
            self.send(line, number, path);
            if self.stats.rows.is_multiple_of(refresh_every) {
                self.bar
                    .set_message(format!("{} rows sent", self.stats.rows));
            }
        }
        Ok(())
    }

    /// Sends rows sorted by date, one day of them spread evenly over `86400 / speed` seconds.
    fn replay(&mut self, rows: &LoadedRows, speed: f64, path: &Path, started: Instant) {
        self.bar.set_length(rows.index.len() as u64);
        self.bar.set_position(0);
        self.bar.set_style(style(
            "{elapsed_precise} [{bar:24}] {pos}/{len} rows, {msg} (eta {eta})",
        ));
        let first_day = rows.index.first().map_or(0, |row| row.day);
        for day in rows.index.chunk_by(|a, b| a.day == b.day) {
            let dated = day[0].day != UNDATED;
            if dated {
                self.bar
                    .set_message(format!("at {}", tsv::format_date(day[0].day)));
            } else {
                self.bar.set_message("rows without a valid review_date");
            }
            for (k, row) in day.iter().enumerate() {
                if dated {
                    let event_days = (day[0].day - first_day) as f64 + k as f64 / day.len() as f64;
                    self.wait_until(started, event_days * SECONDS_PER_DAY / speed);
                }
                self.send(rows.line(row), row.line_number, path);
            }
            self.bar.set_position(self.stats.rows);
        }
    }

    /// Serves delivery reports until `seconds` after `started`; returns at once when that is
    /// less than a millisecond away, letting the pace catch up in small bursts.
    fn wait_until(&self, started: Instant, seconds: f64) {
        let due = started + Duration::from_secs_f64(seconds);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            self.producer.poll(due - now);
        }
    }

    /// Sends one line: as JSON when it has 15 columns, else its raw bytes. A message the client
    /// refuses (e.g. too large) counts as a delivery failure, naming its line.
    fn send(&mut self, line: &[u8], line_number: u64, path: &Path) {
        let payload: &[u8] = if tsv::write_message(line, &mut self.json) {
            &self.json
        } else {
            self.stats.malformed += 1;
            line
        };
        let mut record = BaseRecord::to(self.topic)
            .key(tsv::key_of(line))
            .payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => {
                    let context = format!("{} line {line_number}", path.display());
                    self.producer
                        .context()
                        .fail(1, format!("{context}: {error}"));
                    break;
                }
            }
        }
        self.producer.poll(Duration::ZERO);
        self.stats.rows += 1;
        self.stats.bytes += payload.len() as u64;
    }
}

/// Reads data lines into a reused buffer, skipping the header and empty lines.
struct Lines<'p> {
    path: &'p Path,
    buffer: Vec<u8>,
    /// The 1-based number of the line last read.
    number: u64,
}

impl<'p> Lines<'p> {
    fn new(path: &'p Path) -> Self {
        Self {
            path,
            buffer: Vec::with_capacity(64 * 1024),
            number: 0,
        }
    }

    /// The next data line's 1-based number and text without its line ending, or `None` at the
    /// end of the file.
    fn next(&mut self, input: &mut dyn BufRead) -> anyhow::Result<Option<(u64, &[u8])>> {
        loop {
            self.buffer.clear();
            let read = read_line(input, &mut self.buffer, self.path, self.number + 1)?;
            if read == 0 {
                return Ok(None);
            }
            self.number += 1;
            let line = tsv::trim_line_end(&self.buffer);
            if !is_skipped(line, self.number) {
                // Re-borrow to return: the buffer is not touched again until the next call.
                let length = line.len();
                return Ok(Some((self.number, &self.buffer[..length])));
            }
        }
    }
}

/// Whether line `number` carries no row: it is empty, or it is the header on line 1.
fn is_skipped(line: &[u8], number: u64) -> bool {
    line.is_empty() || (number == 1 && tsv::is_header(line))
}

/// Appends one line (with its ending) to `buffer`, returning the bytes read.
fn read_line(
    input: &mut dyn BufRead,
    buffer: &mut Vec<u8>,
    path: &Path,
    number: u64,
) -> anyhow::Result<usize> {
    input
        .read_until(b'\n', buffer)
        .with_context(|| format!("cannot read {} at line {number}", path.display()))
}

/// Day of a row whose review_date does not parse: after every real day.
const UNDATED: i64 = i64::MAX;

/// Where one row lies in the loaded text.
struct RowIndex {
    day: i64,
    start: usize,
    end: usize,
    line_number: u64,
}

/// The whole file in one buffer, with its rows sorted by date (stable; undated rows last).
struct LoadedRows {
    text: Vec<u8>,
    index: Vec<RowIndex>,
}

impl LoadedRows {
    fn line(&self, row: &RowIndex) -> &[u8] {
        &self.text[row.start..row.end]
    }
}

/// Reads up to `limit` data rows and sorts them by review_date.
fn load_sorted(
    mut input: Box<dyn BufRead>,
    path: &Path,
    limit: Option<u64>,
) -> anyhow::Result<LoadedRows> {
    let mut text = Vec::new();
    let mut index = Vec::new();
    let mut number = 0;
    while limit.is_none_or(|limit| (index.len() as u64) < limit) {
        let start = text.len();
        if read_line(&mut input, &mut text, path, number + 1)? == 0 {
            break;
        }
        number += 1;
        let end = start + tsv::trim_line_end(&text[start..]).len();
        let line = &text[start..end];
        if is_skipped(line, number) {
            text.truncate(start);
            continue;
        }
        index.push(RowIndex {
            day: review_day(line),
            start,
            end,
            line_number: number,
        });
    }
    index.sort_by_key(|row| row.day);
    Ok(LoadedRows { text, index })
}

/// The row's review_date as days since 1970-01-01, or [`UNDATED`].
fn review_day(line: &[u8]) -> i64 {
    tsv::split_columns(line)
        .and_then(|columns| tsv::parse_date(columns[tsv::REVIEW_DATE]))
        .unwrap_or(UNDATED)
}

/// The closing summary.
struct Report<'a> {
    stats: &'a Stats,
    deliveries: &'a Deliveries,
    elapsed: Duration,
}

impl Report<'_> {
    fn render(&self, topic: &str) -> String {
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.stats.rows as f64 / seconds
        } else {
            0.0
        };
        format!(
            "produce: sent {rows} rows to {topic}\n  \
             bytes              {bytes} ({mib:.1} MiB of message values)\n  \
             malformed lines    {malformed} (sent raw)\n  \
             delivery failures  {failed}\n  \
             elapsed            {seconds:.2} s\n  \
             rate               {rate:.0} records/s",
            rows = self.stats.rows,
            bytes = self.stats.bytes,
            mib = self.stats.bytes as f64 / (1024.0 * 1024.0),
            malformed = self.stats.malformed,
            failed = self.deliveries.failed(),
        )
    }

    /// An error when any message was not delivered, so that scripts see a non-zero exit.
    fn check(&self) -> anyhow::Result<()> {
        match self.deliveries.failed() {
            0 => Ok(()),
            failed => anyhow::bail!(
                "{failed} of {} messages were not delivered; first error: {}",
                self.stats.rows,
                self.deliveries.first_error()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn row(product: &str, date: &str) -> String {
        let mut columns = vec!["x"; 15];
        columns[tsv::PRODUCT_ID] = product;
        columns[tsv::REVIEW_DATE] = date;
        columns.join("\t")
    }

    fn input(text: String) -> Box<dyn BufRead> {
        Box::new(Cursor::new(text.into_bytes()))
    }

    #[test]
    fn lines_skip_the_header_and_trim_line_ends() {
        let text = format!(
            "{}\r\n{}\r\n\n{}",
            tsv::HEADER,
            row("B1", "2015-01-02"),
            "truncated\tline"
        );
        let mut input = input(text);
        let mut lines = Lines::new(Path::new("f.tsv"));
        let expected = row("B1", "2015-01-02");
        assert_eq!(
            lines.next(&mut *input).unwrap(),
            Some((2, expected.as_bytes()))
        );
        assert_eq!(
            lines.next(&mut *input).unwrap(),
            Some((4, &b"truncated\tline"[..]))
        );
        assert_eq!(lines.next(&mut *input).unwrap(), None);
    }

    #[test]
    fn a_file_without_header_keeps_its_first_row() {
        let mut input = input(format!("{}\n", row("B1", "2015-01-02")));
        let mut lines = Lines::new(Path::new("f.tsv"));
        assert_eq!(
            lines.next(&mut *input).unwrap().map(|(number, _)| number),
            Some(1)
        );
    }

    #[test]
    fn replay_order_is_by_date_stable_with_undated_rows_last() {
        let lines = [
            row("B1", "2015-01-03"),
            row("B2", "not-a-date"),
            row("B3", "2015-01-01"),
            "short\tline".to_owned(),
            row("B4", "2015-01-03"),
            row("B5", "2015-01-01"),
        ];
        let text = format!("{}\n{}\n", tsv::HEADER, lines.join("\n"));
        let loaded = load_sorted(input(text.clone()), Path::new("f.tsv"), None).unwrap();
        let keys: Vec<&[u8]> = loaded
            .index
            .iter()
            .map(|row| tsv::key_of(loaded.line(row)))
            .collect();
        let expected: [&[u8]; 6] = [b"B3", b"B5", b"B1", b"B4", b"B2", b""];
        assert_eq!(keys, expected);
        assert_eq!(loaded.index[0].line_number, 4);
        let limited = load_sorted(input(text), Path::new("f.tsv"), Some(2)).unwrap();
        assert_eq!(limited.index.len(), 2);
    }

    #[test]
    fn numbers_must_be_in_range() {
        assert_eq!(parse_non_negative("0"), Ok(0.0));
        assert!(parse_non_negative("-1").is_err());
        assert!(parse_non_negative("inf").is_err());
        assert!(parse_positive("0").is_err());
        assert_eq!(parse_positive("86400"), Ok(86_400.0));
    }

    #[test]
    fn the_report_names_every_count() {
        let stats = Stats {
            rows: 1000,
            bytes: 2 * 1024 * 1024,
            malformed: 2,
        };
        let deliveries = Deliveries::default();
        let report = Report {
            stats: &stats,
            deliveries: &deliveries,
            elapsed: Duration::from_secs(2),
        };
        let text = report.render("acme.reviews");
        assert!(text.contains("sent 1000 rows to acme.reviews"), "{text}");
        assert!(
            text.contains("2.0 MiB") && text.contains("500 records/s"),
            "{text}"
        );
        assert!(report.check().is_ok());
        deliveries.fail(3, "timed out".into());
        let error = report.check().unwrap_err().to_string();
        assert!(
            error.contains("3 of 1000") && error.contains("timed out"),
            "{error}"
        );
    }
}
