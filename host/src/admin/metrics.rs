//! Per-app counters and histograms, shared lock-free between an app's worker and the admin
//! endpoint, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of histogram buckets, in seconds: 50 µs to 10 s.
const BUCKETS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many durations were observed and their sum in seconds: the dashboard's means.
    pub fn totals(&self) -> (u64, f64) {
        let count = self.count.load(Ordering::Relaxed);
        (count, self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9)
    }

    /// Appends the histogram's series under `name`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
}

/// The plugin calls whose durations are tracked: the report's "operation duration".
#[derive(Debug, Clone, Copy)]
pub enum PluginCall {
    Filter,
    Accumulate,
    Emit,
    Close,
    Snapshot,
    Restore,
    Merge,
}

const CALLS: [(PluginCall, &str); 7] = [
    (PluginCall::Filter, "filter"),
    (PluginCall::Accumulate, "accumulate"),
    (PluginCall::Emit, "emit"),
    (PluginCall::Close, "close"),
    (PluginCall::Snapshot, "snapshot"),
    (PluginCall::Restore, "restore"),
    (PluginCall::Merge, "merge"),
];

/// One app's metrics.
#[derive(Default)]
pub struct AppMetrics {
    pub records_in: AtomicU64,
    pub records_processed: AtomicU64,
    /// Records processed whose results and input offsets the last checkpoint committed: what
    /// a restart would not read again. It trails `records_processed` while a checkpoint waits
    /// on the sinks.
    pub records_committed: AtomicU64,
    pub late: AtomicU64,
    pub dead_letters: AtomicU64,
    pub key_mismatches: AtomicU64,
    pub filtered_out: AtomicU64,
    pub rows_emitted: AtomicU64,
    pub sink_errors: AtomicU64,
    pub checkpoints: AtomicU64,
    pub plugin_failures: AtomicU64,
    pub quarantined: AtomicU64,
    /// Records refused for an event time too far ahead of the wall clock.
    pub future_records: AtomicU64,
    /// Records refused for crossing one of the app's quotas (`[limits]`).
    pub over_quota: AtomicU64,
    /// Time the worker slept for using more than `[limits] max_cpu_cores`.
    pub cpu_throttled_ms: AtomicU64,
    /// 1 once the app is failed and stopped.
    pub failed: AtomicI64,
    /// 1 while the app hibernates: idle, its Kafka clients closed, its input watched.
    pub hibernating: AtomicI64,
    pub watermark_ms: AtomicI64,
    pub open_windows: AtomicU64,
    pub lag: AtomicI64,
    /// The newest event time read so far, in ms since the epoch (0: none yet).
    pub max_event_ms: AtomicI64,
    /// Wall clock of the last committed checkpoint, in ms since the epoch (0: none yet).
    pub last_checkpoint_ms: AtomicI64,
    /// Wall clock when the app first read records since the platform started, in ms since the
    /// epoch (0: not yet): how long a backlog took is timed on the platform's own clock.
    pub first_record_ms: AtomicI64,
    /// Records per second over the last second, as f64 bits.
    pub input_rate: AtomicU64,
    pub process_rate: AtomicU64,
    pub batch_duration: Histogram,
    pub checkpoint_duration: Histogram,
    plugin_calls: [Histogram; CALLS.len()],
    /// The enrich stage's calls to its service, when the app has one.
    pub enrich: std::sync::Arc<crate::enrich::EnrichMetrics>,
}

impl AppMetrics {
    pub fn plugin_call(&self, call: PluginCall, d: Duration) {
        self.plugin_calls[call as usize].observe(d);
    }

    /// Each plugin call's name with its (count, seconds) totals.
    pub fn plugin_call_totals(&self) -> impl Iterator<Item = (&'static str, (u64, f64))> + '_ {
        CALLS
            .iter()
            .zip(&self.plugin_calls)
            .map(|((_, name), histogram)| (*name, histogram.totals()))
    }

    pub fn count(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn set_rate(gauge: &AtomicU64, per_second: f64) {
        gauge.store(per_second.to_bits(), Ordering::Relaxed);
    }

    /// A rate `set_rate` stored.
    pub fn get_rate(gauge: &AtomicU64) -> f64 {
        f64::from_bits(gauge.load(Ordering::Relaxed))
    }

    /// Appends this app's series, labelled with tenant and app.
    pub fn render(&self, out: &mut String, tenant: &str, app: &str) {
        let labels = format!("tenant=\"{tenant}\",app=\"{app}\"");
        let counters: [(&str, &AtomicU64); 15] = [
            ("mysimbdp_records_in_total", &self.records_in),
            ("mysimbdp_records_processed_total", &self.records_processed),
            ("mysimbdp_records_committed_total", &self.records_committed),
            ("mysimbdp_late_records_total", &self.late),
            ("mysimbdp_dead_letters_total", &self.dead_letters),
            ("mysimbdp_key_mismatches_total", &self.key_mismatches),
            ("mysimbdp_filtered_out_total", &self.filtered_out),
            ("mysimbdp_rows_emitted_total", &self.rows_emitted),
            ("mysimbdp_sink_errors_total", &self.sink_errors),
            ("mysimbdp_checkpoints_total", &self.checkpoints),
            ("mysimbdp_plugin_failures_total", &self.plugin_failures),
            ("mysimbdp_quarantined_records_total", &self.quarantined),
            ("mysimbdp_future_records_total", &self.future_records),
            ("mysimbdp_over_quota_records_total", &self.over_quota),
            ("mysimbdp_cpu_throttled_ms_total", &self.cpu_throttled_ms),
        ];
        for (name, value) in counters {
            let _ = writeln!(out, "{name}{{{labels}}} {}", value.load(Ordering::Relaxed));
        }
        let gauges = [
            ("mysimbdp_input_rate", Self::get_rate(&self.input_rate)),
            ("mysimbdp_process_rate", Self::get_rate(&self.process_rate)),
            (
                "mysimbdp_watermark_seconds",
                self.watermark_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            ),
            (
                "mysimbdp_open_windows",
                self.open_windows.load(Ordering::Relaxed) as f64,
            ),
            (
                "mysimbdp_consumer_lag",
                self.lag.load(Ordering::Relaxed) as f64,
            ),
            (
                "mysimbdp_app_failed",
                self.failed.load(Ordering::Relaxed) as f64,
            ),
            (
                "mysimbdp_app_hibernating",
                self.hibernating.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, value) in gauges {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
        self.batch_duration
            .render(out, "mysimbdp_batch_duration_seconds", &labels);
        self.checkpoint_duration
            .render(out, "mysimbdp_checkpoint_duration_seconds", &labels);
        for ((_, call), histogram) in CALLS.iter().zip(&self.plugin_calls) {
            let labels = format!("{labels},call=\"{call}\"");
            histogram.render(out, "mysimbdp_plugin_call_duration_seconds", &labels);
        }
        self.enrich.render(out, &labels);
    }
}

/// HELP and TYPE lines, once per exposition.
pub fn preamble() -> &'static str {
    "# HELP mysimbdp_records_in_total Records read from the app's input topic.\n\
     # TYPE mysimbdp_records_in_total counter\n\
     # HELP mysimbdp_records_processed_total Records that reached the app's windows.\n\
     # TYPE mysimbdp_records_processed_total counter\n\
     # HELP mysimbdp_records_committed_total Records processed whose results and offsets a checkpoint committed.\n\
     # TYPE mysimbdp_records_committed_total counter\n\
     # HELP mysimbdp_late_records_total Records sent to the late topic.\n\
     # TYPE mysimbdp_late_records_total counter\n\
     # HELP mysimbdp_dead_letters_total Records sent to the dead-letter topic.\n\
     # TYPE mysimbdp_dead_letters_total counter\n\
     # HELP mysimbdp_input_rate Records read per second, over the last second.\n\
     # TYPE mysimbdp_input_rate gauge\n\
     # HELP mysimbdp_process_rate Records processed per second of busy time, over the last second.\n\
     # TYPE mysimbdp_process_rate gauge\n\
     # HELP mysimbdp_batch_duration_seconds Time to process one batch of records.\n\
     # TYPE mysimbdp_batch_duration_seconds histogram\n\
     # HELP mysimbdp_checkpoints_total Checkpoints saved (state, watermark and offsets).\n\
     # TYPE mysimbdp_checkpoints_total counter\n\
     # HELP mysimbdp_checkpoint_duration_seconds Time to make one checkpoint, sinks included.\n\
     # TYPE mysimbdp_checkpoint_duration_seconds histogram\n\
     # HELP mysimbdp_plugin_failures_total Traps, deadlines and bad output of the app.\n\
     # TYPE mysimbdp_plugin_failures_total counter\n\
     # HELP mysimbdp_quarantined_records_total Records of failed batches sent to the dead-letter topic.\n\
     # TYPE mysimbdp_quarantined_records_total counter\n\
     # HELP mysimbdp_future_records_total Records dated too far ahead of the wall clock, sent to the dead-letter topic.\n\
     # TYPE mysimbdp_future_records_total counter\n\
     # HELP mysimbdp_over_quota_records_total Records over a quota (key or record size, open windows, keys), sent to the dead-letter topic.\n\
     # TYPE mysimbdp_over_quota_records_total counter\n\
     # HELP mysimbdp_app_failed 1 when the app failed too often and was stopped.\n\
     # TYPE mysimbdp_app_failed gauge\n\
     # HELP mysimbdp_app_hibernating 1 while the app is idle with its Kafka clients closed, its input watched.\n\
     # TYPE mysimbdp_app_hibernating gauge\n\
     # HELP mysimbdp_plugin_call_duration_seconds Time spent in one call into the app.\n\
     # TYPE mysimbdp_plugin_call_duration_seconds histogram\n"
}
