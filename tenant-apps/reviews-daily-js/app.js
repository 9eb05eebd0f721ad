// reviews-daily in JavaScript: for each product and day of `review_date`, the average star
// rating, the helpful and total votes, and the number of reviews; the same rows as the Rust app.
import { aggregate, date, days, double, integer, onUpdate, seconds, tumbling } from "mysimbdp";

aggregate({
  name: "reviews-daily-js",
  table: "aggregated_reviews_js",
  key: "product_id",
  eventTime: date("review_date"),
  window: tumbling(days(1)),
  watermarkDelay: days(2),
  allowedLateness: 0,
  emit: onUpdate(seconds(1)),
  stateVersion: 1,
  input: { star_rating: integer, helpful_votes: integer, total_votes: integer },
  output: {
    avg_star_rating: double,
    sum_helpful_votes: integer,
    sum_total_votes: integer,
    number_of_reviews: integer,
  },
  state: () => ({ reviews: 0, stars: 0, helpful: 0, total: 0 }),
  add(s, r) {
    s.reviews += 1;
    s.stars += r.star_rating;
    s.helpful += r.helpful_votes;
    s.total += r.total_votes;
  },
  merge(s, o) {
    s.reviews += o.reviews;
    s.stars += o.stars;
    s.helpful += o.helpful;
    s.total += o.total;
  },
  finish: (s) => ({
    avg_star_rating: s.reviews ? s.stars / s.reviews : 0,
    sum_helpful_votes: s.helpful,
    sum_total_votes: s.total,
    number_of_reviews: s.reviews,
  }),
});
