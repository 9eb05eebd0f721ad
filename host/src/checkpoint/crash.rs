//! Crash points, for tests of the commit protocol only: `MYSIMBDP_CRASH_AT=point[@n][,...]`
//! read once at start makes the process abort (as a power cut would: no cleanup, no flush) the
//! n-th time (default: the first) it passes the named point. Unset, as in production, a point
//! costs one relaxed load.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The points of the commit protocol, in the order one checkpoint passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The sinks have the step's output (Cassandra upserts acknowledged, Kafka records sent in
    /// the open transaction); no checkpoint is saved yet.
    BeforeCheckpoint,
    /// One partition's checkpoint is saved, the others are not.
    MidCheckpoint,
    /// Every partition's checkpoint is saved; the Kafka transaction is not committed.
    BeforeCommit,
    /// The Kafka transaction (outputs and input offsets) is committed; older checkpoints are
    /// not pruned yet.
    AfterCommit,
    /// Partitions were just assigned to this host, before they are resumed.
    Rebalance,
}

impl CrashPoint {
    const ALL: [CrashPoint; 5] = [
        CrashPoint::BeforeCheckpoint,
        CrashPoint::MidCheckpoint,
        CrashPoint::BeforeCommit,
        CrashPoint::AfterCommit,
        CrashPoint::Rebalance,
    ];

    /// The name used in `MYSIMBDP_CRASH_AT`.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::BeforeCheckpoint => "before-checkpoint",
            CrashPoint::MidCheckpoint => "mid-checkpoint",
            CrashPoint::BeforeCommit => "before-commit",
            CrashPoint::AfterCommit => "after-commit",
            CrashPoint::Rebalance => "rebalance",
        }
    }
}

/// The environment variable that arms crash points.
pub const CRASH_AT_ENV: &str = "MYSIMBDP_CRASH_AT";

struct Armed {
    point: CrashPoint,
    at: u32,
    passed: AtomicU32,
}

fn armed() -> &'static [Armed] {
    static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var(CRASH_AT_ENV)
            .map(|spec| parse(&spec))
            .unwrap_or_default()
    })
}

fn parse(spec: &str) -> Vec<Armed> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .filter_map(|item| {
            let (name, at) = item.trim().split_once('@').unwrap_or((item.trim(), "1"));
            let point = CrashPoint::ALL.into_iter().find(|p| p.name() == name);
            let at = at.parse::<u32>().ok().filter(|n| *n > 0);
            match (point, at) {
                (Some(point), Some(at)) => Some(Armed {
                    point,
                    at,
                    passed: AtomicU32::new(0),
                }),
                _ => {
                    eprintln!("{CRASH_AT_ENV}: `{item}` is not a crash point (point[@n]); ignored");
                    None
                }
            }
        })
        .collect()
}

/// Aborts the process here if `point` is armed and this is its n-th pass.
pub fn crash_point(point: CrashPoint) {
    for armed in armed().iter().filter(|a| a.point == point) {
        if armed.passed.fetch_add(1, Ordering::Relaxed) + 1 == armed.at {
            eprintln!(
                "crash point {} reached (pass {}): aborting",
                point.name(),
                armed.at
            );
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_points_and_passes() {
        let armed = parse("before-commit@3, rebalance,nonsense,after-commit@0");
        let got: Vec<(CrashPoint, u32)> = armed.iter().map(|a| (a.point, a.at)).collect();
        assert_eq!(
            got,
            vec![(CrashPoint::BeforeCommit, 3), (CrashPoint::Rebalance, 1)]
        );
    }
}
