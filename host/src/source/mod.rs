//! Where records come from: the Kafka consumer, and the decoder that turns a message's bytes
//! into just the columns its app declared.

mod decode;
mod end_offsets;
mod fetch_queue;
pub mod kafka;
mod partitions;
mod watch;

pub use decode::{DecodeError, Decoded, Decoder};
pub use partitions::{
    BatchRanges, Filled, Intake, Lag, Offsets, PartitionReader, Quarantined, ReadError,
};
pub use watch::{InputWatch, Watching};
