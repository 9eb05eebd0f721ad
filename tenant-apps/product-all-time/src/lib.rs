//! The report's first history analytic: per product over all of its stored days, the average
//! star rating weighted by the number of reviews (not an average of daily averages), the total
//! helpful and total votes, and the number of reviews. Run by `mysimbdp batch` over the stream's
//! `aggregated_reviews` table.

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
    /// One row per product in `product_all_time`.
    pub struct AllTime {
        avg_star_rating: f64,
        total_helpful_votes: i64,
        total_votes: i64,
        number_of_reviews: i64,
        days_with_reviews: i64,
    }
}

state! {
    /// Whole-star sums, so that the average is exact and computed once at the end.
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
    type Output = AllTime;

    fn add(&mut self, day: &Day) {
        self.reviews += day.number_of_reviews;
        // A day's average is its whole stars over its reviews: multiplying back and rounding
        // recovers the stars exactly, where summing averages would not weight them.
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

    fn finish(&self) -> AllTime {
        AllTime {
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
    name: "product-all-time",
    table: "product_all_time",
    key: "product_id",
    event_time: epoch_millis("window_start"),
    emit: on_close(),
}
