//! One thread serves the delivery reports and errors of every app's producer, instead of a
//! thread per app. rdkafka's `ThreadedProducer` polls in 100 ms rounds whose last millisecond
//! spins (its remaining time rounds down to a 0 ms wait): about half a percent of a core per
//! app, busy or idle. Producers here report only failed deliveries, so a round is cheap.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::producer::{BaseProducer, ProducerContext};

/// How often every producer's queue is served. A failed delivery waits this long to be counted
/// here, but no longer than the next flush, which serves the queue itself: a checkpoint never
/// passes a failed delivery. At 100 ms the rounds cost an idle host 0.004% of a core per app.
const ROUND: Duration = Duration::from_secs(1);

type Registered = Box<dyn Fn() -> bool + Send>;

/// The producers served, each as a function that serves it once and says whether it is alive.
fn producers() -> &'static Mutex<Vec<Registered>> {
    static PRODUCERS: OnceLock<Mutex<Vec<Registered>>> = OnceLock::new();
    PRODUCERS.get_or_init(|| {
        std::thread::Builder::new()
            .name("mysimbdp-deliveries".into())
            .spawn(serve)
            .ok();
        Mutex::new(Vec::new())
    })
}

/// Serves `producer` until its last owner drops it.
pub fn watch<C: ProducerContext + 'static>(producer: &Arc<BaseProducer<C>>) {
    let weak: Weak<BaseProducer<C>> = Arc::downgrade(producer);
    let serve_once = move || match weak.upgrade() {
        Some(producer) => {
            producer.poll(Duration::ZERO);
            true
        }
        None => false,
    };
    if let Ok(mut list) = producers().lock() {
        list.push(Box::new(serve_once));
    }
}

fn serve() {
    loop {
        std::thread::sleep(ROUND);
        if let Ok(mut list) = producers().lock() {
            list.retain(|serve_once| serve_once());
        }
    }
}
