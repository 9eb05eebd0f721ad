//! `mysimbdp batch`: a tenant app run to completion over a Cassandra results table.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::access::{CassandraAccess, PasswordSource};
use crate::batch::{self, Job, Progress};
use crate::names::{cql_identifier, TenantId};
use crate::plugin::{Limits, SpecLimits};
use crate::time::{date_days, parse_time};

/// What to run over which table.
#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    /// Tenant whose keyspace holds the table.
    #[arg(long)]
    pub tenant: String,
    /// The app's `.wasm` (a component of the contract, as for a stream).
    #[arg(long)]
    pub app: PathBuf,
    /// The table to read, in the tenant's keyspace (e.g. `aggregated_reviews`).
    #[arg(long)]
    pub from: String,
    /// Only rows whose column holds this value: `--where product_id=B00X`; repeat it for more
    /// values (of one column: any of them) or more columns (all of them).
    #[arg(long = "where", value_name = "COLUMN=VALUE")]
    pub conditions: Vec<String>,
    /// Only rows whose event time is at or after this (`YYYY-MM-DD` or RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only rows whose event time is before this (`YYYY-MM-DD` or RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Also write the results as CSV to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also write the results as Parquet to this file.
    #[arg(long)]
    pub parquet: Option<PathBuf>,
    /// Cassandra contact points.
    #[arg(long, default_value = "127.0.0.1:9042")]
    pub cassandra: Vec<String>,
    /// The Cassandra role to log in as (it must read the source table and write the app's own);
    /// its password comes from MYSIMBDP_CASSANDRA_PASSWORD or --cassandra-password-file, never
    /// from the command line.
    #[arg(long, env = "MYSIMBDP_CASSANDRA_USER")]
    pub cassandra_user: Option<String>,
    /// A file holding the role's password (instead of MYSIMBDP_CASSANDRA_PASSWORD).
    #[arg(long, env = "MYSIMBDP_CASSANDRA_PASSWORD_FILE")]
    pub cassandra_password_file: Option<PathBuf>,
    /// A CA certificate (PEM) to reach Cassandra over TLS.
    #[arg(long, env = "MYSIMBDP_CASSANDRA_CA_FILE")]
    pub cassandra_ca_file: Option<PathBuf>,
    /// Token ranges the table is split into (units of work).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub ranges: u32,
    /// Units read at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Rows per call into the app.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch: u32,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_bound(flag: &str, text: &str) -> anyhow::Result<i64> {
    if let Some(days) = date_days(text.as_bytes()) {
        return Ok(days * 86_400_000);
    }
    parse_time(crate::plugin::TimeFormat::Rfc3339, text.as_bytes())
        .map(|t| t.millis())
        .map_err(|_| {
            anyhow::anyhow!(
                "`--{flag} {text}` is not a date: write YYYY-MM-DD or an RFC 3339 time such as \
                 2015-03-01T00:00:00Z"
            )
        })
}

fn parse_condition(text: &str) -> anyhow::Result<(String, String)> {
    let (column, value) = text.split_once('=').with_context(|| {
        format!("`--where {text}` has no `=`: write `--where COLUMN=VALUE`, e.g. product_id=B00X")
    })?;
    cql_identifier("`--where` column", column)?;
    Ok((column.to_owned(), value.to_owned()))
}

/// A bar over units of work on stderr, hidden when stderr is not a terminal.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, units: usize) {
        self.0.set_length(units as u64);
    }

    fn unit_done(&self, rows_read: u64) {
        self.0.inc(1);
        self.0.set_message(format!("{rows_read} rows"));
    }
}

fn bar() -> Bar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:24}] {pos}/{len} token ranges, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Bar(bar)
}

/// Runs the app over the table and prints what it did.
pub fn run(args: BatchArgs) -> anyhow::Result<()> {
    super::run::init_logging();
    let tenant = TenantId::new(&args.tenant)?;
    let from = cql_identifier("`--from` table", &args.from)?;
    let conditions = args
        .conditions
        .iter()
        .map(|c| parse_condition(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_bound("since", s))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| parse_bound("until", s))
        .transpose()?;
    let engine = super::plugin_engine()?;
    let limits = Limits {
        spec: SpecLimits {
            composite_keys: true,
            ..SpecLimits::default()
        },
        ..Limits::default()
    };
    let app = engine.load(&args.app, limits)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let job = Job {
        tenant,
        from,
        app,
        conditions,
        since,
        until,
        ranges: args.ranges,
        concurrency: args.concurrency as usize,
        batch_max: args.batch as usize,
        csv: args.csv.clone(),
        parquet: args.parquet.clone(),
    };
    let progress = Arc::new(bar());
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let started = Instant::now();
    let cassandra = cassandra_access(&args)?;
    let summary = runtime.block_on(async {
        let session =
            crate::sink::cassandra::connect(&cassandra, std::time::Duration::from_secs(30)).await?;
        batch::run(session, job, progress.clone(), now_ms).await
    })?;
    progress.0.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let c = summary.counts;
    let rate = if elapsed > 0.0 {
        c.read as f64 / elapsed
    } else {
        0.0
    };
    if args.json {
        let summary = serde_json::json!({
            "table": summary.table,
            "rows_read": c.read,
            "rows_used": c.used,
            "not_selected": c.not_selected,
            "filtered": c.filtered,
            "incomplete": c.incomplete,
            "results": summary.rows.len(),
            "units": summary.units,
            "seconds": elapsed,
            "rows_per_second": rate,
        });
        println!("{summary}");
    }
    eprintln!(
        "{}: {} result rows from {} rows read ({} used, {} not selected, {} filtered out, {} \
         incomplete) in {} units, {elapsed:.2} s, {rate:.0} rows/s",
        summary.table,
        summary.rows.len(),
        c.read,
        c.used,
        c.not_selected,
        c.filtered,
        c.incomplete,
        summary.units
    );
    Ok(())
}

/// Cassandra as the arguments and the environment say: with a login when a role is given.
fn cassandra_access(args: &BatchArgs) -> anyhow::Result<CassandraAccess> {
    let access =
        CassandraAccess::plain(&args.cassandra).with_ca_file(args.cassandra_ca_file.clone());
    let Some(role) = &args.cassandra_user else {
        return Ok(access);
    };
    let source = PasswordSource {
        password_env: args
            .cassandra_password_file
            .is_none()
            .then(|| "MYSIMBDP_CASSANDRA_PASSWORD".to_owned()),
        password_file: args.cassandra_password_file.clone(),
    };
    let password = source
        .read()
        .map_err(|problem| anyhow::anyhow!("the password of Cassandra role {role}: {problem}"))?;
    Ok(access.with_login(role, password))
}
