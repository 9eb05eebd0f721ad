//! What the report's history analytics share: they read stored days of the stream's
//! `aggregated_reviews` table and add them up weighted by the number of reviews (not an
//! average of daily averages). `product-all-time` groups a product's days by product,
//! `product-seasonality` by product and calendar month; only their key differs.

use mysimbdp_guest::prelude::*;

record! {
    /// The columns of a stored day of `aggregated_reviews` the history apps read.
    pub struct Day {
        avg_star_rating: f64,
        number_of_reviews: i64,
        sum_helpful_votes: i64,
        sum_total_votes: i64,
    }
}

record! {
    /// One result row: a product's totals over the days the app groups together.
    pub struct ProductTotals {
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
    type Output = ProductTotals;

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

    fn finish(&self) -> ProductTotals {
        ProductTotals {
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
