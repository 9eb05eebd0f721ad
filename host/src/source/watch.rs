//! One watch over the input of every hibernating app on this host: an app with nothing to do
//! lets go of its Kafka clients (their threads wake every second even when idle), and this
//! watch, with one client for the whole host, wakes it when its input moves on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::kafka::Wakeup;
use crate::access::KafkaAccess;

/// How often the end offsets of the watched inputs are asked for, while any is watched: the
/// most a hibernating app's first new record waits before its app starts waking up.
const ROUND: Duration = Duration::from_millis(500);

/// How long one question to Kafka may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The host's watch; cheap to clone. Its client and thread start with the first app watched.
#[derive(Clone)]
pub struct InputWatch(Arc<Shared>);

struct Shared {
    kafka: KafkaAccess,
    watched: Mutex<Watched>,
    changed: Condvar,
}

#[derive(Default)]
struct Watched {
    entries: Vec<Arc<Entry>>,
    started: bool,
}

struct Entry {
    topic: String,
    /// Each partition and the offset its app reads next: the input moved when an end passes it.
    positions: Vec<(i32, i64)>,
    wakeup: Wakeup,
    moved: AtomicBool,
}

/// An app's place in the watch; dropping it ends the watch.
pub struct Watching {
    shared: Arc<Shared>,
    entry: Arc<Entry>,
}

impl Watching {
    /// Whether the input moved past a position since the watch began.
    pub fn moved(&self) -> bool {
        self.entry.moved.load(Ordering::Acquire)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Ok(mut watched) = self.shared.watched.lock() {
            watched.entries.retain(|e| !Arc::ptr_eq(e, &self.entry));
        }
    }
}

impl InputWatch {
    /// A watch that logs in to Kafka as `kafka` (the platform's own user).
    pub fn new(kafka: KafkaAccess) -> Self {
        Self(Arc::new(Shared {
            kafka,
            watched: Mutex::new(Watched::default()),
            changed: Condvar::new(),
        }))
    }

    /// Wakes `wakeup` (and marks the watch moved) once a partition of `topic` has records at
    /// or past its position.
    pub fn watch(&self, topic: &str, positions: Vec<(i32, i64)>, wakeup: Wakeup) -> Watching {
        let entry = Arc::new(Entry {
            topic: topic.to_owned(),
            positions,
            wakeup,
            moved: AtomicBool::new(false),
        });
        if let Ok(mut watched) = self.0.watched.lock() {
            watched.entries.push(entry.clone());
            if !watched.started {
                let shared = self.0.clone();
                let spawned = std::thread::Builder::new()
                    .name("mysimbdp-watch".into())
                    .spawn(move || shared.serve());
                match spawned {
                    Ok(_) => watched.started = true,
                    Err(error) => tracing::error!(%error, "cannot start the input watch"),
                }
            }
            self.0.changed.notify_one();
        }
        Watching {
            shared: self.0.clone(),
            entry,
        }
    }
}

impl Shared {
    fn serve(self: Arc<Self>) {
        let client: BaseConsumer = match self
            .kafka
            .client_config()
            .set("client.id", "mysimbdp-input-watch")
            .set("isolation.level", "read_committed")
            .create()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot create the input watch's Kafka client");
                self.wake_all();
                return;
            }
        };
        // Logged when asking starts failing and when it answers again, not every round.
        let mut failing = false;
        loop {
            let entries = {
                let Ok(mut watched) = self.watched.lock() else {
                    return;
                };
                while watched.entries.is_empty() {
                    watched = match self.changed.wait(watched) {
                        Ok(w) => w,
                        Err(_) => return,
                    };
                }
                watched.entries.clone()
            };
            match end_offsets(&client, &entries) {
                Ok(ends) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("input watch: Kafka answers again");
                    }
                    for entry in &entries {
                        let moved = entry.positions.iter().any(|(partition, position)| {
                            ends.iter().any(|(t, p, end)| {
                                t == &entry.topic && p == partition && end > position
                            })
                        });
                        if moved && !entry.moved.swap(true, Ordering::AcqRel) {
                            entry.wakeup.wake();
                        }
                    }
                }
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "input watch: asking for end offsets (retrying)");
                }
                Err(_) => {}
            }
            if let Ok(watched) = self.watched.lock() {
                let _ = self.changed.wait_timeout(watched, ROUND);
            }
        }
    }

    /// Without a client no watch can tell: every app watched wakes and reads for itself, and
    /// the next watch tries again.
    fn wake_all(&self) {
        if let Ok(mut watched) = self.watched.lock() {
            watched.started = false;
            for entry in &watched.entries {
                entry.moved.store(true, Ordering::Release);
                entry.wakeup.wake();
            }
        }
    }
}

/// The end offset of every watched partition, in one question per broker.
fn end_offsets(
    client: &BaseConsumer,
    entries: &[Arc<Entry>],
) -> Result<Vec<(String, i32, i64)>, rdkafka::error::KafkaError> {
    let mut list = TopicPartitionList::new();
    for entry in entries {
        for (partition, _) in &entry.positions {
            if list.find_partition(&entry.topic, *partition).is_none() {
                list.add_partition_offset(&entry.topic, *partition, Offset::End)?;
            }
        }
    }
    let answered = client.offsets_for_times(list, ASK_TIMEOUT)?;
    Ok(answered
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(end) => Some((e.topic().to_owned(), e.partition(), end)),
            _ => None,
        })
        .collect())
}
