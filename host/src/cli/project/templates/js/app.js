// {{name}}: per product and day, the number of reviews and their average star rating.
import { aggregate, date, days, double, integer, onUpdate, seconds, tumbling } from "mysimbdp";

aggregate({
  name: "{{name}}",
  table: "{{table}}",
  key: "product_id",
  eventTime: date("review_date"),
  window: tumbling(days(1)),
  watermarkDelay: days(2),
  emit: onUpdate(seconds(1)),
  input: { star_rating: integer },
  output: { reviews: integer, avg_star_rating: double },
  state: () => ({ reviews: 0, stars: 0 }),
  add(s, r) {
    s.reviews += 1;
    s.stars += r.star_rating;
  },
  merge(s, other) {
    s.reviews += other.reviews;
    s.stars += other.stars;
  },
  finish: (s) => ({ reviews: s.reviews, avg_star_rating: s.reviews ? s.stars / s.reviews : 0 }),
});
