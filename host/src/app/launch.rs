//! Starting an app on a running platform: its topics, its table, its Kafka clients and its worker
//! thread. The same path serves the apps of the config file at start and apps an operator deploys
//! later; the registry of running apps lives here too.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use scylla::client::session::Session;
use tokio::runtime::Handle;

use super::handle::{AppHandle, AppState, AppStatus, Deployed};
use super::links::Links;
use super::processor::Processor;
use super::worker::{Runner, RunnerSettings};
use crate::access::{wall_off_outputs, KafkaAccess, KafkaAdmin, KafkaAdminError};
use crate::admin::metrics::AppMetrics;
use crate::admin::recent::Change;
use crate::checkpoint::{CheckpointStore, Delivery};
use crate::config::Config;
use crate::enrich::{EnrichError, EnrichManifest, Enricher, Services};
use crate::names::{AppTopics, StreamName, TenantId};
use crate::plugin::{CompiledApp, PluginError};
use crate::sink::cassandra::{CassandraError, ResultsTable};
use crate::sink::TableWriter;
use crate::source::kafka::{ensure_topics, ensure_topics_with, KafkaError, Wakeup};
use crate::source::InputWatch;

/// The running apps, by (tenant, app).
pub type Apps = BTreeMap<(String, String), Arc<AppHandle>>;

/// Why an app could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("tenant `{tenant}` already runs an app `{app}`")]
    Running { tenant: String, app: String },
    #[error("starting the worker thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Enrich(#[from] EnrichError),
    #[error("walling the app's outputs off from its tenant: {0}")]
    Walls(#[from] KafkaAdminError),
    #[error(transparent)]
    Admin(KafkaAdminError),
}

/// Where the platform's apps get their connections and settings from.
pub struct Launcher {
    runtime: Handle,
    kafka: KafkaAccess,
    partitions: i32,
    session: Arc<Session>,
    replication: u32,
    store: Arc<CheckpointStore>,
    settings: RunnerSettings,
    /// This host's name among the hosts sharing the apps: it names their Kafka transactions.
    instance: String,
    apps: RwLock<Apps>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// The apps being launched: two deploys of the same new app cannot both start it, while
    /// different apps start at once.
    launching: Mutex<HashSet<(String, String)>>,
    /// The services apps may call, as the operator configured them.
    services: Services,
    /// One watch over the inputs of this host's hibernating apps.
    watch: InputWatch,
    /// The admin client of the launches under way (see [`Launcher::admin`]).
    admin: Mutex<Weak<KafkaAdmin>>,
}

impl Launcher {
    /// Kafka and Cassandra as `config` names them; `instance` is this host's name.
    pub fn new(
        runtime: Handle,
        config: &Config,
        session: Arc<Session>,
        store: Arc<CheckpointStore>,
        settings: RunnerSettings,
        instance: String,
    ) -> Self {
        Self {
            runtime,
            kafka: config.kafka_access(),
            partitions: config.kafka.partitions,
            session,
            replication: config.cassandra.replication,
            store,
            settings,
            instance,
            apps: RwLock::new(Apps::new()),
            workers: Mutex::new(Vec::new()),
            launching: Mutex::new(HashSet::new()),
            services: config.services.clone(),
            watch: InputWatch::new(config.kafka_access()),
            admin: Mutex::new(Weak::new()),
        }
    }

    /// An admin client for a launch: launches under way at once (a host's start-up runs eight)
    /// share one, and so its Kafka logins and threads; it closes when the last of them ends, so
    /// a host with nothing to launch keeps none.
    fn admin(&self) -> Result<Arc<KafkaAdmin>, KafkaAdminError> {
        let mut shared = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(admin) = shared.upgrade() {
            return Ok(admin);
        }
        let admin = Arc::new(KafkaAdmin::new(&self.kafka)?);
        *shared = Arc::downgrade(&admin);
        Ok(admin)
    }

    /// Starts `app` for `tenant` on `stream`, with the enrich stage its manifest declares, if
    /// any, and the build a rollback returns to when one is known (a restarted host's kept
    /// deploys); blocks on Kafka and Cassandra, so call it off the async runtime's threads.
    pub fn launch(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        delivery: Delivery,
        app: CompiledApp,
        manifest: Option<EnrichManifest>,
        previous: Option<(CompiledApp, Option<EnrichManifest>)>,
    ) -> Result<Arc<AppHandle>, LaunchError> {
        let spec = app.spec.clone();
        let key = (tenant.to_string(), spec.name.to_string());
        let Some(_launching) = Launching::begin(&self.launching, &key) else {
            return Err(LaunchError::Running {
                tenant: key.0,
                app: key.1,
            });
        };
        if self
            .get(&key.0, &key.1)
            .is_some_and(|running| !running.ended())
        {
            return Err(LaunchError::Running {
                tenant: key.0,
                app: key.1,
            });
        }
        let metrics = Arc::new(AppMetrics::default());
        // A manifest beside the file takes the place of the one the app carries.
        let manifest = match manifest {
            Some(manifest) => Some(manifest),
            None => EnrichManifest::embedded(&spec)?,
        };
        let enricher = match &manifest {
            Some(manifest) => Some(Enricher::build(
                tenant.as_str(),
                &spec,
                manifest,
                &self.services,
                metrics.enrich.clone(),
                self.runtime.clone(),
            )?),
            None => None,
        };
        let topics = AppTopics::new(tenant, stream, &spec.name);
        let mut names = vec![
            topics.input.as_str(),
            &topics.results,
            &topics.late,
            &topics.dead_letters,
        ];
        if crate::alerts::raises_alerts(&spec) {
            names.push(&topics.alerts);
        }
        // Held until the launch ends, so that launches overlapping this one share it.
        let admin = self.admin().map_err(LaunchError::Admin)?;
        // Before the topics exist, so the tenant never has a moment to write its outputs.
        wall_off_outputs(&self.kafka, &admin, tenant, &spec.name)?;
        self.runtime.block_on(ensure_topics_with(
            admin.client(),
            &self.kafka.bootstrap,
            &names,
            self.partitions,
        ))?;
        let table = self.runtime.block_on(ResultsTable::open(
            self.session.clone(),
            tenant,
            &spec,
            self.replication,
        ))?;
        let transactional_id = delivery
            .transactional()
            .then(|| format!("mysimbdp.{tenant}.{}.{}", spec.name, self.instance));
        let (control, receiver) = std::sync::mpsc::channel();
        // A failed app deployed again keeps its history on the dashboard.
        let recent = self
            .get(&key.0, &key.1)
            .map(|before| before.recent.clone())
            .unwrap_or_default();
        recent.change(Change {
            at_ms: crate::admin::recent::now_ms(),
            action: "start",
            from: None,
            to: spec.version.clone(),
            pause_ms: None,
            ok: true,
            outcome: format!(
                "version {} started on stream {}",
                spec.version,
                stream.as_str()
            ),
        });
        let wakeup = Wakeup::default();
        let handle = Arc::new(AppHandle {
            tenant: tenant.clone(),
            app: spec.name.to_string(),
            stream: stream.clone(),
            delivery,
            deployed: Mutex::new(Deployed::of(&app)),
            metrics: metrics.clone(),
            status: Mutex::new(AppStatus {
                state: AppState::Starting,
                caught_up: false,
                last_error: None,
                failures: 0,
                checkpoints: 0,
                partitions: Vec::new(),
                waiting: None,
                unreadable: Vec::new(),
                enrich: None,
            }),
            control: Mutex::new(control),
            wakeup: wakeup.clone(),
            recent,
            state_changed: tokio::sync::Notify::new(),
        });
        let processor = Processor::new(
            spec.clone(),
            app.instantiate()?,
            metrics,
            self.settings.idle_partition_timeout,
            Instant::now(),
        )
        .with_quotas(self.settings.quotas);
        let processor = match enricher {
            Some(enricher) => processor.with_enricher(enricher),
            None => processor,
        };
        let links = Links {
            kafka: self.kafka.clone(),
            topics: topics.clone(),
            instance: self.instance.clone(),
            transactional_id,
            watch: self.watch.clone(),
            partitions: self.partitions,
        };
        let connection = links.connect(
            &spec,
            &wakeup,
            vec![Box::new(TableWriter::new(
                table,
                self.runtime.clone(),
                handle.clone(),
                self.settings.outage_patience,
            ))],
        )?;
        let (previous_app, previous_manifest) = match previous {
            Some((app, manifest)) => (Some(app), manifest),
            None => (None, None),
        };
        let runner = Runner {
            handle: handle.clone(),
            processor,
            links,
            wakeup,
            topics,
            runtime: self.runtime.clone(),
            control: receiver,
            settings: self.settings.clone(),
            current: app,
            previous: previous_app,
            manifests: (manifest, previous_manifest),
            services: self.services.clone(),
            store: delivery.checkpoints().then(|| self.store.clone()),
        };
        let worker = std::thread::Builder::new()
            .name(format!("{}/{}", key.0, key.1))
            .spawn(move || runner.run(connection))
            .map_err(LaunchError::Thread)?;
        if let Ok(mut workers) = self.workers.lock() {
            workers.push(worker);
        }
        if let Ok(mut apps) = self.apps.write() {
            apps.insert(key, handle.clone());
        }
        Ok(handle)
    }

    /// Creates a tenant's input stream topic unless it exists (`partitions`, else the
    /// platform's default): tenants may write their streams but not create topics.
    pub async fn create_stream(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        partitions: Option<i32>,
    ) -> Result<String, KafkaError> {
        let topic = tenant.stream_topic(stream);
        ensure_topics(
            &self.kafka,
            &[topic.as_str()],
            partitions.unwrap_or(self.partitions),
        )
        .await?;
        Ok(topic)
    }

    /// The running app, if any.
    pub fn get(&self, tenant: &str, app: &str) -> Option<Arc<AppHandle>> {
        self.apps
            .read()
            .ok()?
            .get(&(tenant.to_owned(), app.to_owned()))
            .cloned()
    }

    /// Every running app, in (tenant, app) order.
    pub fn all(&self) -> Vec<Arc<AppHandle>> {
        self.apps
            .read()
            .map(|apps| apps.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets an app whose worker has stopped for good.
    pub fn forget(&self, tenant: &str, app: &str) {
        if let Ok(mut apps) = self.apps.write() {
            apps.remove(&(tenant.to_owned(), app.to_owned()));
        }
    }

    /// Waits for every worker thread to end (after each was told to stop).
    pub fn join(&self) {
        let workers = self
            .workers
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        for worker in workers {
            let _ = worker.join();
        }
    }
}

/// An app's place in `Launcher::launching` while it starts; given back when dropped.
struct Launching<'a> {
    set: &'a Mutex<HashSet<(String, String)>>,
    key: (String, String),
}

impl<'a> Launching<'a> {
    /// `None` when the same app is starting already.
    fn begin(set: &'a Mutex<HashSet<(String, String)>>, key: &(String, String)) -> Option<Self> {
        let mut starting = set.lock().unwrap_or_else(|p| p.into_inner());
        starting.insert(key.clone()).then(|| Self {
            set,
            key: key.clone(),
        })
    }
}

impl Drop for Launching<'_> {
    fn drop(&mut self) {
        let mut starting = self.set.lock().unwrap_or_else(|p| p.into_inner());
        starting.remove(&self.key);
    }
}
