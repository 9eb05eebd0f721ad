"""The local services as deploy/local runs them, for the benchmark's own clients: their ports
(MYSIMBDP_KAFKA_PORT, MYSIMBDP_CASSANDRA_PORT) and, with authentication on, the platform's logins
(MYSIMBDP_KAFKA_USER and MYSIMBDP_KAFKA_PASSWORD, MYSIMBDP_CASSANDRA_USER and
MYSIMBDP_CASSANDRA_PASSWORD_FILE, which scripts/platform.sh exports). The benchmark seeds, reads
and cleans up as the operator; Spark logs in the same way as the platform does."""

import os

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

KAFKA_MECHANISM = "SCRAM-SHA-256"


def kafka_bootstrap():
    """The local broker's address."""
    port = os.environ.get("MYSIMBDP_KAFKA_PORT", "9092")
    return os.environ.get("MYSIMBDP_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")


def cassandra_port():
    """The CQL port."""
    return int(os.environ.get("MYSIMBDP_CASSANDRA_PORT", "9042"))


def cassandra_login():
    """(role, password) when authentication is on, else None."""
    user = os.environ.get("MYSIMBDP_CASSANDRA_USER")
    if not user:
        return None
    with open(os.environ["MYSIMBDP_CASSANDRA_PASSWORD_FILE"], encoding="utf-8") as f:
        return user, f.read().strip()


def cassandra_cluster():
    """A driver cluster for the local node, logged in when authentication is on."""
    login = cassandra_login()
    auth = PlainTextAuthProvider(username=login[0], password=login[1]) if login else None
    return Cluster(["127.0.0.1"], port=cassandra_port(), auth_provider=auth)


def kafka_login():
    """(user, password) when authentication is on, else None."""
    user = os.environ.get("MYSIMBDP_KAFKA_USER")
    return (user, os.environ["MYSIMBDP_KAFKA_PASSWORD"]) if user else None


def kafka_config(bootstrap, **settings):
    """librdkafka settings for the local broker, logged in when authentication is on."""
    config = {"bootstrap.servers": bootstrap, **settings}
    login = kafka_login()
    if login:
        config.update({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": KAFKA_MECHANISM,
                       "sasl.username": login[0], "sasl.password": login[1]})
    return config


def spark_kafka_options():
    """The Kafka source's login options (Spark's `kafka.`-prefixed consumer settings)."""
    login = kafka_login()
    if not login:
        return {}
    jaas = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{login[0]}" password="{login[1]}";')
    return {"kafka.security.protocol": "SASL_PLAINTEXT", "kafka.sasl.mechanism": KAFKA_MECHANISM,
            "kafka.sasl.jaas.config": jaas}


def spark_cassandra_conf():
    """The Cassandra connector's connection and login settings."""
    conf = {"spark.cassandra.connection.host": "127.0.0.1",
            "spark.cassandra.connection.port": str(cassandra_port())}
    login = cassandra_login()
    if login:
        conf.update({"spark.cassandra.auth.username": login[0],
                     "spark.cassandra.auth.password": login[1]})
    return conf
