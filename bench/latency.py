"""End-to-end latency at a fixed input rate: from producing a marker review (a copy of a real row
with a product_id of its own, so its window holds only it) to the first update containing it
visible in Cassandra.

  latency.py markers --in reviews.tsv --out with_markers.tsv --keys keys.json --rate R --tag T
      copies the TSV, adding 5 markers per second of input at rate R, after a 2-second warm-up
  latency.py warmup --in earlier.tsv --out warmup.tsv --key K
      copies reviews dated before the measured ones, ending with one marker K
  latency.py run --file with_markers.tsv --keys keys.json --tenant T --keyspace K --rate R --out F
      [--warmup warmup.tsv --warmup-key K]
      first sends the warm-up at 10 000 records/s and waits until its marker is visible (a
      long-running engine is warm: Spark's first micro-batches in a new JVM are several times
      slower than the next), then produces the file with `mysimbdp produce --rate R`, polls
      Cassandra for the markers whose turn has come, reads each marker's Kafka timestamp (when
      the producer created it) and writes the latencies; a marker not seen in time counts as
      infinitely late in the percentiles

A marker's review_date is its neighbour's, so it is on time for both engines' watermarks.
"""

import argparse
import json
import logging
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition

from services import cassandra_cluster, kafka_bootstrap, kafka_config

PRODUCT_ID = 3
MARKERS_PER_SECOND = 5
WARMUP_SECONDS = 2
WARMUP_RATE = 10000
WARMUP_TIMEOUT = 300
POLL_SECONDS = 0.05
# Kept running after the input ends, so that the monitor sees whether the engine catches up.
TAIL_SECONDS = 5


def parse_args():
    """The two steps, each with its own arguments."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("markers")
    m.add_argument("--in", dest="source", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--keys", required=True)
    m.add_argument("--rate", type=float, required=True)
    m.add_argument("--tag", required=True, help="makes the marker keys unique to this run")
    w = sub.add_parser("warmup")
    w.add_argument("--in", dest="source", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--key", required=True)
    r = sub.add_parser("run")
    r.add_argument("--file", required=True)
    r.add_argument("--keys", required=True)
    r.add_argument("--tenant", required=True, help="the input topic is <tenant>.reviews")
    r.add_argument("--keyspace", required=True)
    r.add_argument("--table", default="aggregated_reviews")
    r.add_argument("--rate", type=float, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--bin", default="target/release/mysimbdp")
    r.add_argument("--bootstrap", default=kafka_bootstrap())
    r.add_argument("--warmup", help="TSV sent (and processed) before the measured input")
    r.add_argument("--warmup-key", help="the warm-up's closing marker")
    r.add_argument("--grace", type=float, default=30.0,
                   help="seconds to wait for the last markers after the input ends")
    return p.parse_args()


def add_markers(args):
    """Writes the TSV with a marker after every (rate / 5)-th row past the warm-up, and the
    markers' keys with the row number each is sent as (which says when its turn comes)."""
    every = max(1, int(args.rate / MARKERS_PER_SECOND))
    first = int(args.rate * WARMUP_SECONDS)
    keys, sent = [], 0
    with open(args.source, "rb") as src, open(args.out, "wb") as dst:
        dst.write(src.readline())  # header
        for n, line in enumerate(src):
            dst.write(line)
            sent += 1
            if n >= first and (n - first) % every == 0:
                columns = line.rstrip(b"\r\n").split(b"\t")
                key = f"MRK{args.tag}x{len(keys):06d}"
                columns[PRODUCT_ID] = key.encode()
                dst.write(b"\t".join(columns) + b"\n")
                keys.append({"key": key, "row": sent})
                sent += 1
    with open(args.keys, "w") as f:
        json.dump(keys, f)
    print(f"markers: {len(keys)} in {sent} rows ({args.out})")


def add_warmup_marker(args):
    """Copies the warm-up reviews and appends a copy of the last one under its own key: once
    that is visible in Cassandra, the engine has worked through the warm-up."""
    with open(args.source, "rb") as src, open(args.out, "wb") as dst:
        last = None
        for line in src:
            dst.write(line)
            last = line
        columns = last.rstrip(b"\r\n").split(b"\t")
        columns[PRODUCT_ID] = args.key.encode()
        dst.write(b"\t".join(columns) + b"\n")


class Poller:
    """Finds markers in the results table, asking only for those already due to be sent, so
    that the polling itself costs Cassandra little."""

    def __init__(self, keyspace, table):
        """One session and one prepared query for the whole run."""
        logging.getLogger("cassandra").setLevel(logging.ERROR)
        self.cluster = cassandra_cluster()
        self.session = self.cluster.connect()
        self.query = self.session.prepare(
            f"SELECT product_id FROM {keyspace}.{table} WHERE product_id IN ?")
        self.seen = {}

    def poll(self, due):
        """Records the first time each due marker is visible."""
        pending = [k for k in due if k not in self.seen]
        futures = [self.session.execute_async(self.query, [pending[i:i + 50]])
                   for i in range(0, len(pending), 50)]
        for future in futures:
            try:
                rows = future.result()
            except Exception:  # the table may not exist yet at the very start
                continue
            now = time.time()
            for row in rows:
                self.seen.setdefault(row.product_id, now)

    def close(self):
        """Ends the session, so that the driver's threads do not hold the process."""
        self.cluster.shutdown()


def produce(args, file, rate):
    """Starts `mysimbdp produce` at a fixed rate; returns the process and when it started."""
    command = [args.bin, "produce", "--file", file, "--tenant", args.tenant,
               "--rate", str(rate), "--bootstrap", args.bootstrap]
    started = time.time()
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True), started


def send_times(bootstrap, topic, keys):
    """Each marker's Kafka timestamp (set by the producer when it created the record), read
    back from the topic after the run."""
    wanted, found = set(keys), {}
    consumer = Consumer(kafka_config(bootstrap, **{"group.id": "bench-latency",
                                                   "enable.auto.commit": False}))
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts}
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    done = {p for p, end in ends.items() if end == 0}
    while len(done) < len(parts) and len(found) < len(wanted):
        for message in consumer.consume(num_messages=10000, timeout=1.0):
            if message.error():
                continue
            key = message.key().decode(errors="replace") if message.key() else ""
            if key in wanted:
                found[key] = message.timestamp()[1] / 1000.0
            if message.offset() + 1 >= ends[message.partition()]:
                done.add(message.partition())
    consumer.close()
    return found


def percentile(values, q):
    """The q-quantile by linear interpolation (None when there are no values)."""
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(values) - 1)
    if values[low] == float("inf") or (values[high] == float("inf") and pos > low):
        return float("inf")
    return values[low] + (values[high] - values[low]) * (pos - low)


def warm_up(args, poller):
    """Sends the warm-up and waits until its closing marker is visible; returns how long."""
    producer, started = produce(args, args.warmup, WARMUP_RATE)
    producer.communicate()
    while args.warmup_key not in poller.seen:
        if time.time() > started + WARMUP_TIMEOUT:
            raise SystemExit(f"the warm-up was not processed within {WARMUP_TIMEOUT} s")
        time.sleep(0.2)
        poller.poll([args.warmup_key])
    time.sleep(1.0)
    return time.time() - started


def censored_percentile(latencies, unseen, q):
    """The q-quantile with markers never seen counted as infinitely late: (value, None), or
    (None, lower bound) when the quantile falls on an unseen marker."""
    values = latencies + [float("inf")] * len(unseen)
    value = percentile(values, q)
    if value is None or value != float("inf"):
        return value, None
    return None, min(unseen)


def run(args):
    """Warms up, produces, polls, then writes each marker's latency and the summary."""
    keys = json.load(open(args.keys))
    poller = Poller(args.keyspace, args.table)
    warmup_s = warm_up(args, poller) if args.warmup else 0.0
    producer, started = produce(args, args.file, args.rate)
    ended = None
    while True:
        now = time.time()
        due = [m["key"] for m in keys if started + m["row"] / args.rate - 0.5 <= now]
        poller.poll(due)
        if ended is None and producer.poll() is not None:
            ended = time.time()
        seen = sum(1 for m in keys if m["key"] in poller.seen)
        if ended is not None and ((seen == len(keys) and now > ended + TAIL_SECONDS)
                                  or now > ended + args.grace):
            break
        time.sleep(POLL_SECONDS)
    polled_until = time.time()
    poller.close()
    produce_log = producer.stderr.read()
    topic = f"{args.tenant}.reviews"
    sent = send_times(args.bootstrap, topic, [m["key"] for m in keys])
    latencies = sorted(poller.seen[k] - sent[k] for k in sent if k in poller.seen)
    unseen = [polled_until - sent[k] for k in sent if k not in poller.seen]
    p50, p50_over = censored_percentile(latencies, unseen, 0.5)
    p99, p99_over = censored_percentile(latencies, unseen, 0.99)
    result = {
        "rate": args.rate, "markers": len(keys), "seen": len(latencies),
        "warmup_s": warmup_s,
        "produce_started": started, "produce_ended": ended,
        "produce_seconds": ended - started, "produce_rc": producer.returncode,
        "produce_log": produce_log.strip().splitlines()[-8:],
        "p50_s": p50, "p99_s": p99, "p50_over_s": p50_over, "p99_over_s": p99_over,
        "max_s": latencies[-1] if latencies else None,
        "grace_s": args.grace,
        "markers_detail": [{"key": k, "sent": sent.get(k), "seen": poller.seen.get(k)}
                           for k in (m["key"] for m in keys)],
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    p50 = f"> {p50_over:.1f}" if p50 is None else f"{p50:.3f}"
    p99 = f"> {p99_over:.1f}" if p99 is None else f"{p99:.3f}"
    print(f"latency at {args.rate:.0f}/s: {len(latencies)}/{len(keys)} markers seen, "
          f"p50 {p50} s, p99 {p99} s (produce took {result['produce_seconds']:.1f} s)")
    if producer.returncode != 0:
        raise SystemExit(f"produce failed: {produce_log[-2000:]}")


def main():
    """Dispatches to the step asked for."""
    args = parse_args()
    {"markers": add_markers, "warmup": add_warmup_marker, "run": run}[args.command](args)


if __name__ == "__main__":
    main()
