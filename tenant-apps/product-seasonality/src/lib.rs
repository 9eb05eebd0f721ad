//! The report's second history analytic: per product and calendar month across years (all
//! Januaries together, ...), the average star rating weighted by reviews, the votes and the
//! reviews. The key is composite, `product_id` and `month`, where `month` is a part of the
//! event time that `mysimbdp batch` offers as a column; `product-best-months` then reads this
//! app's table for each product's best and worst months.

use history_totals::Totals;
use mysimbdp_guest::prelude::*;

export_app! {
    aggregate: Totals,
    name: "product-seasonality",
    table: "product_seasonality",
    key: keys(&["product_id", "month"]),
    event_time: epoch_millis("window_start"),
    emit: on_close(),
}
