//! The `mysimbdp` command line: the binary's edge, where errors become messages and exit codes.

mod admin_client;
mod app_test;
mod batch;
pub mod gen;
pub mod produce;
mod project;
mod run;
mod tenant;
mod trigger;
pub mod tsv;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mysimbdp",
    version,
    about = "Stream analytics platform for tenants' Wasm apps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: consume every configured app's stream, write its results.
    Run(run::RunArgs),
    /// Write synthetic Amazon-reviews TSV, deterministic for a seed.
    Gen(gen::GenArgs),
    /// Send a reviews TSV (or .tsv.gz) to a tenant's topic, one JSON message per row.
    Produce(produce::ProduceArgs),
    /// Operate apps on a running platform.
    #[command(subcommand)]
    App(admin_client::AppCommand),
    /// Run a tenant app to completion over a Cassandra results table (history analytics).
    Batch(batch::BatchArgs),
    /// Start the Airflow workflow once per alert on the tenants' alerts topics.
    Trigger(trigger::TriggerArgs),
    /// Manage tenants' credentials and streams (operator only): through a running platform's
    /// admin API, or with `--config` straight against Kafka and Cassandra.
    #[command(subcommand)]
    Tenant(admin_client::TenantCommand),
}

/// The plugin engine of a command, keeping compiled code on disk (`MYSIMBDP_CACHE_DIR`, else
/// the user's cache folder) so that a known build loads without compiling again.
fn plugin_engine() -> anyhow::Result<crate::plugin::PluginEngine> {
    let engine = crate::plugin::PluginEngine::new()
        .map_err(|e| anyhow::anyhow!("starting the plugin engine: {e:#}"))?;
    Ok(match crate::plugin::DiskCache::default_root() {
        Some(root) => engine.with_disk_cache(&root),
        None => engine,
    })
}

/// Parses the command line, runs the command, and turns any error into a message on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Gen(args) => gen::run(args),
        Command::Produce(args) => produce::run(args),
        Command::App(command) => admin_client::run(command),
        Command::Tenant(command) => admin_client::run_tenant(command),
        Command::Batch(args) => batch::run(args),
        Command::Trigger(args) => trigger::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
