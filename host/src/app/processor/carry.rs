//! What outlives one instance of an app: its open windows saved for a checkpoint, brought
//! back after a restart or a rebalance, forgotten when a partition moves away, and handed to a
//! new build in a hot swap. One rule (`compatible`) decides whether saved windows may pass.

use std::sync::Arc;
use std::time::Instant;

use super::{slot_table, Processor};
use crate::admin::metrics::PluginCall;
use crate::checkpoint::{Geometry, SavedBy, SavedWindow};
use crate::enrich::Enricher;
use crate::plugin::{AppInstance, AppSpec, PluginError};
use crate::time::EventTime;

/// Why a new version could not take over; the old one keeps running.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("state version {new} cannot read the windows of state version {old}: their state is not compatible; deploy or start with --reset-state to drop the open windows' state")]
    StateVersion { old: u32, new: u32 },
    #[error("version {version} opened its windows under another {what}, which this build changes; deploy or start with --reset-state to drop the open windows' state")]
    Geometry { version: String, what: &'static str },
    #[error("a batch is still being read or waits for the app's service; swap between batches")]
    MidBatch,
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// The one rule for saved or open windows to pass to another build, on a restart and a hot
/// swap alike: the same key, window and event time, and the same state version.
pub fn compatible(saved: &SavedBy, spec: &AppSpec) -> Result<(), SwapError> {
    if let Err(difference) = Geometry::of(spec).check_saved(&saved.geometry) {
        return Err(SwapError::Geometry {
            version: saved.version.clone(),
            what: difference.what(),
        });
    }
    if saved.state_version != spec.state_version {
        return Err(SwapError::StateVersion {
            old: saved.state_version,
            new: spec.state_version,
        });
    }
    Ok(())
}

/// What a swap carried from the old version to the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swapped {
    pub windows: usize,
    pub state_bytes: usize,
    /// Distinct keys among the open windows.
    pub keys: usize,
    /// The open windows' earliest and latest start: which windows a reset starts fresh.
    pub span: Option<(EventTime, EventTime)>,
    /// Whether the open windows' state went over (or was dropped under --reset-state).
    pub carried: bool,
}

impl Processor {
    /// Who is saving state: checked again when the state is restored.
    pub fn saved_by(&self) -> SavedBy {
        SavedBy {
            version: self.spec.version.clone(),
            state_version: self.spec.state_version,
            geometry: Geometry::of(&self.spec).encode(),
        }
    }

    /// The guest state of every open window, grouped by the partition that feeds it, between
    /// batches; partitions without open windows are not listed.
    pub fn save_windows(&mut self) -> Result<Vec<(i32, Vec<SavedWindow>)>, PluginError> {
        let open = self.table.all_open();
        let numbers: Vec<u32> = open.iter().map(|s| s.get()).collect();
        let states = self.timed(PluginCall::Snapshot, |i| i.snapshot(&numbers))?;
        let mut by_partition: Vec<(i32, Vec<SavedWindow>)> = Vec::new();
        for (i, &slot) in open.iter().enumerate() {
            let (start, end) = (states.offsets[i] as usize, states.offsets[i + 1] as usize);
            let (key, window) = self.table.describe(slot);
            let saved = SavedWindow {
                key: key.to_owned(),
                window,
                state: states.bytes[start..end].to_vec(),
            };
            let partition = self.table.partition(slot);
            match by_partition.iter_mut().find(|(p, _)| *p == partition) {
                Some((_, list)) => list.push(saved),
                None => by_partition.push((partition, vec![saved])),
            }
        }
        Ok(by_partition)
    }

    /// Whether windows saved by `saved` may be restored into this build: the one rule for a
    /// restart and a hot swap alike.
    pub fn check_saved(&self, saved: &SavedBy) -> Result<(), SwapError> {
        compatible(saved, &self.spec)
    }

    /// Brings a partition's saved windows back, with its clock and the watermark it had: a
    /// window closed before the save stays closed.
    pub fn restore_partition(
        &mut self,
        partition: i32,
        clock: EventTime,
        watermark: EventTime,
        windows: &[SavedWindow],
        now: Instant,
    ) -> Result<(), PluginError> {
        self.watermarks.restore(partition, clock, watermark, now);
        if windows.is_empty() {
            return Ok(());
        }
        let mut numbers = Vec::with_capacity(windows.len());
        let mut offsets = Vec::with_capacity(windows.len() + 1);
        let mut bytes = Vec::new();
        offsets.push(0);
        for saved in windows {
            let slot = self.table.reopen(&saved.key, saved.window, partition);
            numbers.push(slot.get());
            bytes.extend_from_slice(&saved.state);
            offsets.push(bytes.len() as u32);
        }
        let states = crate::plugin::States { offsets, bytes };
        self.timed(PluginCall::Restore, |i| i.restore(&numbers, &states))?;
        self.publish_gauges();
        Ok(())
    }

    /// A partition moved to another host: its windows are forgotten here, unemitted; the new
    /// owner resumes them from the checkpoint.
    pub fn forget_partition(&mut self, partition: i32) -> Result<(), PluginError> {
        self.watermarks.revoke(partition);
        let slots = self.table.of_partition(partition);
        if !slots.is_empty() {
            let numbers: Vec<u32> = slots.iter().map(|s| s.get()).collect();
            self.timed(PluginCall::Close, |i| i.close(&numbers))?;
            self.table.release(&slots);
        }
        self.publish_gauges();
        Ok(())
    }

    /// Hands every open window's state to a new version's instance, between batches. A build
    /// that cannot read it is refused, or with `reset_state` takes over with the open windows
    /// dropped. On any failure the running version stays as it was.
    /// The new build's enrich stage (`enricher`, built from its own declaration) replaces
    /// the running one.
    pub fn swap(
        &mut self,
        spec: Arc<AppSpec>,
        instance: AppInstance,
        reset_state: bool,
        enricher: Option<Enricher>,
    ) -> Result<Swapped, SwapError> {
        let carry_state = match compatible(&self.saved_by(), &spec) {
            Ok(()) => true,
            Err(_) if reset_state => false,
            Err(refused) => return Err(refused),
        };
        self.take_over(spec, instance, carry_state, enricher)
    }

    fn take_over(
        &mut self,
        spec: Arc<AppSpec>,
        mut instance: AppInstance,
        carry_state: bool,
        enricher: Option<Enricher>,
    ) -> Result<Swapped, SwapError> {
        if self.pending() > 0 || !self.queue.is_empty() {
            return Err(SwapError::MidBatch);
        }
        let slots = self.table.all_open();
        let open: Vec<u32> = slots.iter().map(|s| s.get()).collect();
        let keys: std::collections::HashSet<&str> =
            slots.iter().map(|&s| self.table.describe(s).0).collect();
        let keys = keys.len();
        let starts = slots.iter().map(|&s| self.table.describe(s).1.start);
        let span = starts.clone().min().zip(starts.max());
        let mut state_bytes = 0;
        if carry_state {
            let states = self.timed(PluginCall::Snapshot, |i| i.snapshot(&open))?;
            instance.restore(&open, &states)?;
            state_bytes = states.bytes.len();
        } else {
            // Dropped, as on a restart with --reset-state: a window is written again only once a
            // record reaches it, never from an empty accumulator over its row.
            self.table = slot_table(&spec);
        }
        self.instance = instance;
        self.spec = spec;
        self.set_enricher(enricher);
        self.watermarks.set_delay(self.spec.watermark_delay_ms);
        Ok(Swapped {
            windows: open.len(),
            state_bytes,
            keys,
            span,
            carried: carry_state,
        })
    }
}
