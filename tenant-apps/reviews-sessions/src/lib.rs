//! reviews-daily's analytics over sessions instead of days: per product, reviews less than
//! three days apart form one session (a burst of attention), whose row says how many reviews it
//! had and how they rated. A review that falls between two sessions joins them into one.

#[path = "../../reviews-daily/src/daily.rs"]
mod daily;

pub use daily::{Daily, DailyReviews, Review};

use mysimbdp_guest::prelude::*;

export_app! {
    aggregate: Daily,
    name: "reviews-sessions",
    table: "review_sessions",
    key: "product_id",
    event_time: date("review_date"),
    window: session(days(3)),
    watermark_delay: days(2),
    allowed_lateness: 0,
    emit: on_update(seconds(1)),
    state_version: 1,
}
