"""The report's tenantstreamapp in Spark Structured Streaming, as the peer mysimbdp is measured
against: per product_id and 1-day tumbling window of review_date (UTC), with a 2-day watermark,
the number of reviews, the average star rating (a double), and the helpful and total votes, in
update output mode, upserted into a Cassandra table of the same shape as mysimbdp's.

It runs until it has processed `--expect` records (the throughput run) or until `--stop-file`
appears (the latency runs), logging every micro-batch's progress as one JSON line, then writes a
summary. Run by scripts/bench-spark.sh with bench/.venv's python; see bench/README.md.
"""

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from services import (cassandra_cluster, kafka_bootstrap,  # noqa: E402 (after the path)
                      spark_cassandra_conf, spark_kafka_options)

SPARK_VERSION = "3.5.7"
PACKAGES = ",".join([
    f"org.apache.spark:spark-sql-kafka-0-10_2.12:{SPARK_VERSION}",
    "com.datastax.spark:spark-cassandra-connector_2.12:3.5.1",
])

# Only the fields the aggregates need, as mysimbdp decodes only the app's declared fields.
REVIEW = StructType([
    StructField("product_id", StringType()),
    StructField("star_rating", LongType()),
    StructField("helpful_votes", LongType()),
    StructField("total_votes", LongType()),
    StructField("review_date", StringType()),
])


def parse_args():
    """The run's inputs and outputs, all given by the bench script."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bootstrap", default=kafka_bootstrap())
    p.add_argument("--topic", required=True)
    p.add_argument("--keyspace", required=True)
    p.add_argument("--table", default="aggregated_reviews")
    p.add_argument("--checkpoint", required=True, help="fresh directory for the query's state")
    p.add_argument("--progress", required=True, help="JSON lines, one per micro-batch")
    p.add_argument("--summary", required=True, help="JSON written at the end")
    p.add_argument("--pid-file", required=True, help="the JVM's pid, for the CPU/RSS monitor")
    p.add_argument("--ivy", required=True, help="Ivy cache for spark.jars.packages")
    p.add_argument("--expect", type=int, default=0, help="stop after this many input records")
    p.add_argument("--stop-file", help="stop when this file exists")
    p.add_argument("--ready-file", help="written once the query waits for data")
    p.add_argument("--max-offsets", type=int, default=50000, help="maxOffsetsPerTrigger")
    p.add_argument("--shuffle-partitions", type=int, default=2)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--sink", choices=["cassandra", "noop"], default="cassandra",
                   help="noop: compute but write nothing (tune.sh, to see the write's share)")
    return p.parse_args()


def create_table(keyspace, table):
    """The same keyspace and table shape mysimbdp creates (host/src/sink/cassandra.rs), so that
    both engines' results can be compared row by row and pay for the same writes."""
    cluster = cassandra_cluster()
    try:
        session = cluster.connect()
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {keyspace}.{table} (product_id text, "
            "window_start timestamp, window_end timestamp, avg_star_rating double, "
            "sum_helpful_votes bigint, sum_total_votes bigint, number_of_reviews bigint, "
            "final boolean, app_version text, updated_at timestamp, "
            "PRIMARY KEY ((product_id), window_start))")
    finally:
        cluster.shutdown()


def build_session(args):
    """A local Spark tuned for this 2-core machine: one task slot per core, shuffle partitions
    sized to the cores, no UI, UTC everywhere."""
    builder = (
        SparkSession.builder.master(f"local[{args.cores}]")
        .appName("reviews-daily-spark")
        .config("spark.jars.packages", PACKAGES)
        .config("spark.jars.ivy", args.ivy)
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.cassandra.output.concurrent.writes", "32")
        # Keep the connector's session between micro-batches (default: closed after 5 s idle).
        .config("spark.cassandra.connection.keepAliveMS", "3600000")
    )
    for key, value in spark_cassandra_conf().items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def daily_aggregates(spark, args):
    """Kafka JSON -> event time -> 1-day windows with a 2-day watermark -> the four aggregates."""
    reviews = (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options())
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", str(args.max_offsets))
        .option("failOnDataLoss", "false")
        .load()
        .select(F.from_json(F.col("value").cast("string"), REVIEW).alias("r"))
        .select("r.*")
        .withColumn("event_time", F.to_timestamp("review_date", "yyyy-MM-dd"))
        .where(F.col("product_id").isNotNull() & F.col("event_time").isNotNull())
    )
    return (
        reviews.withWatermark("event_time", "2 days")
        .groupBy(F.col("product_id"), F.window("event_time", "1 day"))
        .agg(
            F.count(F.lit(1)).alias("number_of_reviews"),
            F.sum("star_rating").alias("stars"),
            F.sum("helpful_votes").alias("sum_helpful_votes"),
            F.sum("total_votes").alias("sum_total_votes"),
        )
    )


def cassandra_writer(keyspace, table, sink="cassandra"):
    """foreachBatch: each micro-batch's updated windows, upserted with the connector (the last
    update per window is what the table keeps, as mysimbdp's upserts do)."""

    def write(batch, _batch_id):
        """Upserts one micro-batch's changed windows (or, for tune.sh, only computes them)."""
        if sink == "noop":
            batch.write.format("noop").mode("overwrite").save()
            return
        (
            batch.select(
                "product_id",
                F.col("window.start").alias("window_start"),
                F.col("window.end").alias("window_end"),
                (F.col("stars") / F.col("number_of_reviews")).cast("double").alias("avg_star_rating"),
                "sum_helpful_votes",
                "sum_total_votes",
                "number_of_reviews",
                F.lit(f"spark-{SPARK_VERSION}").alias("app_version"),
                F.current_timestamp().alias("updated_at"),
            )
            .write.format("org.apache.spark.sql.cassandra")
            .options(keyspace=keyspace, table=table)
            .mode("append")
            .save()
        )

    return write


def proc_stats(pid):
    """CPU seconds and peak RSS (MiB) of one process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return {"cpu_s": cpu, "peak_rss_mib": hwm}


class ProgressLog:
    """Appends each new micro-batch progress (once) to a JSON-lines file, with the wall time it
    was seen, and keeps the running count of input records."""

    def __init__(self, path):
        """Appends to the file, line-buffered so that the monitor sees each batch at once."""
        self.file = open(path, "a", buffering=1)
        self.seen = set()
        self.rows = 0
        self.batches = 0

    def poll(self, query):
        """Takes the batches finished since the last call from the query's recent progress."""
        for progress in query.recentProgress:
            key = (progress["batchId"], progress["timestamp"])
            if key in self.seen:
                continue
            self.seen.add(key)
            self.rows += progress["numInputRows"]
            self.batches += progress["numInputRows"] > 0
            self.file.write(json.dumps({"seen_at": time.time(), **progress}) + "\n")


def should_stop(args, log):
    """The throughput run stops once every produced record is in; the latency runs on a file."""
    if args.expect and log.rows >= args.expect:
        return True
    return bool(args.stop_file) and Path(args.stop_file).exists()


def mark_ready(args, query, log):
    """Tells the bench script that the Kafka source is set up and polling, so that what it
    produces next measures the running engine, not its start."""
    if args.ready_file and not Path(args.ready_file).exists():
        if log.batches or query.status["message"] == "Waiting for data to arrive":
            Path(args.ready_file).write_text(str(time.time()))


def main():
    """Runs the query until told to stop, then writes the summary the report reads."""
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    create_table(args.keyspace, args.table)
    launched = time.time()
    spark = build_session(args)
    spark.sparkContext.setLogLevel("WARN")
    jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    Path(args.pid_file).write_text(str(jvm_pid))
    query = (
        daily_aggregates(spark, args)
        .writeStream.outputMode("update")
        .foreachBatch(cassandra_writer(args.keyspace, args.table, args.sink))
        .option("checkpointLocation", args.checkpoint)
        .trigger(processingTime="0 seconds")
        .start()
    )
    started = time.time()
    log = ProgressLog(args.progress)
    while not should_stop(args, log):
        if query.exception() is not None:
            raise RuntimeError(f"the Spark query failed: {query.exception()}")
        time.sleep(0.1)
        log.poll(query)
        mark_ready(args, query, log)
    finished = time.time()
    summary = {
        "launched_at": launched,
        "query_started_at": started,
        "finished_at": finished,
        "rows": log.rows,
        "batches": log.batches,
        "jvm_pid": jvm_pid,
        "jvm": proc_stats(jvm_pid),
        "driver_python": proc_stats(os.getpid()),
    }
    query.stop()
    spark.stop()
    Path(args.summary).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
