//! reviews-daily 3.0: also the best star rating of each product's day, and the report's critical
//! days (as `reviews-alerts` finds them) flagged `alert`: the tenant adds alerting with a deploy,
//! and the platform makes the alerts topic then. The new fields in the window state make its
//! state version 2: a running 1.0 or 2.0 cannot hand its open windows to it, and a deploy is
//! refused unless the operator lets the open windows start fresh.

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
        best_star_rating: i64,
        one_star_reviews: i64,
        alert: bool,
    }
}

state! {
    /// Sums, counts and the best rating so far: merging two partial days stays exact.
    pub struct Daily {
        reviews: i64,
        stars: i64,
        helpful: i64,
        total: i64,
        best: i64,
        one_star: i64,
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
        self.best = self.best.max(review.star_rating);
        self.one_star += i64::from(review.star_rating == 1);
    }

    fn merge(&mut self, other: Daily) {
        self.reviews += other.reviews;
        self.stars += other.stars;
        self.helpful += other.helpful;
        self.total += other.total;
        self.best = self.best.max(other.best);
        self.one_star += other.one_star;
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
            best_star_rating: self.best,
            one_star_reviews: self.one_star,
            // reviews-alerts' rule: at least 10 reviews, at least half of them one-star.
            alert: self.reviews >= 10 && self.one_star * 2 >= self.reviews,
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
    state_version: 2,
}
