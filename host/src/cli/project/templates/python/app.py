"""{{name}}: per product and day, the number of reviews and their average star rating."""
from dataclasses import dataclass

from mysimbdp import aggregate, date, days, on_update, seconds, tumbling


@dataclass
class Review:
    star_rating: int


@dataclass
class Summary:
    reviews: int
    avg_star_rating: float


@aggregate(name="{{name}}", table="{{table}}", key="product_id", event_time=date("review_date"),
           window=tumbling(days(1)), watermark_delay=days(2), emit=on_update(seconds(1)))
class Acc:
    reviews: int = 0
    stars: int = 0

    def add(self, r: Review) -> None:
        self.reviews += 1
        self.stars += r.star_rating

    def merge(self, other: "Acc") -> None:
        self.reviews += other.reviews
        self.stars += other.stars

    def finish(self) -> Summary:
        return Summary(self.reviews, self.stars / self.reviews if self.reviews else 0.0)
