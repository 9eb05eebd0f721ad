"""Samples one engine run twice a second into a JSON-lines file: the CPU seconds and memory of the
engine's process tree, how many records the input topic holds, and how many the engine has
processed, so that throughput, lag, CPU and peak memory come from one clock for both engines.

Usage: monitor.py --pid PID --topic T --out FILE (--metrics-url URL --tenant T | --spark-progress F)
It stops when PID exits or --stop-file appears.
"""

import argparse
import json
import os
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from services import kafka_bootstrap, kafka_config

TICKS = os.sysconf("SC_CLK_TCK")


def parse_args():
    """What to watch, and where the numbers go."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pid", type=int, required=True, help="root of the engine's process tree")
    p.add_argument("--topic", required=True)
    p.add_argument("--bootstrap", default=kafka_bootstrap())
    p.add_argument("--out", required=True)
    p.add_argument("--stop-file")
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--metrics-url", help="mysimbdp's Prometheus endpoint")
    p.add_argument("--tenant", help="the tenant label of mysimbdp's series")
    p.add_argument("--spark-progress", help="the Spark job's progress JSON lines")
    p.add_argument("--service", action="append", default=[], metavar="NAME=PID",
                   help="another process whose CPU seconds to record (Kafka, Cassandra)")
    return p.parse_args()


def process_tree(root):
    """The pids of root and all its descendants (Spark's JVM is a child of its Python driver)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_usage(root):
    """CPU seconds (user + system, children that ended included), current RSS and the sum of
    each process's peak RSS (VmHWM), in MiB, over the tree."""
    cpu = rss = hwm = 0.0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += sum(int(x) for x in fields[11:15]) / TICKS
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) / 1024
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1]) / 1024
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss, hwm


def process_cpu(pid):
    """CPU seconds of one process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return None


def machine_busy():
    """CPU seconds the whole machine has been busy (every process, all cores), to show how much
    else ran during a measurement."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


class TopicSize:
    """The number of records in the input topic: the sum of its partitions' end offsets."""

    def __init__(self, bootstrap, topic):
        """A consumer used only for end offsets: it joins no group and reads nothing."""
        self.consumer = Consumer(kafka_config(bootstrap, **{"group.id": "bench-monitor",
                                                            "enable.auto.commit": False}))
        self.topic = topic
        self.partitions = None

    def records(self):
        """The topic's current size (0 until the topic exists)."""
        if self.partitions is None:
            meta = self.consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if meta is None or not meta.partitions:
                return 0
            self.partitions = sorted(meta.partitions)
        return sum(self.consumer.get_watermark_offsets(TopicPartition(self.topic, p),
                                                       timeout=5, cached=False)[1]
                   for p in self.partitions)


def mysimbdp_counts(url, tenant):
    """Records processed, process rate and consumer lag of the tenant's app, from /metrics."""
    wanted = {"mysimbdp_records_processed_total": "processed",
              "mysimbdp_process_rate": "process_rate",
              "mysimbdp_consumer_lag": "engine_lag"}
    out = {}
    try:
        # /metrics shows a tenant's series only with a token that sees it (the operator's here).
        token = os.environ.get("MYSIMBDP_ADMIN_TOKEN")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        text = urllib.request.urlopen(request, timeout=2).read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name in wanted and f'tenant="{tenant}"' in rest:
            out[wanted[name]] = float(rest.rsplit(" ", 1)[1])
    return out


class SparkCounts:
    """Records processed by the Spark query so far: the input rows of its finished micro-batches."""

    def __init__(self, path):
        """Follows the file from its start; it may not exist yet."""
        self.path = Path(path)
        self.offset = 0
        self.processed = 0

    def read(self):
        """Reads the complete lines added since the last call and returns the running total."""
        if not self.path.exists():
            return {}
        with open(self.path) as f:
            f.seek(self.offset)
            for line in f:
                if not line.endswith("\n"):
                    break
                self.offset += len(line.encode())
                self.processed += json.loads(line)["numInputRows"]
        return {"processed": self.processed}


def alive(pid):
    """Whether the engine is still running (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main():
    """Samples until the engine ends or the stop file appears."""
    args = parse_args()
    topic = TopicSize(args.bootstrap, args.topic)
    spark = SparkCounts(args.spark_progress) if args.spark_progress else None
    services = [(name, int(pid)) for name, pid in (s.split("=", 1) for s in args.service)
                if pid.isdigit()]
    with open(args.out, "a", buffering=1) as out:
        while alive(args.pid) and not (args.stop_file and Path(args.stop_file).exists()):
            now = time.time()
            cpu, rss, hwm = tree_usage(args.pid)
            sample = {"t": now, "cpu_s": cpu, "rss_mib": rss, "hwm_mib": hwm,
                      "input": topic.records(), "machine_busy_s": machine_busy()}
            for name, pid in services:
                sample[f"{name}_cpu_s"] = process_cpu(pid)
            if spark:
                sample.update(spark.read())
            elif args.metrics_url:
                sample.update(mysimbdp_counts(args.metrics_url, args.tenant))
            out.write(json.dumps(sample) + "\n")
            time.sleep(max(0.0, args.interval - (time.time() - now)))


if __name__ == "__main__":
    main()
