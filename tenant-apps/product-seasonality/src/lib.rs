//! The report's second history analytic: per product and calendar month across years (all
//! Januaries together, ...), the average star rating weighted by reviews, the votes and the
//! reviews. The key is composite, `product_id` and `month`, where `month` is a part of the
//! event time that `mysimbdp batch` offers as a column; `product-best-months` then reads this
//! app's table for each product's best and worst months.

use mysimbdp_guest::prelude::*;

record! {
    /// The columns of a day of `aggregated_reviews` this app reads.
    pub struct Day {
        avg_star_rating: f64,
        number_of_reviews: i64,
        sum_helpful_votes: i64,
        sum_total_votes: i64,
    }
}

record! {
    /// One row per (product_id, month) in `product_seasonality`.
    pub struct Month {
        avg_star_rating: f64,
        total_helpful_votes: i64,
        total_votes: i64,
        number_of_reviews: i64,
        days_with_reviews: i64,
    }
}

state! {
    /// Whole-star sums of the month's days, over every year.
    pub struct Totals {
        reviews: i64,
        stars: i64,
        helpful: i64,
        votes: i64,
        days: i64,
    }
}

impl Aggregate for Totals {
    type Input = Day;
    type Output = Month;

    fn add(&mut self, day: &Day) {
        self.reviews += day.number_of_reviews;
        // Whole stars of the day, recovered exactly from its average (see product-all-time).
        self.stars += (day.avg_star_rating * day.number_of_reviews as f64).round() as i64;
        self.helpful += day.sum_helpful_votes;
        self.votes += day.sum_total_votes;
        self.days += 1;
    }

    fn merge(&mut self, other: Totals) {
        self.reviews += other.reviews;
        self.stars += other.stars;
        self.helpful += other.helpful;
        self.votes += other.votes;
        self.days += other.days;
    }

    fn finish(&self) -> Month {
        Month {
            avg_star_rating: if self.reviews == 0 {
                0.0
            } else {
                self.stars as f64 / self.reviews as f64
            },
            total_helpful_votes: self.helpful,
            total_votes: self.votes,
            number_of_reviews: self.reviews,
            days_with_reviews: self.days,
        }
    }
}

export_app! {
    aggregate: Totals,
    name: "product-seasonality",
    table: "product_seasonality",
    key: keys(&["product_id", "month"]),
    event_time: epoch_millis("window_start"),
    emit: on_close(),
}
