//! `mysimbdp app test`: a tenant's app on a sample file, through the platform's own decode,
//! event time, windows, sandbox and emit, in this process with no Kafka or Cassandra.

mod expect;
mod input;
mod render;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use crate::app::replay::{self, ReplaySettings};
use crate::config::LimitsConfig;
use crate::plugin::Limits;

pub use input::Order;
pub use render::Format;

/// `app test`'s options.
#[derive(clap::Args)]
pub struct TestArgs {
    /// The app's component (`.wasm`), as `app build` writes it.
    #[arg(long)]
    app: PathBuf,
    /// Sample input: the reviews TSV, a TSV whose header names the fields, or JSON lines
    /// (`.jsonl`); `.gz` too.
    #[arg(long)]
    input: PathBuf,
    /// The rows expected (CSV with a header, or JSON lines): any difference fails the test.
    #[arg(long)]
    expect: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// `event`: sorted by event time, as `produce --replay-speed` sends a file; `file`: as
    /// written, so rows further behind than the watermark delay are late.
    #[arg(long, value_enum, default_value = "event")]
    order: Order,
    /// Records per plugin call, as `[runner] batch_max`.
    #[arg(long, default_value_t = 4096)]
    batch: usize,
}

/// Replays the input through the app and prints what the platform would write; fails when the
/// app fails or the rows differ from the expected ones.
pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let engine = crate::cli::plugin_engine()?;
    // The platform's defaults: the same sandbox and limits a deployed app gets.
    let config = LimitsConfig::default();
    let limits = Limits {
        memory_bytes: config.memory_mb << 20,
        call_deadline: Duration::from_millis(config.call_deadline_ms),
        spec: config.spec(),
        ..Limits::default()
    };
    let app = engine.load(&args.app, limits)?;
    let spec = app.spec.clone();
    let records = input::read(&args.input, &spec, args.order)?;
    let settings = ReplaySettings {
        batch_max: args.batch,
        quotas: config.quotas(),
        max_failures: config.max_failures,
    };
    let result = replay::replay(&app, &records, &settings)?;
    print!("{}", render::rows(&spec, &result, args.format));
    let rejected = render::rejected(&result);
    if args.format == Format::Table {
        print!("{rejected}");
    } else {
        eprint!("{rejected}");
    }
    if let Some(stopped) = &result.stopped {
        bail!("{stopped}");
    }
    let mut problems = Vec::new();
    if !result.quarantined.is_empty() {
        problems.push(format!(
            "the app failed on {} record(s)",
            result.quarantined.len()
        ));
    }
    if let Some(path) = &args.expect {
        let expected = expect::read(path, &spec)?;
        let differences = expect::diff(&spec, &result.rows, &expected);
        if differences.is_empty() {
            eprintln!(
                "{} rows, as expected in {}",
                result.rows.len(),
                path.display()
            );
        } else {
            eprintln!("\ndifferences from {}:", path.display());
            for d in &differences {
                eprintln!("  {d}");
            }
            problems.push(format!(
                "{} difference(s) from {}",
                differences.len(),
                path.display()
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}
