//! A count of records per key and window: the analytics of the apps whose hostility lies in
//! what they declare, shared by `hostile-describe` and `hostile-window`.

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
