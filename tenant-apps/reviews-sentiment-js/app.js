// reviews-sentiment in JavaScript: per product and day of `review_date`, the average sentiment
// of the review bodies, the share of negative reviews and the mean gap between the stars given
// and the stars the text predicts. The platform calls the `sentiment` service before the app
// sees the reviews (the declaration below, carried in the component); the app has no network.
import { aggregate, boolean, date, days, double, integer, onUpdate, seconds, text, tumbling } from "mysimbdp";

// VADER's own threshold: compound scores at or below it are negative.
const NEGATIVE = -0.05;

const enrich = `
service = "sentiment"
batch_size = 64
on_failure = "dead-letter"
marker = "enrich_failed"

[send]
texts = "review_body"

[receive]
sentiment = { type = "double", default = 0.0 }
predicted_stars = { from = "stars", type = "integer", default = 0 }
`;

aggregate({
  name: "reviews-sentiment-js",
  table: "review_sentiment_js",
  key: "product_id",
  eventTime: date("review_date"),
  window: tumbling(days(1)),
  watermarkDelay: days(2),
  allowedLateness: 0,
  emit: onUpdate(seconds(1)),
  stateVersion: 1,
  enrich,
  input: {
    star_rating: integer,
    review_body: text,
    sentiment: double,
    predicted_stars: integer,
    enrich_failed: boolean,
  },
  output: {
    avg_sentiment: double,
    negative_share: double,
    mean_star_gap: double,
    scored_reviews: integer,
    unscored_reviews: integer,
  },
  state: () => ({ scored: 0, unscored: 0, sentiment: 0, negative: 0, gap: 0 }),
  add(s, r) {
    if (r.enrich_failed) {
      s.unscored += 1;
      return;
    }
    s.scored += 1;
    s.sentiment += r.sentiment;
    s.negative += r.sentiment <= NEGATIVE ? 1 : 0;
    s.gap += Math.abs(r.star_rating - r.predicted_stars);
  },
  merge(s, o) {
    s.scored += o.scored;
    s.unscored += o.unscored;
    s.sentiment += o.sentiment;
    s.negative += o.negative;
    s.gap += o.gap;
  },
  finish: (s) => {
    const per = (x) => (s.scored ? x / s.scored : 0);
    return {
      avg_sentiment: per(s.sentiment),
      negative_share: per(s.negative),
      mean_star_gap: per(s.gap),
      scored_reviews: s.scored,
      unscored_reviews: s.unscored,
    };
  },
});
