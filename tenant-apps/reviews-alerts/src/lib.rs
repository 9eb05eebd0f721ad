//! The report's critical condition: a product's day with at least [`MIN_REVIEWS`] reviews of
//! which at least [`MIN_ONE_STAR_SHARE`] are one-star. Every closed day gets a row; a row with
//! `alert` true is also an alert on the app's alerts topic, which triggers the workflow.

use mysimbdp_guest::prelude::*;

/// Fewer reviews in a day say too little to alert on.
pub const MIN_REVIEWS: i64 = 10;
/// The share of one-star reviews at which a busy day is an alert.
pub const MIN_ONE_STAR_SHARE: f64 = 0.5;
const _: () = assert!(
    MIN_ONE_STAR_SHARE == 0.5,
    "the alert compares one_star * 2 with reviews"
);

record! {
    /// The field of a review this app reads.
    pub struct Review {
        star_rating: i64,
    }
}

record! {
    /// One row per (product_id, day); `alert` marks the critical ones.
    pub struct DayCheck {
        number_of_reviews: i64,
        one_star_reviews: i64,
        one_star_share: f64,
        alert: bool,
    }
}

state! {
    /// Counts of the day's reviews.
    pub struct Counts {
        reviews: i64,
        one_star: i64,
    }
}

impl Aggregate for Counts {
    type Input = Review;
    type Output = DayCheck;

    fn add(&mut self, review: &Review) {
        self.reviews += 1;
        self.one_star += i64::from(review.star_rating == 1);
    }

    fn merge(&mut self, other: Counts) {
        self.reviews += other.reviews;
        self.one_star += other.one_star;
    }

    fn finish(&self) -> DayCheck {
        let share = if self.reviews == 0 {
            0.0
        } else {
            self.one_star as f64 / self.reviews as f64
        };
        DayCheck {
            number_of_reviews: self.reviews,
            one_star_reviews: self.one_star,
            one_star_share: share,
            // Integer arithmetic for the threshold: no rounding decides an alert.
            alert: self.reviews >= MIN_REVIEWS && self.one_star * 2 >= self.reviews,
        }
    }
}

export_app! {
    aggregate: Counts,
    name: "reviews-alerts",
    table: "reviews_alerts",
    key: "product_id",
    event_time: date("review_date"),
    window: tumbling(days(1)),
    watermark_delay: days(2),
    allowed_lateness: 0,
    emit: on_close(),
}
