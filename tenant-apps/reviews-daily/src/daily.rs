//! The aggregate: sums per product and day, the average computed once at the end. Shared with
//! `reviews-lenient`, the same analytics with other time settings.

use mysimbdp_guest::prelude::*;

record! {
    /// The fields of a review this app reads; the platform decodes nothing else.
    pub struct Review {
        star_rating: i64,
        helpful_votes: i64,
        total_votes: i64,
    }
}

record! {
    /// One row per (product_id, day) in `aggregated_reviews`.
    pub struct DailyReviews {
        avg_star_rating: f64,
        sum_helpful_votes: i64,
        sum_total_votes: i64,
        number_of_reviews: i64,
    }
}

state! {
    /// Sums, so that two partial days merge exactly and the average is computed once at the end.
    pub struct Daily {
        reviews: i64,
        stars: i64,
        helpful: i64,
        total: i64,
    }
}

impl Aggregate for Daily {
    type Input = Review;
    type Output = DailyReviews;

    fn add(&mut self, review: &Review) {
        self.reviews += 1;
        self.stars += review.star_rating;
        self.helpful += review.helpful_votes;
        self.total += review.total_votes;
    }

    fn merge(&mut self, other: Daily) {
        self.reviews += other.reviews;
        self.stars += other.stars;
        self.helpful += other.helpful;
        self.total += other.total;
    }

    fn finish(&self) -> DailyReviews {
        DailyReviews {
            avg_star_rating: if self.reviews == 0 {
                0.0
            } else {
                self.stars as f64 / self.reviews as f64
            },
            sum_helpful_votes: self.helpful,
            sum_total_votes: self.total,
            number_of_reviews: self.reviews,
        }
    }
}
