"""reviews-sentiment in Python: per product and day of `review_date`, the average sentiment of
the review bodies, the share of negative reviews and the mean gap between the stars given and
the stars the text predicts. The platform calls the `sentiment` service before the app sees the
reviews (the declaration below, carried in the component); the app itself has no network."""
from dataclasses import dataclass

from mysimbdp import aggregate, date, days, on_update, seconds, tumbling

# VADER's own threshold: compound scores at or below it are negative.
NEGATIVE = -0.05

ENRICH = """
service = "sentiment"
batch_size = 64
on_failure = "dead-letter"
marker = "enrich_failed"

[send]
texts = "review_body"

[receive]
sentiment = { type = "double", default = 0.0 }
predicted_stars = { from = "stars", type = "integer", default = 0 }
"""


@dataclass
class Review:
    star_rating: int
    review_body: str
    sentiment: float
    predicted_stars: int
    enrich_failed: bool


@dataclass
class DailySentiment:
    avg_sentiment: float
    negative_share: float
    mean_star_gap: float
    scored_reviews: int
    unscored_reviews: int


@aggregate(name="reviews-sentiment-py", table="review_sentiment_py", key="product_id",
           event_time=date("review_date"), window=tumbling(days(1)), watermark_delay=days(2),
           allowed_lateness=0, emit=on_update(seconds(1)), state_version=1, enrich=ENRICH)
class Sentiment:
    scored: int = 0
    unscored: int = 0
    sentiment: float = 0.0
    negative: int = 0
    gap: int = 0

    def add(self, r: Review) -> None:
        if r.enrich_failed:
            self.unscored += 1
            return
        self.scored += 1
        self.sentiment += r.sentiment
        self.negative += int(r.sentiment <= NEGATIVE)
        self.gap += abs(r.star_rating - r.predicted_stars)

    def merge(self, other: "Sentiment") -> None:
        self.scored += other.scored
        self.unscored += other.unscored
        self.sentiment += other.sentiment
        self.negative += other.negative
        self.gap += other.gap

    def finish(self) -> DailySentiment:
        def per(x: float) -> float:
            return x / self.scored if self.scored else 0.0
        return DailySentiment(per(self.sentiment), per(float(self.negative)),
                              per(float(self.gap)), self.scored, self.unscored)
