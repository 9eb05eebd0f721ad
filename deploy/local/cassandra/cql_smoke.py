#!/usr/bin/env python3
"""End-to-end CQL check against the local Cassandra: create a keyspace and a table, insert a row,
read it back, drop the keyspace. Exits non-zero on any failure. Needs the cassandra-driver package."""
import sys
import time
import uuid

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import DCAwareRoundRobinPolicy

ks = "smoke_" + uuid.uuid4().hex[:8]
profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"),
                           request_timeout=30)
cluster = Cluster(["127.0.0.1"], port=9042, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
session = cluster.connect()
try:
    session.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(f"CREATE TABLE {ks}.events (tenant text, ts timestamp, v double, "
                    "PRIMARY KEY (tenant, ts))")
    now = int(time.time() * 1000)
    session.execute(f"INSERT INTO {ks}.events (tenant, ts, v) VALUES (%s, %s, %s)", ("t1", now, 42.5))
    rows = list(session.execute(f"SELECT tenant, v FROM {ks}.events WHERE tenant = %s", ("t1",)))
    if [(r.tenant, r.v) for r in rows] != [("t1", 42.5)]:
        print(f"cassandra smoke: unexpected rows {rows}", file=sys.stderr)
        sys.exit(1)
    version = session.execute("SELECT release_version FROM system.local").one().release_version
    print(f"cassandra smoke: keyspace {ks}: created table, wrote and read back 1 row (Cassandra {version})")
finally:
    session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
    cluster.shutdown()
