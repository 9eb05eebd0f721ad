//! reviews-daily 2.0, a separate build of the 1.0 analytics: the same state (so open windows carry
//! over in a hot swap, either way) and one more output column, the share of votes that found the
//! reviews helpful. The tests swap the two back and forth under a live stream.

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
        helpful_share: f64,
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
            helpful_share: if self.total == 0 {
                0.0
            } else {
                self.helpful as f64 / self.total as f64
            },
        }
    }
}

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
