//! What the enrich stage counts per app: calls, records sent, batch sizes, latency, errors,
//! retries, and the breaker's state (also shown by `app status`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::admin::metrics::Histogram;

/// Where a circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// The service failed repeatedly: calls wait.
    Open,
    /// One probe call decides.
    HalfOpen,
}

/// Upper bounds of the batch-size buckets, in records.
const SIZES: [u64; 8] = [1, 4, 16, 64, 256, 1024, 4096, 16384];

/// One app's enrichment counters; empty (and not rendered) when the app calls no service.
#[derive(Default)]
pub struct EnrichMetrics {
    /// The service called; a hot swap may point the app at another.
    service: Mutex<Option<String>>,
    calls: AtomicU64,
    records: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    /// Records sent to the dead letters for a failed enrichment.
    pub dead_lettered: AtomicU64,
    /// Records that went on with the declared defaults.
    pub defaulted: AtomicU64,
    breaker: AtomicU8,
    sizes: [AtomicU64; SIZES.len()],
    pub latency: Histogram,
}

/// What `app status` shows of the enrich stage.
#[derive(Debug, Clone, Serialize)]
pub struct EnrichStatus {
    pub service: String,
    pub breaker: BreakerState,
    pub calls: u64,
    pub errors: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    pub defaulted: u64,
}

impl EnrichMetrics {
    pub fn set_service(&self, name: &str) {
        if let Ok(mut service) = self.service.lock() {
            *service = Some(name.to_owned());
        }
    }

    /// The app calls no service any more (a hot swap to a build without `[enrich]`).
    pub fn clear_service(&self) {
        if let Ok(mut service) = self.service.lock() {
            *service = None;
        }
    }

    fn service(&self) -> Option<String> {
        self.service.lock().ok().and_then(|s| s.clone())
    }

    /// One call with `rows` records.
    pub fn calls(&self, rows: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(rows as u64, Ordering::Relaxed);
        if let Some(i) = SIZES.iter().position(|b| rows as u64 <= *b) {
            self.sizes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_breaker(&self, state: BreakerState) {
        self.breaker.store(state as u8, Ordering::Relaxed);
    }

    pub fn breaker(&self) -> BreakerState {
        match self.breaker.load(Ordering::Relaxed) {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    /// The stage's state for `app status`, when the app calls a service.
    pub fn status(&self) -> Option<EnrichStatus> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Some(EnrichStatus {
            service: self.service()?,
            breaker: self.breaker(),
            calls: get(&self.calls),
            errors: get(&self.errors),
            retries: get(&self.retries),
            dead_lettered: get(&self.dead_lettered),
            defaulted: get(&self.defaulted),
        })
    }

    /// Appends the stage's series (labelled with the service too), when the app calls one.
    pub fn render(&self, out: &mut String, labels: &str) {
        let Some(service) = self.service() else {
            return;
        };
        let labels = format!("{labels},service=\"{service}\"");
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters = [
            ("mysimbdp_enrich_calls_total", get(&self.calls)),
            ("mysimbdp_enrich_records_total", get(&self.records)),
            ("mysimbdp_enrich_errors_total", get(&self.errors)),
            ("mysimbdp_enrich_retries_total", get(&self.retries)),
            (
                "mysimbdp_enrich_dead_lettered_total",
                get(&self.dead_lettered),
            ),
            ("mysimbdp_enrich_defaulted_total", get(&self.defaulted)),
        ];
        for (name, value) in counters {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
        let _ = writeln!(
            out,
            "mysimbdp_enrich_breaker_open{{{labels}}} {}",
            u8::from(self.breaker() != BreakerState::Closed)
        );
        let mut cumulative = 0;
        for (bound, count) in SIZES.iter().zip(&self.sizes) {
            cumulative += get(count);
            let _ = writeln!(
                out,
                "mysimbdp_enrich_batch_size_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let calls = get(&self.calls);
        let _ = writeln!(
            out,
            "mysimbdp_enrich_batch_size_bucket{{{labels},le=\"+Inf\"}} {calls}"
        );
        let _ = writeln!(
            out,
            "mysimbdp_enrich_batch_size_sum{{{labels}}} {}",
            get(&self.records)
        );
        let _ = writeln!(out, "mysimbdp_enrich_batch_size_count{{{labels}}} {calls}");
        self.latency
            .render(out, "mysimbdp_enrich_call_duration_seconds", &labels);
    }
}
