//! The report's first history analytic: per product over all of its stored days, the average
//! star rating weighted by the number of reviews (not an average of daily averages), the total
//! helpful and total votes, and the number of reviews. Run by `mysimbdp batch` over the stream's
//! `aggregated_reviews` table.

use history_totals::Totals;
use mysimbdp_guest::prelude::*;

export_app! {
    aggregate: Totals,
    name: "product-all-time",
    table: "product_all_time",
    key: "product_id",
    event_time: epoch_millis("window_start"),
    emit: on_close(),
}
