//! `mysimbdp run`: loads every configured app, connects the stages, serves the admin API, and
//! runs until SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::admin::metrics::AppMetrics;
use crate::app::Processor;
use crate::app::{AppHandle, AppState, AppStatus, Control, Deployed, Runner, RunnerSettings};
use crate::checkpoint::CheckpointStore;
use crate::config::Config;
use crate::names::AppTopics;
use crate::plugin::{Limits, PluginEngine};
use crate::sink::cassandra::{self, ResultsTable};
use crate::sink::kafka::AppOutputs;
use crate::source::kafka::{consumer, ensure_topics};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The platform's config file (TOML): tenants, their apps, Kafka, Cassandra, admin.
    #[arg(long, short)]
    config: PathBuf,
    /// This host's name among the hosts sharing the apps' consumer groups: it names the Kafka
    /// transactions, so a restarted host must keep it. Defaults to the machine's host name.
    #[arg(long)]
    instance: Option<String>,
    /// Resume even where saved windows belong to an incompatible app build: those windows start
    /// fresh (offsets and watermarks still resume).
    #[arg(long)]
    reset_state: bool,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mysimbdp".into())
}

/// Logs go to stderr, with tenant and app as fields; `RUST_LOG` adjusts the level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn,scylla=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging();
    let config = Config::load(&args.config)?;
    let token = config.token().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let engine = Arc::new(
        PluginEngine::new().map_err(|e| anyhow::anyhow!("starting the plugin engine: {e:#}"))?,
    );
    let limits = Limits {
        memory_bytes: config.limits.memory_mb << 20,
        call_deadline: Duration::from_millis(config.limits.call_deadline_ms),
        ..Limits::default()
    };
    let mut loaded = Vec::new();
    for entry in config.apps() {
        let started = Instant::now();
        let compiled = engine.load(&entry.path, limits.clone())?;
        tracing::info!(
            tenant = %entry.tenant,
            app = %compiled.spec.name,
            version = %compiled.spec.version,
            path = %entry.path.display(),
            elapsed = ?started.elapsed(),
            "app loaded"
        );
        loaded.push((entry, compiled));
    }
    let session = runtime.block_on(cassandra::connect(&config.cassandra.nodes))?;
    let settings = RunnerSettings {
        batch_max: config.runner.batch_max,
        batch_wait: Duration::from_millis(config.runner.batch_wait_ms),
        idle_partition_timeout: Duration::from_millis(config.runner.idle_partition_timeout_ms),
        checkpoint_interval: Duration::from_millis(config.checkpoint.interval_ms),
        reset_state: args.reset_state,
        max_failures: config.limits.max_failures,
        failure_window: Duration::from_millis(config.limits.failure_window_ms),
    };
    let instance = args.instance.unwrap_or_else(host_name);
    let store = if config.apps().iter().any(|a| a.delivery.checkpoints()) {
        Some(Arc::new(runtime.block_on(CheckpointStore::open(
            session.clone(),
            config.cassandra.replication,
        ))?))
    } else {
        None
    };
    let mut apps = BTreeMap::new();
    let mut workers = Vec::new();
    for (entry, compiled) in loaded {
        let spec = compiled.spec.clone();
        let topics = AppTopics::new(&entry.tenant, &entry.stream, &spec.name);
        let bootstrap = &config.kafka.bootstrap;
        runtime.block_on(ensure_topics(
            bootstrap,
            &[
                &topics.input,
                &topics.results,
                &topics.late,
                &topics.dead_letters,
            ],
            config.kafka.partitions,
        ))?;
        let table = runtime.block_on(ResultsTable::open(
            session.clone(),
            &entry.tenant,
            &spec,
            config.cassandra.replication,
        ))?;
        let transactional_id = entry
            .delivery
            .transactional()
            .then(|| format!("mysimbdp.{}.{}.{instance}", entry.tenant, spec.name));
        let (control, receiver) = std::sync::mpsc::channel();
        let metrics = Arc::new(AppMetrics::default());
        let handle = Arc::new(AppHandle {
            tenant: entry.tenant.clone(),
            app: spec.name.to_string(),
            deployed: Mutex::new(Deployed::of(&compiled)),
            metrics: metrics.clone(),
            status: Mutex::new(AppStatus {
                state: AppState::Starting,
                caught_up: false,
                last_error: None,
                failures: 0,
                checkpoints: 0,
                partitions: Vec::new(),
            }),
            control: Mutex::new(control),
        });
        let processor = Processor::new(
            spec.clone(),
            compiled.instantiate()?,
            metrics,
            settings.idle_partition_timeout,
            Instant::now(),
        );
        let runner = Runner {
            handle: handle.clone(),
            processor,
            consumer: Arc::new(consumer(bootstrap, &topics.group)?),
            outputs: AppOutputs::new(
                bootstrap,
                topics.clone(),
                &spec,
                transactional_id.as_deref(),
            )?,
            topics,
            table: Arc::new(table),
            runtime: runtime.handle().clone(),
            control: receiver,
            settings: settings.clone(),
            current: compiled,
            previous: None,
            store: store.clone().filter(|_| entry.delivery.checkpoints()),
        };
        let name = format!("{}/{}", entry.tenant, spec.name);
        workers.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(move || runner.run())
                .context("starting an app worker")?,
        );
        apps.insert((entry.tenant.to_string(), spec.name.to_string()), handle);
    }
    let handles: Vec<Arc<AppHandle>> = apps.values().cloned().collect();
    let listen = config.admin.listen;
    runtime.block_on(async move {
        let plugins = crate::admin::Plugins { engine, limits };
        let server = crate::admin::serve(listen, apps, token, plugins);
        tokio::select! {
            result = server => result.with_context(|| format!("admin API on {listen}")),
            _ = shutdown_signal() => {
                tracing::info!("stopping");
                Ok(())
            }
        }
    })?;
    for handle in &handles {
        handle.send(Control::Stop);
    }
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
