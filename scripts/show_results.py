#!/usr/bin/env python3
"""Prints a tenant's per-product daily aggregates from Cassandra, most-reviewed days first.
Usage: show_results.py TENANT [LIMIT [PORT]]. Needs the cassandra-driver package (deploy/local
installs it). With authentication on, logs in as CQL_USER with the password in CQL_PASSWORD_FILE."""
import logging
import os
import sys

logging.basicConfig(level=logging.CRITICAL)
from cassandra.auth import PlainTextAuthProvider  # noqa: E402
from cassandra.cluster import Cluster  # noqa: E402

tenant, limit = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
port = int(sys.argv[3]) if len(sys.argv) > 3 else 9042
auth = None
if os.environ.get("CQL_USER"):
    with open(os.environ["CQL_PASSWORD_FILE"]) as f:
        auth = PlainTextAuthProvider(os.environ["CQL_USER"], f.read().strip())
cluster = Cluster(["127.0.0.1"], port=port, auth_provider=auth)
session = cluster.connect()
rows = list(session.execute(
    f"SELECT product_id, window_start, avg_star_rating, sum_helpful_votes, sum_total_votes, "
    f"number_of_reviews, final FROM {tenant}.aggregated_reviews"))
rows.sort(key=lambda r: (-r.number_of_reviews, r.product_id, r.window_start))
print(f"{tenant}.aggregated_reviews: {len(rows)} rows, one per (product, day); "
      f"{sum(r.final for r in rows)} final. Busiest days:")
print(f"  {'product_id':<12} {'day':<10} {'avg_stars':>9} {'helpful':>8} {'total':>6} {'reviews':>8}  final")
for r in rows[:limit]:
    print(f"  {r.product_id:<12} {r.window_start:%Y-%m-%d} {r.avg_star_rating:>9.3f} "
          f"{r.sum_helpful_votes:>8} {r.sum_total_votes:>6} {r.number_of_reviews:>8}  {r.final}")
cluster.shutdown()
