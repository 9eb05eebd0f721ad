//! The thread that advances the engine's epoch while a plugin call runs, so that call deadlines
//! fire. Between calls it sleeps: ticking every 10 ms whether or not anything ran was two
//! fifths of an idle host's CPU.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances while a call runs: the granularity of call deadlines.
pub(super) const TICK: Duration = Duration::from_millis(10);

/// What the ticker thread waits on.
#[derive(Default)]
struct State {
    /// Plugin calls running now, on any thread.
    calls: usize,
    /// The engine is gone: the thread ends.
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) struct Ticker {
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Ticker {
    pub(super) fn start(engine: &Engine) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread = {
            let engine = engine.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("mysimbdp-epoch".into())
                .spawn(move || loop {
                    {
                        let mut state = shared.lock();
                        while state.calls == 0 && !state.stopping {
                            state = shared
                                .changed
                                .wait(state)
                                .unwrap_or_else(|p| p.into_inner());
                        }
                        if state.stopping {
                            return;
                        }
                    }
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                })?
        };
        Ok(Self {
            thread: Some(thread),
            shared,
        })
    }

    /// Marks a call as running until the guard is dropped: the epoch advances meanwhile.
    pub(super) fn call(&self) -> Calling<'_> {
        let mut state = self.shared.lock();
        state.calls += 1;
        if state.calls == 1 {
            self.shared.changed.notify_one();
        }
        Calling(self)
    }
}

/// A plugin call in progress (see `Ticker::call`).
pub(super) struct Calling<'a>(&'a Ticker);

impl Drop for Calling<'_> {
    fn drop(&mut self) {
        let mut state = self.0.shared.lock();
        state.calls = state.calls.saturating_sub(1);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
