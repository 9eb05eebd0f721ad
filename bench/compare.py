"""Checks that two engines computed the same daily aggregates from the same input: every
(product_id, window_start) row of one keyspace's results table against the other's. Spark's
table holds its last update per window (each micro-batch upserts the windows it changed), which
is what is compared.

Usage: compare.py --left KEYSPACE --right KEYSPACE --out FILE.json
"""

import argparse
import json
import logging
import math

from services import cassandra_cluster

COLUMNS = ["window_end", "number_of_reviews", "avg_star_rating", "sum_helpful_votes",
           "sum_total_votes"]


def parse_args():
    """The two keyspaces to compare and where the verdict goes."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--left", required=True, help="mysimbdp's keyspace")
    p.add_argument("--right", required=True, help="Spark's keyspace")
    p.add_argument("--table", default="aggregated_reviews")
    p.add_argument("--out", required=True)
    return p.parse_args()


def load(session, keyspace, table):
    """The whole results table, keyed by (product_id, window_start)."""
    query = f"SELECT product_id, window_start, {', '.join(COLUMNS)} FROM {keyspace}.{table}"
    session.default_fetch_size = 5000
    return {(r.product_id, r.window_start): r for r in session.execute(query)}


def same(a, b):
    """Equal rows; the average may differ only in the last bits of a double."""
    for column in COLUMNS:
        x, y = getattr(a, column), getattr(b, column)
        if column == "avg_star_rating":
            if not math.isclose(x, y, rel_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


def describe(row):
    """A row as plain JSON, for the examples in the verdict."""
    return {"product_id": row.product_id, "window_start": str(row.window_start),
            **{c: (str(getattr(row, c)) if c == "window_end" else getattr(row, c))
               for c in COLUMNS}}


def main():
    """Compares the two tables and writes (and prints) the verdict."""
    args = parse_args()
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    cluster = cassandra_cluster()
    session = cluster.connect()
    left, right = load(session, args.left, args.table), load(session, args.right, args.table)
    cluster.shutdown()
    only_left = sorted(set(left) - set(right))
    only_right = sorted(set(right) - set(left))
    differ = [k for k in set(left) & set(right) if not same(left[k], right[k])]
    verdict = {
        "left": args.left, "right": args.right,
        "left_rows": len(left), "right_rows": len(right),
        "left_reviews": sum(r.number_of_reviews for r in left.values()),
        "right_reviews": sum(r.number_of_reviews for r in right.values()),
        "only_left": len(only_left), "only_right": len(only_right), "differ": len(differ),
        "equal": not (only_left or only_right or differ),
        "examples": [{"left": describe(left[k]), "right": describe(right[k])} for k in differ[:3]]
        + [{"left": describe(left[k])} for k in only_left[:3]]
        + [{"right": describe(right[k])} for k in only_right[:3]],
    }
    with open(args.out, "w") as f:
        json.dump(verdict, f, indent=1)
    print(f"correctness: {args.left} {len(left)} rows vs {args.right} {len(right)} rows: "
          f"{'EQUAL' if verdict['equal'] else 'DIFFERENT'} (only left {len(only_left)}, "
          f"only right {len(only_right)}, different values {len(differ)})")


if __name__ == "__main__":
    main()
