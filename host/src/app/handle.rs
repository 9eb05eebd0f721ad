//! The operator's side of a running app: its state, what it reports, and the requests its
//! worker answers between batches.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::admin::metrics::AppMetrics;
use crate::admin::recent::Recent;
use crate::checkpoint::Delivery;
use crate::names::{StreamName, TenantId};
use crate::plugin::CompiledApp;
use crate::source::kafka::Wakeup;

/// Where an app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    Starting,
    Running,
    Draining,
    Drained,
    /// Held by an operator: its input waits in Kafka until it is resumed.
    Paused,
    Failed,
    Stopped,
    /// Unloaded by an operator, after its open windows were emitted.
    Removed,
}

/// What an operator sees of an app.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    pub state: AppState,
    pub caught_up: bool,
    pub last_error: Option<String>,
    /// Plugin failures survived by rebuilding the instance from the last checkpoint.
    pub failures: u64,
    /// Checkpoints saved since the platform started.
    pub checkpoints: u64,
    /// Input partitions this host owns.
    pub partitions: Vec<i32>,
    /// What the app is waiting out (a Cassandra outage, a take-over waiting for its service),
    /// while it does.
    pub waiting: Option<String>,
    /// Input partitions the consumer cannot read past (a batch compressed with a codec it
    /// cannot decompress, a fetch Kafka refuses), one line each with the reason: their
    /// records wait in Kafka, counted in the lag, until the cause is fixed.
    pub unreadable: Vec<String>,
    /// The enrich stage, when the app calls a service: its breaker and counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrich: Option<crate::enrich::EnrichStatus>,
}

/// The answer to a deploy or rollback: what happened, in words, or why it was refused.
pub type Reply = std::sync::mpsc::Sender<Result<String, String>>;

/// An operator's request to an app's worker.
pub enum Control {
    /// Process everything up to the input's end offsets as of now, then close every window.
    Drain,
    /// A compiled new version takes over at the next batch boundary, with its own enrich
    /// declaration: `manifest` (a file beside the deployed `.wasm`), else the `[enrich]` of
    /// its manifest.
    Deploy {
        app: Box<CompiledApp>,
        manifest: Option<crate::enrich::EnrichManifest>,
        reset_state: bool,
        reply: Reply,
    },
    /// The version that ran before the last deploy takes over again, under the same rules.
    Rollback {
        reset_state: bool,
        reply: Reply,
    },
    /// Emit every open window as final, save, and stop for good.
    Remove {
        reply: Reply,
    },
    /// Stop reading the input (it waits in Kafka and shows as lag) until `Resume`; open windows,
    /// checkpoints and the consumer group membership are kept.
    Pause {
        reply: Reply,
    },
    /// Read the input again after a `Pause`.
    Resume {
        reply: Reply,
    },
    Stop,
}

/// Which build of an app is running.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub version: String,
    pub state_version: u32,
    /// SHA-256 of the running `.wasm`.
    pub digest: String,
    /// The contract version it was built against.
    pub contract: &'static str,
    /// Versions that took over since the platform started.
    pub swaps: u64,
}

impl Deployed {
    pub fn of(app: &CompiledApp) -> Self {
        Self {
            version: app.spec.version.clone(),
            state_version: app.spec.state_version,
            digest: app.digest.clone(),
            contract: app.contract(),
            swaps: 0,
        }
    }
}

/// The operator's side of a running app.
pub struct AppHandle {
    pub tenant: TenantId,
    pub app: String,
    /// Where it reads and what it promises: a failed app is started again with the same.
    pub stream: StreamName,
    pub delivery: Delivery,
    pub deployed: Mutex<Deployed>,
    pub metrics: Arc<AppMetrics>,
    pub status: Mutex<AppStatus>,
    pub control: Mutex<std::sync::mpsc::Sender<Control>>,
    /// Ends the worker's idle sleep, so that a request is served at once.
    pub wakeup: Wakeup,
    /// Latest results, dead letters and deploys, for the dashboard.
    pub recent: Arc<Recent>,
    /// Told whenever the state changes: a client waiting for one (`?until=drained`) is
    /// answered when it comes, without asking again and again.
    pub state_changed: tokio::sync::Notify,
}

impl AppState {
    /// The states an app leaves only when an operator deploys it again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Failed | Self::Stopped | Self::Removed)
    }
}

impl AppHandle {
    pub fn status(&self) -> AppStatus {
        let mut status = self
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        status.enrich = self.metrics.enrich.status();
        status
    }

    /// Changes what operators see, even after a thread panicked while holding the status.
    pub(crate) fn update(&self, f: impl FnOnce(&mut AppStatus)) {
        let change = |s: &mut AppStatus| {
            let before = s.state;
            f(s);
            before != s.state
        };
        let changed = match self.status.lock() {
            Ok(mut s) => change(&mut s),
            Err(p) => change(&mut p.into_inner()),
        };
        if changed {
            self.state_changed.notify_waiters();
        }
    }

    fn state(&self) -> AppState {
        match self.status.lock() {
            Ok(s) => s.state,
            Err(p) => p.into_inner().state,
        }
    }

    /// Returns once the app is in `state`, or in a final state it will not leave by itself.
    pub async fn reached(&self, state: AppState) -> AppState {
        loop {
            let changed = self.state_changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the state is read, so that a change in between is not missed.
            changed.as_mut().enable();
            let now = self.state();
            if now == state || now.is_final() {
                return now;
            }
            changed.await;
        }
    }

    /// Whether its worker has ended for good (failed or stopped): it answers no more requests,
    /// and a deploy starts the app again.
    pub fn ended(&self) -> bool {
        matches!(self.state(), AppState::Failed | AppState::Stopped)
    }

    pub fn deployed(&self) -> Deployed {
        self.deployed
            .lock()
            .map(|d| d.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn send(&self, control: Control) -> bool {
        let sent = self
            .control
            .lock()
            .map(|c| c.send(control).is_ok())
            .unwrap_or(false);
        self.wakeup.wake();
        sent
    }
}

impl crate::sink::retry::Watcher for AppHandle {
    fn waiting(&self, what: Option<String>) {
        self.update(|s| s.waiting = what);
    }

    fn retried(&self) {
        AppMetrics::count(&self.metrics.sink_errors, 1);
    }
}
