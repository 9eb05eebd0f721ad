//! The report's tenantstreamapp: for each product and day of `review_date`, the average star
//! rating (a true average, not the report's integer), the helpful and total votes, and the number
//! of reviews. The platform decodes, keys, windows and stores; this file is only the analytics.

mod daily;

pub use daily::{Daily, DailyReviews, Review};

use mysimbdp_guest::prelude::*;

export_app! {
    aggregate: Daily,
    name: "reviews-daily",
    table: "aggregated_reviews",
    key: "product_id",
    event_time: date("review_date"),
    window: tumbling(days(1)),
    watermark_delay: days(2),
    allowed_lateness: 0,
    emit: on_update(seconds(1)),
    state_version: 1,
}
