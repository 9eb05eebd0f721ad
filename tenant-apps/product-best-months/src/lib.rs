//! Each product's best and worst calendar months, read from `product-seasonality`'s table (one
//! row per product and month): a batch app over another batch app's results. The best month
//! has the highest average rating, the worst the lowest; a tie goes to the month with more
//! reviews, then to the earlier month.

use mysimbdp_guest::prelude::*;

record! {
    /// The columns of a row of `product_seasonality` this app reads.
    pub struct MonthRow {
        month: i64,
        avg_star_rating: f64,
        number_of_reviews: i64,
    }
}

record! {
    /// One row per product in `product_best_months`.
    pub struct Extremes {
        best_month: i64,
        best_avg_star_rating: f64,
        worst_month: i64,
        worst_avg_star_rating: f64,
        months_with_reviews: i64,
    }
}

state! {
    /// The best and worst month seen so far (month 0: none yet).
    pub struct Seen {
        best_month: i64,
        best_avg: f64,
        best_reviews: i64,
        worst_month: i64,
        worst_avg: f64,
        worst_reviews: i64,
        months: i64,
    }
}

/// Whether month `a` (average, reviews) ranks before month `b` when `higher` averages win.
fn before(a: (f64, i64, i64), b: (f64, i64, i64), higher: bool) -> bool {
    let (avg_a, reviews_a, month_a) = a;
    let (avg_b, reviews_b, month_b) = b;
    if avg_a != avg_b {
        return (avg_a > avg_b) == higher;
    }
    if reviews_a != reviews_b {
        return reviews_a > reviews_b;
    }
    month_a < month_b
}

impl Seen {
    fn offer(&mut self, month: i64, avg: f64, reviews: i64) {
        if self.best_month == 0
            || before(
                (avg, reviews, month),
                (self.best_avg, self.best_reviews, self.best_month),
                true,
            )
        {
            (self.best_month, self.best_avg, self.best_reviews) = (month, avg, reviews);
        }
        if self.worst_month == 0
            || before(
                (avg, reviews, month),
                (self.worst_avg, self.worst_reviews, self.worst_month),
                false,
            )
        {
            (self.worst_month, self.worst_avg, self.worst_reviews) = (month, avg, reviews);
        }
    }
}

impl Aggregate for Seen {
    type Input = MonthRow;
    type Output = Extremes;

    fn add(&mut self, row: &MonthRow) {
        self.months += 1;
        self.offer(row.month, row.avg_star_rating, row.number_of_reviews);
    }

    fn merge(&mut self, other: Seen) {
        self.months += other.months;
        if other.best_month != 0 {
            self.offer(other.best_month, other.best_avg, other.best_reviews);
            self.offer(other.worst_month, other.worst_avg, other.worst_reviews);
        }
    }

    fn finish(&self) -> Extremes {
        Extremes {
            best_month: self.best_month,
            best_avg_star_rating: self.best_avg,
            worst_month: self.worst_month,
            worst_avg_star_rating: self.worst_avg,
            months_with_reviews: self.months,
        }
    }
}

export_app! {
    aggregate: Seen,
    name: "product-best-months",
    table: "product_best_months",
    key: "product_id",
    emit: on_close(),
}
