"""The report's batch analytics the report's way: read the whole daily results table into one
Pandas DataFrame in one process, then the all-time figures per product and the seasonal figures
per product and calendar month. Prints one JSON line of timings; writes both results as CSV.

Usage: pandas_history.py KEYSPACE OUT_DIR
"""

import json
import sys
import time

import pandas as pd
import os

from cassandra.cluster import Cluster
from cassandra.query import SimpleStatement

keyspace, out = sys.argv[1], sys.argv[2]
started = time.monotonic()
host, port = os.environ.get("MYSIMBDP_CASSANDRA_NODE", "127.0.0.1:9042").rsplit(":", 1)
auth = None
if os.environ.get("MYSIMBDP_CASSANDRA_USER"):
    from cassandra.auth import PlainTextAuthProvider

    with open(os.environ["MYSIMBDP_CASSANDRA_PASSWORD_FILE"]) as f:
        password = f.readline().strip()
    auth = PlainTextAuthProvider(os.environ["MYSIMBDP_CASSANDRA_USER"], password)
session = Cluster([host], port=int(port), auth_provider=auth).connect(keyspace)
statement = SimpleStatement(
    "SELECT product_id, window_start, avg_star_rating, sum_helpful_votes, sum_total_votes, "
    "number_of_reviews FROM aggregated_reviews",
    fetch_size=5000,
)
df = pd.DataFrame(list(session.execute(statement)))
read = time.monotonic()
df["stars"] = (df.avg_star_rating * df.number_of_reviews).round().astype("int64")
df["month"] = pd.to_datetime(df.window_start).dt.month
sums = {
    "stars": "sum",
    "sum_helpful_votes": "sum",
    "sum_total_votes": "sum",
    "number_of_reviews": "sum",
    "window_start": "count",
}
for keys, name in ((["product_id"], "all_time"), (["product_id", "month"], "seasonal")):
    g = df.groupby(keys).agg(sums).reset_index()
    g["avg_star_rating"] = g.stars / g.number_of_reviews
    g = g.rename(
        columns={
            "sum_helpful_votes": "total_helpful_votes",
            "sum_total_votes": "total_votes",
            "window_start": "days_with_reviews",
        }
    ).drop(columns=["stars"])
    g.to_csv(f"{out}/pandas_{name}.csv", index=False, float_format="%.17g")
done = time.monotonic()
print(json.dumps({
    "rows": len(df),
    "read_seconds": read - started,
    "compute_seconds": done - read,
    "seconds": done - started,
    "rows_per_second": len(df) / (done - started),
}))
