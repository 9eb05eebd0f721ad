//! {{name}}: per product and day, the number of reviews and their average star rating.
use mysimbdp_guest::prelude::*;

record! { pub struct Review { star_rating: i64 } }

record! { pub struct Summary { reviews: i64, avg_star_rating: f64 } }

state! { pub struct Acc { reviews: i64, stars: i64 } }

impl Aggregate for Acc {
    type Input = Review;
    type Output = Summary;
    fn add(&mut self, r: &Review) {
        self.reviews += 1;
        self.stars += r.star_rating;
    }
    fn merge(&mut self, other: Acc) {
        self.reviews += other.reviews;
        self.stars += other.stars;
    }
    fn finish(&self) -> Summary {
        let avg = if self.reviews == 0 { 0.0 } else { self.stars as f64 / self.reviews as f64 };
        Summary { reviews: self.reviews, avg_star_rating: avg }
    }
}

export_app! {
    aggregate: Acc,
    name: "{{name}}",
    table: "{{table}}",
    key: "product_id",
    event_time: date("review_date"),
    window: tumbling(days(1)),
    watermark_delay: days(2),
    allowed_lateness: 0,
    emit: on_update(seconds(1)),
    state_version: 1,
}
