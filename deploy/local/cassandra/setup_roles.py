#!/usr/bin/env python3
"""With authentication on: makes sure the platform's superuser role CQL_USER exists, with the
password in the file CQL_PASSWORD_FILE, and that the default `cassandra` superuser no longer has
its well-known password (it gets the one in CQL_SUPERUSER_PASSWORD_FILE). Idempotent: when the
platform's role already logs in, nothing changes. Exits 0 when the platform's role works."""
import logging
import os
import re
import sys

logging.basicConfig(level=logging.CRITICAL)

from cassandra.auth import PlainTextAuthProvider  # noqa: E402
from cassandra.cluster import Cluster  # noqa: E402

host, port = sys.argv[1], int(sys.argv[2])
user = os.environ["CQL_USER"]


def secret(var):
    with open(os.environ[var]) as f:
        value = f.read().strip()
    # Generated as hex; checked so that it can be written as a CQL string literal.
    if not re.fullmatch(r"[0-9a-f]{16,}", value):
        sys.exit(f"{os.environ[var]} does not hold a generated hex secret")
    return value


platform, superuser = secret("CQL_PASSWORD_FILE"), secret("CQL_SUPERUSER_PASSWORD_FILE")


def session(name, password):
    cluster = Cluster([host], port=port, auth_provider=PlainTextAuthProvider(name, password),
                      connect_timeout=5, control_connection_timeout=5)
    return cluster, cluster.connect()


try:
    cluster, s = session(user, platform)
    cluster.shutdown()
    print(f"role {user} logs in")
    sys.exit(0)
except Exception:  # noqa: BLE001
    pass
try:
    cluster, s = session("cassandra", "cassandra")
except Exception:  # noqa: BLE001
    cluster, s = session("cassandra", superuser)
s.execute(f"CREATE ROLE IF NOT EXISTS {user} WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = '{platform}'")
s.execute(f"ALTER ROLE {user} WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = '{platform}'")
s.execute(f"ALTER ROLE cassandra WITH PASSWORD = '{superuser}'")
cluster.shutdown()
cluster, s = session(user, platform)
cluster.shutdown()
print(f"role {user} created; the default superuser's password replaced")
