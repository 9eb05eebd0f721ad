//! `mysimbdp app test`: a tenant's app on a sample file, through the platform's own decode,
//! event time, windows, sandbox and emit, in this process with no Kafka or Cassandra.

mod expect;
mod input;
mod render;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::app::replay::{self, ReplaySettings};
use crate::config::{LimitsConfig, RunnerConfig};
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
    /// Records per plugin call (default: `[runner] batch_max`, 4096).
    #[arg(long)]
    batch: Option<usize>,
    /// A platform config whose `[limits]` and `[runner] batch_max` to apply (default: the
    /// platform's defaults).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The parts of a platform config that shape a run; the rest of the file is not read.
#[derive(serde::Deserialize, Default)]
struct Settings {
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    runner: RunnerConfig,
}

fn settings(path: Option<&PathBuf>) -> anyhow::Result<Settings> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// Replays the input through the app and prints what the platform would write; fails when the
/// app fails or the rows differ from the expected ones.
pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let engine = crate::cli::plugin_engine()?;
    // The same sandbox and limits a deployed app gets.
    let Settings {
        limits: config,
        runner,
    } = settings(args.config.as_ref())?;
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
        batch_max: args.batch.unwrap_or(runner.batch_max),
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
