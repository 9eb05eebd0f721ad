//! An app's share of the host's cores. Each app runs its guest code on its own worker thread,
//! so the kernel already shares the cores between apps thread by thread; on top of that a
//! worker runs at a lower priority than the platform's shared threads (Kafka client, Cassandra
//! driver), so that a tenant burning CPU slows itself, not the ingestion and sinks its
//! neighbours need; and an operator may cap each worker below a whole core.

use std::time::{Duration, Instant};

use rustix::time::{clock_gettime, ClockId};

/// How an app's worker shares the cores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuShare {
    /// Niceness of the worker thread (0 = the platform's own, 19 = the lowest).
    pub nice: i32,
    /// Cores the worker may use on average over a second: 1 means no cap.
    pub max_cores: f64,
}

impl Default for CpuShare {
    fn default() -> Self {
        Self {
            nice: 5,
            max_cores: 1.0,
        }
    }
}

/// How often the budget is checked: a worker over its share sleeps at most this long at once,
/// so it still answers control requests.
const PERIOD: Duration = Duration::from_millis(100);

/// The CPU the calling thread has used since it started.
fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The wall time `used` CPU is worth at `max_cores`, less the `wall` time it took: what is
/// left is slept off (at most a second at once).
fn owed(used: Duration, wall: Duration, max_cores: f64) -> Duration {
    used.div_f64(max_cores)
        .saturating_sub(wall)
        .min(PERIOD * 10)
}

/// A worker's CPU budget over a sliding period, checked between steps.
pub struct CpuBudget {
    share: CpuShare,
    since: Instant,
    used_at_start: Duration,
    /// Time spent asleep for being over the budget.
    pub throttled: Duration,
}

impl CpuBudget {
    /// Applies the share to the calling thread, the worker; a priority that cannot be set is
    /// logged, not fatal (the budget still holds).
    pub fn start(share: CpuShare) -> Self {
        let tid = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(tid), share.nice) {
            tracing::warn!(%error, nice = share.nice, "could not lower the worker's priority");
        }
        Self {
            share,
            since: Instant::now(),
            used_at_start: thread_cpu(),
            throttled: Duration::ZERO,
        }
    }

    /// How long the worker should sleep now to stay within its share (zero when within it).
    pub fn overdraft(&mut self) -> Duration {
        if self.share.max_cores >= 1.0 {
            return Duration::ZERO;
        }
        let wall = self.since.elapsed();
        if wall < PERIOD {
            return Duration::ZERO;
        }
        let now = thread_cpu();
        let used = now.saturating_sub(self.used_at_start);
        self.since = Instant::now();
        self.used_at_start = now;
        owed(used, wall, self.share.max_cores)
    }

    /// Sleeps off an overdraft, counting it.
    pub fn sleep(&mut self, overdraft: Duration) {
        std::thread::sleep(overdraft);
        self.throttled += overdraft;
        self.since = Instant::now();
        self.used_at_start = thread_cpu();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_worker_over_its_share_owes_the_difference() {
        // 100 ms of CPU in 100 ms of wall time at a quarter core: 300 ms to sleep off.
        assert_eq!(owed(100 * MS, 100 * MS, 0.25), 300 * MS);
        // Within the share, or a whole core: nothing.
        assert_eq!(owed(20 * MS, 100 * MS, 0.25), Duration::ZERO);
        assert_eq!(owed(100 * MS, 100 * MS, 1.0), Duration::ZERO);
        // A long burst is slept off a second at a time.
        assert_eq!(owed(10_000 * MS, 100 * MS, 0.1), 1_000 * MS);
    }

    #[test]
    fn the_thread_clock_counts_this_threads_work() {
        let before = thread_cpu();
        let mut n = 0u64;
        while thread_cpu().saturating_sub(before) < 5 * MS {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        assert!(n > 0 && thread_cpu() >= before + 5 * MS);
    }
}
