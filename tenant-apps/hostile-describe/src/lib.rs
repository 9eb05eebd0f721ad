//! A valid component of the contract except that its manifest takes an hour to write before it
//! answers: loading it must fail at once with the reason, not hold up the platform's start.

use mysimbdp_guest::prelude::*;

mod ticks;

pub use ticks::{Count, Tick, Ticks};

/// The table's name, after an hour's sleep.
fn slow_table() -> &'static str {
    std::thread::sleep(std::time::Duration::from_secs(3600));
    "ticks"
}

export_app! {
    aggregate: Ticks,
    name: "hostile-describe",
    table: slow_table(),
    key: "key",
    window: tumbling(minutes(1)),
    emit: on_close(),
}
