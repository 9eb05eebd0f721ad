//! A valid component of the contract except for what it declares: a 30-day window sliding by
//! 1 ms, a typo for 1 s. Each record would fall in 2.6 billion windows, which the platform
//! enumerates in host code, outside the sandbox's limits: it must refuse the app at load.

#[path = "../../hostile-describe/src/ticks.rs"]
mod ticks;

pub use ticks::{Count, Tick, Ticks};

use mysimbdp_guest::prelude::*;

export_app! {
    aggregate: Ticks,
    name: "hostile-window",
    table: "ticks",
    key: "key",
    window: sliding(days(30), 1),
    emit: on_close(),
}
