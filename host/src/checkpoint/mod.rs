//! Checkpoints: per app and input partition, the open windows' guest state, the partition's
//! clock and the offset to resume from, saved together so that a restart, a rebalance or a
//! rebuilt instance resumes exactly where the saved results left off.
//!
//! The commit protocol (see `docs/architecture.md` and `app::checkpointing`): the sinks have the
//! step's output, each partition's checkpoint is saved as a new version, and then the app's
//! Kafka transaction commits the outputs with the input offsets, whose metadata names that
//! version. Resuming takes the version Kafka's committed offset names, so a crash before the
//! commit replays the attempt and a crash after it re-reads nothing.

mod crash;
mod geometry;
mod store;

pub use crash::{crash_point, CrashPoint, CRASH_AT_ENV};
pub use geometry::{Difference, Geometry};
pub use store::{CheckpointStore, KEYSPACE};

use crate::time::EventTime;
use crate::window::Window;

/// How an app's results survive a crash, chosen per app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// The report's choice: offsets are committed as records are read; a crash loses the open
    /// windows' state.
    AtMostOnce,
    /// State and offsets are checkpointed; after a crash the results topic may repeat updates.
    AtLeastOnce,
    /// As at-least-once, and the results, late and dead-letter topics are written in Kafka
    /// transactions, so a `read_committed` reader never sees an update of an aborted attempt.
    #[default]
    ExactlyOnce,
}

impl Delivery {
    /// Whether window state and offsets are saved in Cassandra.
    pub fn checkpoints(self) -> bool {
        self != Delivery::AtMostOnce
    }

    /// Whether the Kafka outputs are transactional.
    pub fn transactional(self) -> bool {
        self == Delivery::ExactlyOnce
    }
}

/// One checkpoint of an app, the same for all its partitions: unique and growing, so that
/// concurrent or replayed saves never share one. Exactly-once apps name it in the metadata of
/// the input offsets they commit in their Kafka transaction, which makes it the checkpoint
/// that transaction committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(i64);

/// How an epoch is written in a committed offset's metadata.
const EPOCH_METADATA: &str = "mysimbdp-epoch=";

impl Epoch {
    /// A new epoch at wall-clock time `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self((now_ms << 16) | i64::from(store::rand_u16()))
    }

    pub fn from_i64(value: i64) -> Self {
        Self(value)
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// The metadata string committed with an input offset.
    pub fn to_metadata(self) -> String {
        format!("{EPOCH_METADATA}{}", self.0)
    }

    /// The epoch a committed offset's metadata names, if it names one.
    pub fn from_metadata(metadata: &str) -> Option<Self> {
        metadata
            .strip_prefix(EPOCH_METADATA)?
            .parse()
            .ok()
            .map(Self)
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which saved checkpoint of a partition to resume from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The newest: every saved checkpoint of an at-least-once app is committed.
    Newest,
    /// The one an exactly-once app's Kafka transaction committed with its input offsets.
    Committed(Epoch),
    /// An exactly-once app whose group has no committed epoch: only a checkpoint written by an
    /// earlier release (which saved after committing), never one whose transaction may have
    /// been aborted.
    Legacy,
}

/// The build that wrote a checkpoint: a restart with another build resumes from it only under
/// the hot-swap rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBy {
    pub version: String,
    pub state_version: u32,
    /// Key field, window and event time: what the open windows' meaning depends on.
    pub geometry: String,
}

/// One open window as saved: its key, its extent and the guest's bytes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedWindow {
    pub key: String,
    pub window: Window,
    pub state: Vec<u8>,
}

/// Everything needed to resume one input partition of one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCheckpoint {
    pub partition: i32,
    /// The first offset not covered by the saved state.
    pub next_offset: i64,
    /// The newest event time seen on the partition.
    pub clock: EventTime,
    /// The app's watermark when saved: windows it closed stay closed.
    pub watermark: EventTime,
    pub saved_by: SavedBy,
    pub windows: Vec<SavedWindow>,
}

/// A checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint of partition {partition} is damaged: {reason}")]
    Damaged { partition: i32, reason: String },
    #[error(transparent)]
    Cassandra(#[from] crate::sink::cassandra::CassandraError),
}

const MAGIC: &[u8; 4] = b"MSW1";

/// The windows as one byte string: a magic tag, then per window the key, start, end and state,
/// lengths as little-endian u32.
pub fn encode_windows(windows: &[SavedWindow]) -> Vec<u8> {
    let size: usize = windows
        .iter()
        .map(|w| 24 + w.key.len() + w.state.len())
        .sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(windows.len() as u32).to_le_bytes());
    for w in windows {
        out.extend_from_slice(&(w.key.len() as u32).to_le_bytes());
        out.extend_from_slice(w.key.as_bytes());
        out.extend_from_slice(&w.window.start.millis().to_le_bytes());
        out.extend_from_slice(&w.window.end.millis().to_le_bytes());
        out.extend_from_slice(&(w.state.len() as u32).to_le_bytes());
        out.extend_from_slice(&w.state);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("{} bytes missing at the end", n - self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn i64(&mut self) -> Result<i64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(a))
    }
}

/// The inverse of [`encode_windows`]; anything that does not parse is an error, never a guess.
pub fn decode_windows(bytes: &[u8]) -> Result<Vec<SavedWindow>, String> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return Err("unknown format tag".into());
    }
    let count = r.u32()?;
    let mut windows = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let len = r.u32()?;
        let key = std::str::from_utf8(r.take(len)?)
            .map_err(|e| format!("a key is not UTF-8: {e}"))?
            .to_owned();
        let start = EventTime::from_millis(r.i64()?);
        let end = EventTime::from_millis(r.i64()?);
        let len = r.u32()?;
        let state = r.take(len)?.to_vec();
        windows.push(SavedWindow {
            key,
            window: Window { start, end },
            state,
        });
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes left over", r.0.len()));
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(key: &str, day: i64, state: &[u8]) -> SavedWindow {
        let d = 86_400_000;
        SavedWindow {
            key: key.into(),
            window: Window {
                start: EventTime::from_millis(day * d),
                end: EventTime::from_millis((day + 1) * d),
            },
            state: state.to_vec(),
        }
    }

    #[test]
    fn windows_survive_encoding() {
        let windows = vec![
            window("B00X", 17_000, &[1, 2, 3]),
            window("é", -3, &[]),
            window("", 0, &[0; 300]),
        ];
        let bytes = encode_windows(&windows);
        assert_eq!(decode_windows(&bytes).unwrap(), windows);
        assert_eq!(decode_windows(&encode_windows(&[])).unwrap(), vec![]);
    }

    #[test]
    fn an_epoch_survives_the_offset_metadata() {
        let epoch = Epoch::new(1_700_000_000_000);
        assert_eq!(Epoch::from_metadata(&epoch.to_metadata()), Some(epoch));
        assert_eq!(Epoch::from_metadata(""), None);
        assert_eq!(Epoch::from_metadata("something else"), None);
        assert!(Epoch::new(1_700_000_000_001) > Epoch::new(1_700_000_000_000));
    }

    #[test]
    fn damage_is_refused() {
        let bytes = encode_windows(&[window("k", 1, &[9, 9])]);
        let err = decode_windows(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_windows(&longer).unwrap_err().contains("left over"));
        assert!(decode_windows(b"XXXX").unwrap_err().contains("tag"));
    }
}
