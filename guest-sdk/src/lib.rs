//! The guest side of mysimbdp: everything a tenant needs to turn a reducer into a Wasm component
//! of the `mysimbdp:tenant@0.2.0` contract.
//!
//! A tenant writes three things and one macro call:
//!
//! ```ignore
//! use mysimbdp_guest::prelude::*;
//!
//! record! { pub struct Review { star_rating: i64, helpful_votes: i64 } }
//! record! { pub struct Daily { avg_star_rating: f64, number_of_reviews: i64 } }
//!
//! state! { pub struct Acc { n: i64, stars: i64 } }
//!
//! impl Aggregate for Acc {
//!     type Input = Review;
//!     type Output = Daily;
//!     fn add(&mut self, r: &Review) { self.n += 1; self.stars += r.star_rating; }
//!     fn merge(&mut self, o: Self) { self.n += o.n; self.stars += o.stars; }
//!     fn finish(&self) -> Daily { /* ... */ }
//! }
//!
//! export_app! {
//!     aggregate: Acc,
//!     name: "reviews-daily",
//!     table: "aggregated_reviews",
//!     key: "product_id",
//!     event_time: date("review_date"),
//!     window: tumbling(days(1)),
//!     watermark_delay: days(2),
//!     allowed_lateness: 0,
//!     emit: on_update(seconds(1)),
//!     state_version: 1,
//! }
//! ```
//!
//! Everything else (Kafka, decoding, keys, windows, watermarks, state, sinks) is the platform's.

extern crate alloc;
extern crate self as mysimbdp_guest;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.2",
        world: "tenant-app",
        pub_export_macro: true,
        default_bindings_module: "mysimbdp_guest::bindings",
        runtime_path: "mysimbdp_guest::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

mod record;
mod runtime;
mod settings;

pub use record::{FieldValue, Fields, Record, Timestamp};
pub use runtime::Slots;
pub use settings::{
    days, dsl as settings_dsl, hours, minutes, seconds, EmitMode, EventTime, IntoSetting, Settings,
    Window,
};

#[doc(hidden)]
pub use alloc::{format as __format, string::String as __String, vec as __vec, vec::Vec as __Vec};

/// The contract's own types, for apps that want to look at a raw batch.
pub mod types {
    pub use crate::bindings::mysimbdp::tenant::types::*;
}

#[doc(hidden)]
pub use serde as __serde;
pub use serde::{Deserialize, Serialize};

/// Declares an accumulator: a struct the platform can snapshot at checkpoints and hand to the
/// next version of the app, so it derives `Default`, `Serialize` and `Deserialize`.
#[macro_export]
macro_rules! state {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($fvis:vis $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default, $crate::Serialize, $crate::Deserialize)]
        #[serde(crate = "mysimbdp_guest::__serde")]
        $vis struct $name { $($fvis $field: $ty),* }
    };
}

/// A per-window reducer: the one piece of logic a tenant app is made of.
///
/// The platform keeps one accumulator per (key, window), created with `Default`, and calls
/// `add` for each input row of that key and window. `merge` folds two partial accumulators
/// (session windows that grow together); `finish` makes the output row.
pub trait Aggregate: Default + Serialize + for<'de> Deserialize<'de> {
    /// The input fields the app reads; the platform decodes only these.
    type Input: Record;
    /// The output columns, written to the app's Cassandra table and results topic.
    type Output: Record;

    fn add(&mut self, input: &Self::Input);
    fn merge(&mut self, other: Self);
    fn finish(&self) -> Self::Output;
}

/// Everything an app file needs in one import.
pub mod prelude {
    pub use crate::{
        days, export_app, hours, minutes, record, seconds, state, Aggregate, Timestamp,
    };
}
