//! Ticks counted per key and minute of an epoch-millis field, `at`: a plain app whose input is
//! where the hostility lies (epochs near the ends of `i64`, which the platform must refuse as bad
//! input without overflowing a window).

#[path = "../../hostile-describe/src/ticks.rs"]
mod ticks;

pub use ticks::{Count, Tick, Ticks};

use mysimbdp_guest::prelude::*;

export_app! {
    aggregate: Ticks,
    name: "ticks-epoch",
    table: "ticks",
    key: "key",
    event_time: epoch_millis("at"),
    window: tumbling(minutes(1)),
    emit: on_close(),
}
