//! `mysimbdp run`: loads every configured app, connects the stages, serves the admin API, and
//! runs until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::admin::deployed::{Deployments, Kept};
use crate::app::{Control, CpuShare, Launcher, RunnerSettings};
use crate::checkpoint::CheckpointStore;
use crate::config::{AppEntry, Config};
use crate::enrich::EnrichManifest;
use crate::names::{StreamName, TenantId};
use crate::plugin::{CompiledApp, Limits, PluginEngine};
use crate::sink::cassandra;
use crate::workflow::TriggerSettings;

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
    // Colours only for a person at a terminal, not in a log file.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging();
    let config = Config::load(&args.config)?;
    let trigger = config
        .workflow
        .as_ref()
        .map(|w| TriggerSettings::from_platform(w, config.kafka_access(), &args.config))
        .transpose()?;
    let token = config.token().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let engine = Arc::new(crate::cli::plugin_engine()?);
    let limits = Limits {
        memory_bytes: config.limits.memory_mb << 20,
        call_deadline: Duration::from_millis(config.limits.call_deadline_ms),
        spec: config.limits.spec(),
        max_wasm_bytes: config.admin.max_upload_mb << 20,
        ..Limits::default()
    };
    let instance = args.instance.unwrap_or_else(host_name);
    let kept_in = config.admin.deployed_dir.join(&instance);
    let deployed = Arc::new(Deployments::open(&kept_in).with_context(|| {
        format!(
            "admin.deployed_dir: this host keeps its deploys in {}; set it to a folder it may write",
            kept_in.display()
        )
    })?);
    let loaded = load_apps(&engine, &limits, config.apps(), &deployed)?;
    let session = runtime.block_on(cassandra::connect(
        &config.cassandra_access(),
        Duration::from_millis(config.cassandra.request_timeout_ms),
    ))?;
    crate::source::kafka::check_reachable(&config.kafka_access(), KAFKA_PATIENCE)?;
    let settings = RunnerSettings {
        batch_max: config.runner.batch_max,
        batch_wait: Duration::from_millis(config.runner.batch_wait_ms),
        idle_partition_timeout: Duration::from_millis(config.runner.idle_partition_timeout_ms),
        hibernate_after: (config.runner.hibernate_after_ms > 0)
            .then(|| Duration::from_millis(config.runner.hibernate_after_ms)),
        checkpoint_interval: Duration::from_millis(config.checkpoint.interval_ms),
        reset_state: args.reset_state,
        max_failures: config.limits.max_failures,
        failure_window: Duration::from_millis(config.limits.failure_window_ms),
        quotas: config.limits.quotas(),
        outage_patience: Duration::from_millis(config.cassandra.outage_patience_ms),
        cpu: CpuShare {
            nice: config.limits.worker_nice,
            max_cores: config.limits.max_cpu_cores,
        },
    };
    let store = runtime.block_on(CheckpointStore::open(
        session.clone(),
        config.cassandra.replication,
    ))?;
    let tokens = Arc::new(runtime.block_on(crate::admin::TenantTokens::open(session.clone()))?);
    let access = Arc::new(crate::access::TenantAccess::new(
        &config.kafka_access(),
        &config.cassandra_access(),
        session.clone(),
        config.cassandra.replication,
    ));
    let launcher = Arc::new(Launcher::new(
        runtime.handle().clone(),
        &config,
        session,
        Arc::new(store),
        settings,
        instance,
    ));
    launch_all(&launcher, loaded)?;
    let workflow = trigger
        .as_ref()
        .map(|_| crate::workflow::SharedStatus::default());
    if let (Some(settings), Some(status)) = (trigger, workflow.clone()) {
        std::thread::Builder::new()
            .name("workflow-trigger".into())
            .spawn(move || {
                if let Err(error) = crate::workflow::run(settings, status) {
                    tracing::error!(%error, "the workflow trigger stopped");
                }
            })
            .context("starting the workflow trigger")?;
    }
    let listen = config.admin.listen;
    let tls = match (&config.admin.tls_cert, &config.admin.tls_key) {
        (Some(cert), Some(key)) => Some(crate::admin::tls::acceptor(cert, key)?),
        _ => None,
    };
    let admin_launcher = launcher.clone();
    runtime.block_on(async move {
        let apps_dir = config.admin.apps_dir.clone();
        let admin = crate::admin::Admin {
            launcher: admin_launcher,
            token,
            tokens,
            access,
            plugins: crate::admin::Plugins {
                engine,
                limits,
                apps_dir,
            },
            workflow,
            deployed,
        };
        let server = crate::admin::serve(listen, admin, tls);
        tokio::select! {
            result = server => result.with_context(|| format!("admin API on {listen}")),
            _ = shutdown_signal() => {
                tracing::info!("stopping");
                Ok(())
            }
        }
    })?;
    for handle in launcher.all() {
        handle.send(Control::Stop);
    }
    launcher.join();
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

/// An app ready to start: where it runs, its build and enrich declaration, and the build a
/// rollback returns to when a deploy replaced the config's one.
struct Loaded {
    entry: AppEntry,
    app: CompiledApp,
    manifest: Option<EnrichManifest>,
    previous: Option<(CompiledApp, Option<EnrichManifest>)>,
}

/// A build and the enrich declaration beside it, timed in the log.
fn load_build(
    engine: &PluginEngine,
    limits: &Limits,
    tenant: &TenantId,
    path: &std::path::Path,
) -> anyhow::Result<(CompiledApp, Option<EnrichManifest>)> {
    let started = Instant::now();
    let compiled = engine.load(path, limits.clone())?;
    let manifest = EnrichManifest::beside(path)?;
    tracing::info!(
        %tenant,
        app = %compiled.spec.name,
        version = %compiled.spec.version,
        path = %path.display(),
        elapsed = ?started.elapsed(),
        "app loaded"
    );
    Ok((compiled, manifest))
}

/// The configured apps and the ones deploys started, each in the build the operator left it
/// with: a kept deploy replaces the config's build (which stays the one to roll back to,
/// unless an earlier deploy is kept), a removal leaves the app out.
fn load_apps(
    engine: &PluginEngine,
    limits: &Limits,
    configured: Vec<AppEntry>,
    deployed: &Deployments,
) -> anyhow::Result<Vec<Loaded>> {
    // The build kept as the one before, when there is one and it still loads: a rollback's
    // target, not worth refusing to start over.
    let kept_previous = |tenant: &TenantId, app: &str| {
        let wasm = deployed.previous(tenant.as_str(), app)?;
        match load_build(engine, limits, tenant, &wasm) {
            Ok(previous) => Some(previous),
            Err(error) => {
                tracing::warn!(
                    %tenant,
                    %app,
                    path = %wasm.display(),
                    error = %format!("{error:#}"),
                    "the build kept as the one before does not load: a rollback has nothing to \
                     return to"
                );
                None
            }
        }
    };
    let mut loaded = Vec::new();
    let mut configured_names = std::collections::HashSet::new();
    for entry in configured {
        let tenant = entry.tenant.clone();
        let (app, manifest) = load_build(engine, limits, &tenant, &entry.path)?;
        let name = app.spec.name.to_string();
        configured_names.insert((tenant.to_string(), name.clone()));
        match deployed.get(tenant.as_str(), &name)? {
            None => loaded.push(Loaded {
                entry,
                app,
                manifest,
                previous: None,
            }),
            Some(Kept::Removed) => {
                tracing::info!(%tenant, app = %name, "removed by the operator: not started until deployed again");
            }
            Some(Kept::Build { wasm, placement }) => {
                let (kept, kept_manifest) = load_build(engine, limits, &tenant, &wasm)
                    .with_context(|| {
                        format!(
                            "the build of {tenant}/{name} deployed last, kept as {}, does not \
                             load: delete {} to run the config's build instead",
                            wasm.display(),
                            deployed.folder(tenant.as_str(), &name).display()
                        )
                    })?;
                tracing::info!(%tenant, app = %name, version = %placement.version, "runs the build deployed last, not the config's");
                let previous = kept_previous(&tenant, &name).or(Some((app, manifest)));
                loaded.push(Loaded {
                    entry: AppEntry {
                        path: wasm,
                        ..entry
                    },
                    app: kept,
                    manifest: kept_manifest,
                    previous,
                });
            }
        }
    }
    for (tenant, app, kept) in deployed.all()? {
        let Kept::Build { wasm, placement } = kept else {
            continue;
        };
        if configured_names.contains(&(tenant.clone(), app.clone())) {
            continue;
        }
        let entry = AppEntry {
            tenant: TenantId::new(&tenant)?,
            stream: StreamName::new(&placement.stream)?,
            path: wasm.clone(),
            delivery: placement.delivery,
        };
        let (compiled, manifest) =
            load_build(engine, limits, &entry.tenant, &wasm).with_context(|| {
                format!(
                    "{tenant}/{app}, started by a deploy and kept as {}, does not load: delete {} \
                     to leave it out",
                    wasm.display(),
                    deployed.folder(&tenant, &app).display()
                )
            })?;
        tracing::info!(%tenant, %app, stream = %placement.stream, "started by a deploy, not in the config");
        let previous = kept_previous(&entry.tenant, &app);
        loaded.push(Loaded {
            entry,
            app: compiled,
            manifest,
            previous,
        });
    }
    Ok(loaded)
}

/// How long a start waits for Kafka to answer at all: as long as one admin request may take.
const KAFKA_PATIENCE: Duration = Duration::from_secs(30);

/// How many configured apps start at once: a start mostly waits on Kafka and Cassandra (the
/// app's topics and table, its consumer, its producer's `InitProducerId`), ~0.5 s each here.
const LAUNCHES_AT_ONCE: usize = 8;

/// Starts the configured apps, a few at a time; fails with the first app that could not start,
/// once the others have.
fn launch_all(launcher: &Launcher, loaded: Vec<Loaded>) -> anyhow::Result<()> {
    let launchers = loaded.len().min(LAUNCHES_AT_ONCE);
    let queue = std::sync::Mutex::new(loaded.into_iter());
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..launchers {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut apps| apps.next());
                let Some(Loaded {
                    entry,
                    app,
                    manifest,
                    previous,
                }) = next
                else {
                    return;
                };
                let launched = launcher.launch(
                    &entry.tenant,
                    &entry.stream,
                    entry.delivery,
                    app,
                    manifest,
                    previous,
                );
                if let Err(error) = launched {
                    if let Ok(mut failed) = failed.lock() {
                        failed.get_or_insert(error);
                    }
                }
            });
        }
    });
    match failed.into_inner().ok().flatten() {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}
