//! The thread that advances the engine's epoch while a plugin call runs, so that call deadlines
//! fire. Between calls it sleeps: ticking every 10 ms whether or not anything ran was two
//! fifths of an idle host's CPU.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances while a call runs: the granularity of call deadlines.
pub(super) const TICK: Duration = Duration::from_millis(10);

/// Calls running now, and whether the ticker should end.
#[derive(Default)]
struct Running {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Running {
    fn lock(&self) -> MutexGuard<'_, (usize, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct Ticker {
    thread: Option<JoinHandle<()>>,
    running: Arc<Running>,
}

impl Ticker {
    pub(super) fn start(engine: &Engine) -> std::io::Result<Self> {
        let running = Arc::new(Running::default());
        let thread = {
            let engine = engine.clone();
            let running = running.clone();
            std::thread::Builder::new()
                .name("mysimbdp-epoch".into())
                .spawn(move || loop {
                    {
                        let mut state = running.lock();
                        while state.0 == 0 && !state.1 {
                            state = running
                                .changed
                                .wait(state)
                                .unwrap_or_else(|p| p.into_inner());
                        }
                        if state.1 {
                            return;
                        }
                    }
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                })?
        };
        Ok(Self {
            thread: Some(thread),
            running,
        })
    }

    /// Marks a call as running until the guard is dropped: the epoch advances meanwhile.
    pub(super) fn call(self: &Arc<Self>) -> Calling {
        let mut state = self.running.lock();
        state.0 += 1;
        if state.0 == 1 {
            self.running.changed.notify_one();
        }
        Calling(self.clone())
    }
}

/// A plugin call in progress (see `Ticker::call`).
pub(super) struct Calling(Arc<Ticker>);

impl Drop for Calling {
    fn drop(&mut self) {
        let mut state = self.0.running.lock();
        state.0 = state.0.saturating_sub(1);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.running.lock().1 = true;
        self.running.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
