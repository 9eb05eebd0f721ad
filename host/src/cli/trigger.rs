//! `mysimbdp trigger`: the bridge from the tenants' alerts topics to the Airflow workflow.

use std::path::PathBuf;

use crate::workflow::{self, TriggerSettings};

/// Where the trigger's settings are.
#[derive(clap::Args, Debug)]
pub struct TriggerArgs {
    /// The settings file (see `deploy/local/trigger.toml`).
    #[arg(long)]
    pub config: PathBuf,
}

/// Runs the trigger until it is stopped.
pub fn run(args: TriggerArgs) -> anyhow::Result<()> {
    super::run::init_logging();
    let settings = TriggerSettings::load(&args.config)?;
    workflow::run(settings, workflow::SharedStatus::default())?;
    Ok(())
}
