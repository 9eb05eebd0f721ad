//! A valid component of the contract except that `describe()` sleeps for an hour before it
//! answers: loading it must fail at once with the reason, not hold up the platform's start.

use mysimbdp_guest::prelude::*;

record! {
    pub struct Tick { n: i64 }
}

record! {
    pub struct Count { ticks: i64 }
}

state! {
    pub struct Ticks { ticks: i64 }
}

impl Aggregate for Ticks {
    type Input = Tick;
    type Output = Count;

    fn add(&mut self, _: &Tick) {
        self.ticks += 1;
    }

    fn merge(&mut self, other: Ticks) {
        self.ticks += other.ticks;
    }

    fn finish(&self) -> Count {
        Count { ticks: self.ticks }
    }
}

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
