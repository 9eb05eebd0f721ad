//! The one retry policy for the services an app writes to: a transient failure is tried again
//! with a growing pause (at most `MAX_PAUSE`) for up to the configured patience, and shows in
//! the app's status and metrics meanwhile; a failure that retrying cannot mend, or an outage
//! longer than the patience, is returned and stops the app with the reason.

use std::fmt::Display;
use std::time::{Duration, Instant};

use super::cassandra::CassandraError;
use crate::source::kafka::KafkaError;

/// Whether trying the same request again may succeed.
pub trait Transient: Display {
    fn transient(&self) -> bool;
}

impl Transient for CassandraError {
    fn transient(&self) -> bool {
        self.transient
    }
}

impl Transient for KafkaError {
    fn transient(&self) -> bool {
        self.retriable()
    }
}

/// The longest pause between two tries.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Who hears about an outage while it is waited out: the app's status and metrics.
pub trait Watcher: Send + Sync {
    /// What the app waits for now, in words; `None` once it is over.
    fn waiting(&self, what: Option<String>);
    /// One more failed try.
    fn retried(&self);
}

/// One outage of one step, as the step lives through it.
pub struct Outage<'a> {
    watcher: &'a dyn Watcher,
    patience: Duration,
    since: Option<Instant>,
    attempts: u32,
}

impl<'a> Outage<'a> {
    pub fn new(watcher: &'a dyn Watcher, patience: Duration) -> Self {
        Self {
            watcher,
            patience,
            since: None,
            attempts: 0,
        }
    }

    /// Waits before the next try and returns true, or returns false when trying again cannot
    /// help (the failure is not transient, or the patience is spent).
    pub async fn wait(&mut self, error: &impl Transient) -> bool {
        let since = *self.since.get_or_insert_with(Instant::now);
        if !error.transient() || since.elapsed() >= self.patience {
            return false;
        }
        self.attempts += 1;
        self.watcher.retried();
        tracing::warn!(%error, attempt = self.attempts, "a sink failed; retrying");
        self.watcher.waiting(Some(format!(
            "{error}; retrying for {} s (attempt {}, gives up after {} s)",
            since.elapsed().as_secs(),
            self.attempts,
            self.patience.as_secs()
        )));
        let pause = Duration::from_millis(200u64 << self.attempts.min(10)).min(MAX_PAUSE);
        tokio::time::sleep(pause).await;
        true
    }

    /// Waits before the next try, or gives the error back when it cannot help.
    pub async fn back_off<E: Transient>(&mut self, error: E) -> Result<(), E> {
        if self.wait(&error).await {
            Ok(())
        } else {
            Err(error)
        }
    }

    /// Runs `step` until it succeeds or gives up.
    pub async fn patiently<T, E, F, Fut>(mut self, mut step: F) -> Result<T, E>
    where
        E: Transient,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        loop {
            match step().await {
                Ok(done) => {
                    self.over();
                    return Ok(done);
                }
                Err(error) => self.back_off(error).await?,
            }
        }
    }

    /// The step went through: the status stops saying it waits.
    pub fn over(self) {
        if self.since.is_some() {
            tracing::info!(attempts = self.attempts, "the sink answers again");
            self.watcher.waiting(None);
        }
    }
}
