//! The input's end offsets for the lag an app shows. The broker is asked on a short-lived
//! thread of its own: a query waits behind the consumer's long-poll fetch on the same
//! connection (up to `fetch.wait.max.ms`), and on the worker's thread it held every record of
//! the app up for as long. The consumer's own fetch answers carry the end offset too, fresher
//! while it fetches, but not while a partition is paused or its queue is full: the larger of
//! the two is used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::Consumer;

use super::kafka::{known_end_offset, AppConsumer};

/// How long one partition's query may take before its old figure is kept.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// End offsets per partition of one app's input, as last read.
#[derive(Default)]
pub struct EndOffsets {
    read: Arc<Mutex<HashMap<i32, i64>>>,
    query: Option<JoinHandle<()>>,
    /// Set when the reader goes: the query asks about no further partition.
    stop: Arc<AtomicBool>,
}

impl EndOffsets {
    /// Asks the broker for `partitions`' end offsets unless the last question is still open;
    /// the answers are there for a later [`EndOffsets::of`].
    pub fn refresh(&mut self, consumer: &Arc<AppConsumer>, topic: &str, partitions: &[i32]) {
        if self.query.as_ref().is_some_and(|q| !q.is_finished()) {
            return;
        }
        let (partitions, consumer, topic, read, stop) = (
            partitions.to_vec(),
            Arc::downgrade(consumer),
            topic.to_owned(),
            self.read.clone(),
            self.stop.clone(),
        );
        self.query = std::thread::Builder::new()
            .name("mysimbdp-lag".into())
            .spawn(move || {
                for partition in partitions {
                    // Only while the app still reads: a stopped app's consumer is not kept alive.
                    let Some(consumer) =
                        consumer.upgrade().filter(|_| !stop.load(Ordering::Relaxed))
                    else {
                        return;
                    };
                    if let Ok((_, high)) =
                        consumer.fetch_watermarks(&topic, partition, QUERY_TIMEOUT)
                    {
                        if let Ok(mut read) = read.lock() {
                            read.insert(partition, high);
                        }
                    }
                }
            })
            .ok();
    }

    /// The end offset of `partition` as best known, `None` before any answer.
    pub fn of(&self, consumer: &AppConsumer, topic: &str, partition: i32) -> Option<i64> {
        let asked = self
            .read
            .lock()
            .ok()
            .and_then(|r| r.get(&partition).copied());
        let fetched = known_end_offset(consumer, topic, partition);
        asked.max(fetched)
    }
}

impl Drop for EndOffsets {
    /// The query's thread may hold the consumer for one call: it ends first, so that the
    /// consumer closes with its reader.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(query) = self.query.take() {
            let _ = query.join();
        }
    }
}
