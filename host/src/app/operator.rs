//! The seam between the reader and the stage that turns records into results, in the spirit of
//! Arroyo's operator: records in, a batch boundary, and hooks with defaults for time, state and
//! the end of input. The worker drives it; the processor is the one implementation today.

use std::time::Instant;

use super::processor::{Message, SwapError};
use crate::checkpoint::PartitionCheckpoint;
use crate::plugin::PluginError;
use crate::sink::Output;
use crate::source::Offsets;
use crate::time::EventTime;

/// A stage of an app between the partition reader and the sinks.
pub trait Operator {
    /// One record in; what it produces comes out at the batch boundary (`flush`), except
    /// records refused at once (late, malformed), which go to `out` here.
    fn push(&mut self, message: &Message<'_>, now: Instant, out: &mut Output);

    /// A record the supervisor set aside: it goes to the dead letters with the reason.
    fn quarantine(&mut self, message: &Message<'_>, reason: String, out: &mut Output);

    /// How far a partition's records have come in event time: the reader reads the slowest
    /// partition first.
    fn clock(&self, partition: i32) -> EventTime;

    /// How far ahead of the slowest partition's clock another partition may be read while the
    /// slowest has nothing to read yet (in ms of event time): records that close are within
    /// the app's tolerance of disorder and cannot make the slowest one's records late.
    fn read_ahead_ms(&self) -> u64 {
        0
    }

    /// The batch boundary: everything pushed since the last one is processed.
    fn flush(&mut self, out: &mut Output) -> Result<(), PluginError>;

    /// Records pushed and not yet flushed.
    fn pending(&self) -> usize;

    /// Time passes: watermarks advance, windows close, updates go out when due.
    fn tick(&mut self, _now: Instant, _out: &mut Output) -> Result<(), PluginError> {
        Ok(())
    }

    /// Emits what changed since the last update: a checkpoint covers only what the sinks have.
    fn emit_changed(&mut self, _out: &mut Output) -> Result<(), PluginError> {
        Ok(())
    }

    /// This host reads `partition` from now on: it holds the watermark back from the start.
    fn assign(&mut self, _partition: i32, _now: Instant) {}

    /// Another host reads `partition` now: its state here is dropped, unemitted.
    fn revoke(&mut self, _partition: i32) -> Result<(), PluginError> {
        Ok(())
    }

    /// Everything needed to resume each partition in `offsets` from there.
    fn snapshot(&mut self, offsets: &Offsets) -> Result<Vec<PartitionCheckpoint>, PluginError>;

    /// Takes a partition's saved state back. Saved windows of an incompatible build are
    /// refused, or with `reset_state` dropped (the clock and watermark still resume); returns
    /// how many windows came back.
    fn restore(
        &mut self,
        checkpoint: &PartitionCheckpoint,
        reset_state: bool,
        now: Instant,
    ) -> Result<usize, SwapError>;

    /// The end of input: every open window is emitted as final.
    fn finish(&mut self, _out: &mut Output) -> Result<(), PluginError> {
        Ok(())
    }
}
