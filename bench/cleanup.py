"""Removes what one benchmark run left in Kafka and Cassandra: the topics, consumer groups and
keyspaces whose names start with the run's tenant prefixes (and nothing else), so that repeated
runs do not fill the disk.

Usage: cleanup.py --prefix simbench_<id> [--prefix sparkbench_<id> ...]
"""

import argparse
import logging

from confluent_kafka.admin import AdminClient

from services import cassandra_cluster, kafka_bootstrap, kafka_config


def parse_args():
    """The run's tenant prefixes."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prefix", action="append", required=True)
    p.add_argument("--bootstrap", default=kafka_bootstrap())
    return p.parse_args()


def ours(name, prefixes):
    """Whether a topic, group or keyspace belongs to the run (a prefix is at least 'x_<id>')."""
    return any(name.startswith(p) or name.startswith(f"mysimbdp.{p}") for p in prefixes
               if len(p) > 10)


def clean_kafka(bootstrap, prefixes):
    """Deletes the run's topics (inputs, results, late, dead letters) and consumer groups."""
    admin = AdminClient(kafka_config(bootstrap))
    topics = [t for t in admin.list_topics(timeout=10).topics if ours(t, prefixes)]
    for future in admin.delete_topics(topics, operation_timeout=30).values() if topics else []:
        future.result()
    groups = [g.group_id for g in admin.list_consumer_groups().result(timeout=10).valid
              if ours(g.group_id, prefixes)]
    for future in admin.delete_consumer_groups(groups).values() if groups else []:
        try:
            future.result()
        except Exception as error:  # a group still settling; it is small and expires
            print(f"cleanup: group not deleted: {error}")
    return len(topics), len(groups)


def clean_cassandra(prefixes):
    """Drops the run's keyspaces."""
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    cluster = cassandra_cluster()
    session = cluster.connect()
    names = [r.keyspace_name for r in session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
             if ours(r.keyspace_name, prefixes)]
    for name in names:
        session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
    cluster.shutdown()
    return len(names)


def main():
    """Cleans both stores and says how much went."""
    args = parse_args()
    topics, groups = clean_kafka(args.bootstrap, args.prefix)
    keyspaces = clean_cassandra(args.prefix)
    print(f"cleanup: deleted {topics} topics, {groups} consumer groups, {keyspaces} keyspaces")


if __name__ == "__main__":
    main()
