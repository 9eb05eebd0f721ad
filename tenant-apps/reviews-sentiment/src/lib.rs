//! Per product and day of `review_date`: the average sentiment of the review bodies, the share
//! of negative reviews, and the mean distance between the stars given and the stars the text
//! predicts (a signal for suspicious reviews). The sentiment and predicted stars come from the
//! `sentiment` service, which the platform calls before the app sees the reviews
//! (`enrich.toml`); the app itself has no network.

use mysimbdp_guest::prelude::*;

/// Compound scores at or below this are negative: VADER's own threshold.
pub const NEGATIVE: f64 = -0.05;

record! {
    /// A review as the app reads it: two fields of the record and three the platform fills
    /// (`sentiment`: VADER's compound score, -1..1; `predicted_stars`: 1..5 from the text;
    /// `enrich_failed`: the service failed and the defaults were used).
    pub struct Review {
        star_rating: i64,
        review_body: String,
        sentiment: f64,
        predicted_stars: i64,
        enrich_failed: bool,
    }
}

record! {
    /// One row per (product_id, day) in `review_sentiment`.
    pub struct DailySentiment {
        avg_sentiment: f64,
        negative_share: f64,
        mean_star_gap: f64,
        scored_reviews: i64,
        unscored_reviews: i64,
    }
}

state! {
    /// Sums, so that partial days merge exactly and the averages are computed once at the end.
    pub struct Sentiment {
        scored: i64,
        unscored: i64,
        sentiment: f64,
        negative: i64,
        gap: i64,
    }
}

impl Aggregate for Sentiment {
    type Input = Review;
    type Output = DailySentiment;

    fn add(&mut self, review: &Review) {
        if review.enrich_failed {
            self.unscored += 1;
            return;
        }
        self.scored += 1;
        self.sentiment += review.sentiment;
        self.negative += i64::from(review.sentiment <= NEGATIVE);
        self.gap += (review.star_rating - review.predicted_stars).abs();
    }

    fn merge(&mut self, other: Sentiment) {
        self.scored += other.scored;
        self.unscored += other.unscored;
        self.sentiment += other.sentiment;
        self.negative += other.negative;
        self.gap += other.gap;
    }

    fn finish(&self) -> DailySentiment {
        let per = |x: f64| {
            if self.scored == 0 {
                0.0
            } else {
                x / self.scored as f64
            }
        };
        DailySentiment {
            avg_sentiment: per(self.sentiment),
            negative_share: per(self.negative as f64),
            mean_star_gap: per(self.gap as f64),
            scored_reviews: self.scored,
            unscored_reviews: self.unscored,
        }
    }
}

export_app! {
    aggregate: Sentiment,
    name: "reviews-sentiment",
    table: "review_sentiment",
    key: "product_id",
    event_time: date("review_date"),
    window: tumbling(days(1)),
    watermark_delay: days(2),
    allowed_lateness: 0,
    emit: on_update(seconds(1)),
    state_version: 1,
    enrich: include_str!("../enrich.toml"),
}
