#!/usr/bin/env python3
"""Readiness probe for the local Cassandra: connect to 127.0.0.1:9042 and run
SELECT release_version FROM system.local. Prints the version and exits 0 on success,
prints the error and exits 1 otherwise. Needs the cassandra-driver package. With authentication
on, logs in as CQL_USER with the password in the file CQL_PASSWORD_FILE."""
import logging
import os
import sys

logging.basicConfig(level=logging.CRITICAL)  # the driver warns loudly while the node is down

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile  # noqa: E402
from cassandra.auth import PlainTextAuthProvider  # noqa: E402
from cassandra.policies import DCAwareRoundRobinPolicy  # noqa: E402

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9042

try:
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"), request_timeout=5
    )
    auth = None
    if os.environ.get("CQL_USER"):
        with open(os.environ["CQL_PASSWORD_FILE"]) as f:
            auth = PlainTextAuthProvider(os.environ["CQL_USER"], f.read().strip())
    cluster = Cluster(
        [host],
        auth_provider=auth,
        port=port,
        connect_timeout=5,
        control_connection_timeout=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    session = cluster.connect()
    row = session.execute("SELECT release_version FROM system.local", timeout=5).one()
    print(row.release_version)
    cluster.shutdown()
except Exception as e:  # noqa: BLE001
    print(f"CQL check failed: {e!r}", file=sys.stderr)
    sys.exit(1)
