//! reviews-daily's analytics with one day of allowed lateness, into its own table: a review
//! still counts until the watermark is a day past its day's end. The lateness tests run it
//! beside reviews-daily on the same stream.

#[path = "../../reviews-daily/src/daily.rs"]
mod daily;

pub use daily::{Daily, DailyReviews, Review};

use mysimbdp_guest::prelude::*;

export_app! {
    aggregate: Daily,
    name: "reviews-lenient",
    table: "lenient_reviews",
    key: "product_id",
    event_time: date("review_date"),
    window: tumbling(days(1)),
    watermark_delay: days(2),
    allowed_lateness: days(1),
    emit: on_update(seconds(1)),
    state_version: 1,
}
