"""Turns one run's raw files (.state/bench-spark/<id>/, written by scripts/bench-spark.sh) into
bench/results.json: the numbers and the time series the report shows, so that the report can be
rendered again without rerunning the engines.

Usage: analyze.py RUN_DIR OUT.json
"""

import json
import sys
from datetime import datetime
from pathlib import Path

ENGINES = ("mysimbdp", "spark")


def read_lines(path):
    """A JSON-lines file as a list (empty when the file is missing)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_json(path, default=None):
    """A JSON file, or the default when it is missing."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default


def spark_batches(progress):
    """Spark's micro-batches that read data, with their start and end as epoch seconds."""
    batches = []
    for p in progress:
        if p["numInputRows"] <= 0:
            continue
        start = datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp()
        duration = p["durationMs"]["triggerExecution"] / 1000
        batches.append({"start": start, "end": start + duration, "rows": p["numInputRows"],
                        "duration": duration, "rate": p.get("processedRowsPerSecond") or 0.0})
    return batches


def at(samples, t, field):
    """A monitor field at time t, interpolated linearly between the samples around it."""
    samples = [s for s in samples if s.get(field) is not None]
    before = [s for s in samples if s["t"] <= t]
    after = [s for s in samples if s["t"] >= t]
    if not before:
        return after[0][field] if after else 0.0
    if not after:
        return before[-1][field]
    a, b = before[-1], after[0]
    if b["t"] == a["t"]:
        return a[field]
    return a[field] + (b[field] - a[field]) * (t - a["t"]) / (b["t"] - a["t"])


def series(samples, t0, since=None, limit=300):
    """The monitor samples relative to t0 (from `since` seconds before it, if given), thinned
    to at most `limit` points, for the plots. Samples without the engine's count (its metrics
    not up yet, or already down) are left out."""
    samples = [s for s in samples if "processed" in s
               and (since is None or s["t"] >= t0 - since)]
    step = max(1, len(samples) // limit)
    out = {"t": [], "input": [], "processed": [], "lag": [], "cpu_s": [], "rss_mib": []}
    for s in samples[::step]:
        processed = s.get("processed", 0)
        out["t"].append(round(s["t"] - t0, 3))
        out["input"].append(s["input"])
        out["processed"].append(processed)
        out["lag"].append(max(0, s["input"] - processed))
        out["cpu_s"].append(round(s["cpu_s"], 2))
        out["rss_mib"].append(round(s["rss_mib"], 1))
    return out


def peak_memory(samples, summary=None):
    """Peak resident memory of the engine's processes (the sum of each one's VmHWM)."""
    peak = max((s["hwm_mib"] for s in samples), default=0.0)
    if summary:
        peak = max(peak, summary["jvm"]["peak_rss_mib"] + summary["driver_python"]["peak_rss_mib"])
    return peak


def engine_rate(engine, samples, batches):
    """The engine's own processing rate: Spark's processedRowsPerSecond per micro-batch (input
    rows over the batch's duration, its Cassandra write included), ours the platform's
    mysimbdp_process_rate gauge (records per second of busy time over the last second)."""
    if engine == "spark":
        rows = sum(b["rows"] for b in batches)
        busy = sum(b["duration"] for b in batches)
        return {"mean": rows / busy if busy else None,
                "peak": max((b["rate"] for b in batches), default=None)}
    rates = [s["process_rate"] for s in samples if s.get("process_rate", 0) > 0]
    return {"mean": sum(rates) / len(rates) if rates else None,
            "peak": max(rates, default=None)}


def processing_window(engine, samples, times, batches, rows, status=None):
    """From when the engine started on the input to when all of it was in Cassandra. Spark:
    the start of its first micro-batch with data to the end of the one that reached the last
    record (JVM start and jar resolution left out). mysimbdp: the last sample before it had
    processed anything to the end of its drain, which also closes and writes every window.
    When it went is its own clock's `first_record_ms` (the first batch it read), like Spark's
    micro-batch times; without it, the last monitor sample before it had processed anything
    (up to one sampling interval early)."""
    if engine == "spark":
        done = next((b for b in _running(batches) if b[0] >= rows), None)
        return batches[0]["start"], (done[1]["end"] if done else batches[-1]["end"])
    first = (status or {}).get("first_record_ms")
    if first:
        return first / 1000, times["drained"]
    zero = [s["t"] for s in samples if not s.get("processed") and s["t"] < times["drained"]]
    start = zero[-1] if zero else times["launched"]
    return start, times["drained"]


def _running(batches):
    """Pairs of (rows so far, batch)."""
    total = 0
    for b in batches:
        total += b["rows"]
        yield total, b


def cores_used(samples, start, end, engine_cpu):
    """Cores used on average over [start, end]: by the engine, Kafka, Cassandra, and by
    everything else on the machine (other work, the monitor, the OS): what the engine competed
    with."""
    span = end - start
    used = {"engine": engine_cpu / span}
    for name in ("kafka", "cassandra", "machine_busy"):
        field = "machine_busy_s" if name == "machine_busy" else f"{name}_cpu_s"
        if any(s.get(field) is not None for s in samples):
            used[name] = (at(samples, end, field) - at(samples, start, field)) / span
    if {"kafka", "cassandra", "machine_busy"} <= set(used):
        used["other"] = max(0.0, used["machine_busy"] - used["engine"] - used["kafka"]
                            - used["cassandra"])
    return used


def batch_breakdown(progress):
    """Where Spark's micro-batches spend their time: the mean of each phase over the batches
    that read data, in seconds, with the state store's share."""
    data = [p for p in progress if p["numInputRows"] > 0]
    if not data:
        return None
    phases = {}
    for p in data:
        for name, ms in p["durationMs"].items():
            phases[name] = phases.get(name, 0.0) + ms / 1000 / len(data)
        for op in p.get("stateOperators", []):
            for name in ("allUpdatesTimeMs", "allRemovalsTimeMs", "commitTimeMs"):
                key = f"state_{name[:-6]}"
                phases[key] = phases.get(key, 0.0) + op.get(name, 0) / 1000 / len(data)
    phases["rows"] = sum(p["numInputRows"] for p in data) / len(data)
    phases["windows_updated"] = sum(p["stateOperators"][0]["numRowsUpdated"] for p in data
                                    if p.get("stateOperators")) / len(data)
    return phases


def warm_throughput(batches, end):
    """Spark's records/s after its first micro-batch, which runs in a cold JVM (JIT, planning,
    connector sessions): what a long-running query does. None for mysimbdp, or when the later
    batches hold too little of the input to say."""
    rows = sum(b["rows"] for b in batches[1:])
    if len(batches) < 3 or rows < sum(b["rows"] for b in batches) / 2:
        return None
    return {"rows": rows, "window_s": end - batches[0]["end"],
            "records_per_s": rows / (end - batches[0]["end"])}


def throughput(run, engine, rows, folder="thr"):
    """The sustained-throughput figures of one engine on the input already in Kafka."""
    d = run / folder / engine
    samples = read_lines(d / "monitor.jsonl")
    times = read_json(d / "times.json", {})
    summary = read_json(d / "summary.json")
    batches = spark_batches(read_lines(d / "progress.jsonl"))
    status = read_json(d / "status.json")
    start, end = processing_window(engine, samples, times, batches, rows, status)
    done = summary["finished_at"] if summary else times["drained"]
    cpu_window = at(samples, end, "cpu_s") - at(samples, start, "cpu_s")
    cpu_total = samples[-1]["cpu_s"] if samples else None
    if summary:
        cpu_total = summary["jvm"]["cpu_s"] + summary["driver_python"]["cpu_s"]
    window = end - start
    return {
        "rows": rows, "window_s": window, "records_per_s": rows / window,
        "wall_from_launch_s": done - times["launched"],
        "records_per_s_from_launch": rows / (done - times["launched"]),
        "cpu_s_window": cpu_window, "cpu_s_total": cpu_total,
        "records_per_cpu_s": rows / cpu_window if cpu_window else None,
        "peak_rss_mib": peak_memory(samples, summary),
        "engine_rate": engine_rate(engine, samples, batches),
        "warm": warm_throughput(batches, end),
        "cores": cores_used(samples, start, end, cpu_window),
        "spark_batch": batch_breakdown(read_lines(d / "progress.jsonl")),
        "status": status,
        "batches": len(batches),
        "mean_batch_s": sum(b["duration"] for b in batches) / len(batches) if batches else None,
        "series": series(samples, start),
    }


def round_summary(t):
    """One throughput round of one engine in a few numbers: records/s (and once warm, for
    Spark), CPU µs per record of the engine and of the engine, Kafka and Cassandra together,
    and the cores other work used meanwhile."""
    c = t.get("cores") or {}
    window, rows = t["window_s"], t["rows"]
    stack = sum(c.get(k) or 0.0 for k in ("engine", "kafka", "cassandra")) * window
    return {"records_per_s": t["records_per_s"],
            "warm_records_per_s": (t.get("warm") or {}).get("records_per_s"),
            "engine_us_per_record": t["cpu_s_window"] * 1e6 / rows,
            "kafka_us_per_record": (c.get("kafka") or 0.0) * window * 1e6 / rows,
            "cassandra_us_per_record": (c.get("cassandra") or 0.0) * window * 1e6 / rows,
            "machine_us_per_record": stack * 1e6 / rows,
            "other_cores": c.get("other") or 0.0,
            "peak_rss_mib": t["peak_rss_mib"]}


def catch_up_time(samples, t1):
    """Seconds after the input ended (t1) until the engine had processed all of it; None if
    it had not when the run stopped."""
    total = at(samples, t1, "input")
    for s in samples:
        if s["t"] >= t1 and s.get("processed", -1) >= total:
            return s["t"] - t1
    return None


def _after(progress, t0):
    """Whether a Spark micro-batch started after t0 (so it belongs to the measured input)."""
    start = datetime.fromisoformat(progress["timestamp"].replace("Z", "+00:00")).timestamp()
    return start >= t0


def latency(run_dir, engine, rate):
    """One fixed-rate run: latency percentiles, what rate was really sent and processed, the
    lag it ended with, CPU and memory."""
    d = run_dir / "lat" / f"{engine}-{rate}"
    result = read_json(d / "latency.json")
    if result is None:
        return None
    samples = read_lines(d / "monitor.jsonl")
    summary = read_json(d / "summary.json")
    t0, t1 = result["produce_started"], result["produce_ended"]
    sent = at(samples, t1, "input") - at(samples, t0, "input")
    processed = at(samples, t1, "processed") - at(samples, t0, "processed")
    cpu = at(samples, t1, "cpu_s") - at(samples, t0, "cpu_s")
    lags = [max(0, s["input"] - s["processed"]) for s in samples
            if t0 <= s["t"] <= t1 and "processed" in s]
    catch_up = catch_up_time(samples, t1)
    p99_over = result.get("p99_over_s")
    if p99_over is not None:  # the p99 is at least the p50 too
        p99_over = max(p99_over, result["p50_s"] or result.get("p50_over_s") or 0.0)
    return {
        "engine": engine, "rate": rate, "seconds": t1 - t0,
        "sent_per_s": sent / (t1 - t0), "processed_per_s": processed / (t1 - t0),
        "markers": result["markers"], "seen": result["seen"], "grace_s": result["grace_s"],
        "p50_s": result["p50_s"], "p99_s": result["p99_s"], "max_s": result["max_s"],
        "p50_over_s": result.get("p50_over_s"), "p99_over_s": p99_over,
        "warmup_s": result.get("warmup_s"),
        "max_lag": max(lags, default=0), "end_lag": lags[-1] if lags else None,
        "catch_up_s": catch_up,
        "effective_per_s": sent / (t1 + catch_up - t0) if catch_up is not None else None,
        "cpu_per_s": cpu / (t1 - t0), "peak_rss_mib": peak_memory(samples, summary),
        "cores": cores_used(samples, t0, t1, cpu),
        "spark_batch": batch_breakdown([p for p in read_lines(d / "progress.jsonl")
                                        if _after(p, t0)]),
        "series": series(samples, t0, since=1.0),
    }


def main():
    """Reads the run directory and writes the results file."""
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    meta = read_json(run / "meta.json")
    results = {"meta": meta, "throughput": {}, "latency": [],
               "correctness": read_json(run / "correctness.json")}
    # Every round (thr/, thr-2/, ...); the report's detailed figures are the median round's
    # (by records/s; Spark's once warm), its tables give all rounds' min / median / max.
    folders = sorted((d.name for d in run.glob("thr*") if d.is_dir()),
                     key=lambda n: int(n.split("-")[1]) if "-" in n else 1)
    results["throughput_runs"] = {}
    for engine in ENGINES:
        rounds = [throughput(run, engine, meta["rows"], f) for f in folders
                  if (run / f / engine / "times.json").exists()]
        if not rounds:
            continue
        key = lambda t: (t.get("warm") or t)["records_per_s"]
        results["throughput"][engine] = sorted(rounds, key=key)[len(rounds) // 2]
        results["throughput_runs"][engine] = [round_summary(t) for t in rounds]
    for d in sorted(d for d in (run / "lat").glob("*-*") if d.is_dir()):
        engine, rate = d.name.rsplit("-", 1)
        entry = latency(run, engine, int(rate))
        if entry:
            results["latency"].append(entry)
    results["latency"].sort(key=lambda e: (e["engine"], e["rate"]))
    out.write_text(json.dumps(results, indent=1))
    print(f"analyze: wrote {out}")


if __name__ == "__main__":
    main()
