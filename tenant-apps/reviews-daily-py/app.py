"""reviews-daily in Python: for each product and day of `review_date`, the average star rating,
the helpful and total votes, and the number of reviews; the same rows as the Rust app."""
from dataclasses import dataclass

from mysimbdp import aggregate, date, days, on_update, seconds, tumbling


@dataclass
class Review:
    star_rating: int
    helpful_votes: int
    total_votes: int


@dataclass
class DailyReviews:
    avg_star_rating: float
    sum_helpful_votes: int
    sum_total_votes: int
    number_of_reviews: int


@aggregate(name="reviews-daily-py", table="aggregated_reviews_py", key="product_id",
           event_time=date("review_date"), window=tumbling(days(1)), watermark_delay=days(2),
           allowed_lateness=0, emit=on_update(seconds(1)), state_version=1)
class Daily:
    reviews: int = 0
    stars: int = 0
    helpful: int = 0
    total: int = 0

    def add(self, r: Review) -> None:
        self.reviews += 1
        self.stars += r.star_rating
        self.helpful += r.helpful_votes
        self.total += r.total_votes

    def merge(self, other: "Daily") -> None:
        self.reviews += other.reviews
        self.stars += other.stars
        self.helpful += other.helpful
        self.total += other.total

    def finish(self) -> DailyReviews:
        avg = self.stars / self.reviews if self.reviews else 0.0
        return DailyReviews(avg, self.helpful, self.total, self.reviews)
