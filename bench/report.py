"""Renders bench/results.json (from analyze.py) as bench/report.md with PNG plots under
bench/figures/: the tables and figures issue 5 asks for, in one file anyone can regenerate with
`just bench-spark` (or just this step: `bench/.venv/bin/python bench/report.py`).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import tenants_section  # noqa: E402

HERE = Path(__file__).resolve().parent
COLORS = {"mysimbdp": "tab:blue", "spark": "tab:orange"}
NAMES = {"mysimbdp": "mysimbdp", "spark": "Spark 3.5.7"}


def fmt(value, digits=0, unit=""):
    """A number for a table cell; '–' when it is missing."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{unit}"


def quantile(run, name):
    """A latency quantile, or '> X' when it falls on a marker never seen (X: a lower bound)."""
    if run[f"{name}_s"] is not None:
        return fmt(run[f"{name}_s"], 2)
    if run.get(f"{name}_over_s") is not None:
        return f"> {run[f'{name}_over_s']:.1f}"
    return "–"


def ratio(a, b):
    """a / b as '12.3×', or '–'."""
    if not a or not b:
        return "–"
    return f"{a / b:.1f}×"


def plot_throughput(thr, path):
    """Records processed over time with the input already in Kafka, one line per engine."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for engine, t in thr.items():
        s = t["series"]
        ax.plot(s["t"], s["processed"], label=NAMES[engine], color=COLORS[engine])
    ax.set_xlabel("seconds since the engine started on the input")
    ax.set_ylabel("records processed")
    ax.set_title("Throughput run: the same input already in Kafka")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(lat, path):
    """p50 and p99 latency against the input rate, per engine (log-log)."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for engine in NAMES:
        runs = sorted((r for r in lat if r["engine"] == engine), key=lambda r: r["rate"])
        for name, style in (("p50", "o-"), ("p99", "s--")):
            points = [(r["sent_per_s"], r[f"{name}_s"] or r[f"{name}_over_s"]) for r in runs
                      if (r[f"{name}_s"] or r[f"{name}_over_s"]) is not None]
            if points:
                ax.plot(*zip(*points), style, color=COLORS[engine], label=f"{NAMES[engine]} {name}")
            bounds = [(r["sent_per_s"], r[f"{name}_over_s"]) for r in runs
                      if r[f"{name}_s"] is None and r.get(f"{name}_over_s") is not None]
            if bounds:
                ax.plot(*zip(*bounds), "^", markersize=11, color=COLORS[engine])
        for r in runs:
            if r["seen"] < r["markers"]:
                y = r["p99_s"] or r["p99_over_s"]
                ax.annotate(f"{r['seen']}/{r['markers']} markers seen;\n▲ = at least", (r["sent_per_s"], y),
                            fontsize=7, textcoords="offset points", xytext=(-95, -22))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input rate actually produced (records/s)")
    ax.set_ylabel("produce → visible in Cassandra (s)")
    ax.set_title("End-to-end latency of marker records, update mode")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lag(lat, path):
    """Lag (records in Kafka not yet processed) over time, one panel per input rate."""
    rates = sorted({r["rate"] for r in lat})
    fig, axes = plt.subplots(1, len(rates), figsize=(3.2 * len(rates), 3.2), squeeze=False)
    for ax, rate in zip(axes[0], rates):
        for r in (r for r in lat if r["rate"] == rate):
            s = r["series"]
            ax.plot(s["t"], s["lag"], color=COLORS[r["engine"]], label=NAMES[r["engine"]])
        ax.set_title(f"{rate:,} records/s", fontsize=9)
        ax.set_xlabel("s since produce started", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("lag (records)")
    for ax in axes[0]:
        ax.legend(fontsize=7)
    fig.suptitle("Lag over time at fixed input rates", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cpu(lat, thr, path):
    """CPU cores each engine used against the input rate (the machine has two)."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for engine in NAMES:
        runs = [r for r in lat if r["engine"] == engine]
        if runs:
            ax.plot([r["sent_per_s"] for r in runs], [r["cpu_per_s"] for r in runs], "o-",
                    color=COLORS[engine], label=NAMES[engine])
        if engine in thr:
            t = thr[engine]
            ax.plot([t["records_per_s"]], [t["cpu_s_window"] / t["window_s"]], "*",
                    markersize=12, color=COLORS[engine], label=f"{NAMES[engine]} at full speed")
    ax.axhline(2, color="grey", linestyle=":", label="all of both cores")
    ax.set_xscale("log")
    ax.set_xlabel("records/s")
    ax.set_ylabel("CPU cores used by the engine")
    ax.set_title("CPU cost of the engine (Kafka and Cassandra not counted)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def throughput_table(thr):
    """The throughput table, one row per engine, then the ratio row."""
    lines = [
        "| engine | records/s (input in Kafka → all in Cassandra) | records/s incl. start-up | "
        "engine's own rate: mean / peak (records/s) | CPU s (busy phase) | records per CPU s | "
        "peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, t in thr.items():
        rate = t["engine_rate"]
        lines.append(
            f"| {NAMES[engine]} | **{fmt(t['records_per_s'])}** ({fmt(t['window_s'], 1)} s) | "
            f"{fmt(t['records_per_s_from_launch'])} ({fmt(t['wall_from_launch_s'], 1)} s) | "
            f"{fmt(rate['mean'])} / {fmt(rate['peak'])} | {fmt(t['cpu_s_window'], 1)} "
            f"(total {fmt(t['cpu_s_total'], 1)}) | {fmt(t['records_per_cpu_s'])} | "
            f"{fmt(t['peak_rss_mib'])} |")
    if "mysimbdp" in thr and "spark" in thr:
        a, b = thr["mysimbdp"], thr["spark"]
        lines.append(
            f"| **mysimbdp ÷ Spark** | **{ratio(a['records_per_s'], b['records_per_s'])}** | "
            f"{ratio(a['records_per_s_from_launch'], b['records_per_s_from_launch'])} | "
            f"not the same measure | "
            f"{ratio(b['cpu_s_window'], a['cpu_s_window'])} less | "
            f"{ratio(a['records_per_cpu_s'], b['records_per_cpu_s'])} | "
            f"{ratio(b['peak_rss_mib'], a['peak_rss_mib'])} less |")
    return "\n".join(lines)


def warm_note(thr):
    """Spark's throughput once its JVM is warm, and our ratio to that (the fairer figure for
    a query that runs for days)."""
    spark, ours = thr.get("spark"), thr.get("mysimbdp")
    if not (spark and spark.get("warm")):
        return ""
    warm = spark["warm"]
    text = (f"Spark's first micro-batch runs in a cold JVM (class loading, JIT, query planning, "
            f"connector sessions). Leaving it out, Spark did {warm['rows']:,} records in "
            f"{warm['window_s']:.1f} s: **{warm['records_per_s']:,.0f} records/s**")
    if ours:
        text += f", and mysimbdp's throughput is **{ratio(ours['records_per_s'], warm['records_per_s'])}** that"
    return text + f". Spark ran {spark['batches']} micro-batches of up to the maxOffsetsPerTrigger, " \
        f"{spark['mean_batch_s']:.1f} s each on average."


def cores_table(thr):
    """Who used the two cores during each engine's throughput run."""
    lines = ["| during the run of | the engine | Kafka | Cassandra | everything else (other work "
             "on the machine, the monitor, the OS) | machine total (of 2) |",
             "|---|---:|---:|---:|---:|---:|"]
    for engine, t in thr.items():
        c = t.get("cores") or {}
        lines.append(f"| {NAMES[engine]} | {fmt(c.get('engine'), 2)} | {fmt(c.get('kafka'), 2)} | "
                     f"{fmt(c.get('cassandra'), 2)} | {fmt(c.get('other'), 2)} | "
                     f"{fmt(c.get('machine_busy'), 2)} |")
    return "\n".join(lines)


def spark_batch_table(thr, lat):
    """Spark's mean time per micro-batch phase: at full speed and at each fixed rate."""
    runs = []
    if thr.get("spark", {}).get("spark_batch"):
        runs.append(("full speed (throughput run)", thr["spark"]["spark_batch"]))
    runs += [(f"{r['rate']:,} records/s", r["spark_batch"]) for r in lat
             if r["engine"] == "spark" and r.get("spark_batch")]
    if not runs:
        return "_No Spark micro-batches recorded._"
    phases = ["triggerExecution", "addBatch", "queryPlanning", "walCommit", "commitOffsets",
              "latestOffset", "state_allUpdates", "state_commit"]
    lines = ["| input | rows per batch | windows updated per batch | "
             + " | ".join(phases) + " |", "|---|" + "---:|" * (len(phases) + 2)]
    for name, b in runs:
        lines.append(f"| {name} | {fmt(b.get('rows'))} | {fmt(b.get('windows_updated'))} | "
                     + " | ".join(fmt(b.get(p), 2) for p in phases) + " |")
    return "\n".join(lines)


def catch_up(run):
    """How long after the input ended the engine had processed all of it."""
    if run["catch_up_s"] is None:
        return "not within the run"
    return fmt(run["catch_up_s"], 1)


def latency_table(lat):
    """The latency table, one row per engine and input rate."""
    if not lat:
        return "_Not measured in this run (`BENCH_RATES` was empty): throughput only._"
    lines = [
        "| input rate asked | engine | produced (rec/s) | markers seen | p50 (s) | p99 (s) | "
        "max (s) | max lag (records) | lag when the input ended | caught up (s after the end) | "
        "CPU cores | peak RSS (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(lat, key=lambda r: (r["rate"], r["engine"])):
        seen = f"{r['seen']}/{r['markers']}"
        if r["seen"] < r["markers"]:
            seen += f" (rest > {r['grace_s']:.0f} s after the input ended)"
        lines.append(
            f"| {r['rate']:,} | {NAMES[r['engine']]} | {fmt(r['sent_per_s'])} | {seen} | "
            f"{quantile(r, 'p50')} | {quantile(r, 'p99')} | {fmt(r['max_s'], 2)} | "
            f"{fmt(r['max_lag'])} | {fmt(r['end_lag'])} | {catch_up(r)} | "
            f"{fmt(r['cpu_per_s'], 2)} | {fmt(r['peak_rss_mib'])} |")
    return "\n".join(lines)


def latency_ratios(lat):
    """Per common rate: Spark's p50 and p99 over ours."""
    by = {(r["engine"], r["rate"]): r for r in lat}
    lines = []
    for rate in sorted({r["rate"] for r in lat}):
        a, b = by.get(("mysimbdp", rate)), by.get(("spark", rate))
        if not (a and b and a["p50_s"] and a["p99_s"]):
            continue
        p50 = ratio(b["p50_s"], a["p50_s"]) if b["p50_s"] else f"over {ratio(b['p50_over_s'], a['p50_s'])}"
        p99 = ratio(b["p99_s"], a["p99_s"]) if b["p99_s"] else f"over {ratio(b['p99_over_s'], a['p99_s'])}"
        lines.append(f"- at {rate:,} records/s: Spark's p50 is {p50} ours, its p99 {p99} ours")
    return "\n".join(lines)


def correctness_text(c):
    """One paragraph on whether both engines' aggregates agree."""
    if not c:
        return "_Not run._"
    verdict = "**equal**" if c["equal"] else "**DIFFERENT**"
    text = (f"mysimbdp wrote {c['left_rows']:,} (product, day) rows covering "
            f"{c['left_reviews']:,} reviews; Spark's table, holding its last update per window, "
            f"{c['right_rows']:,} rows covering {c['right_reviews']:,} reviews. Compared row by "
            f"row (window end, number of reviews, average star rating to 1e-12, helpful and "
            f"total votes): {verdict} — {c['only_left']} rows only in mysimbdp's table, "
            f"{c['only_right']} only in Spark's, {c['differ']} with different values.")
    if c["examples"]:
        text += "\n\nExamples:\n\n```json\n" + json.dumps(c["examples"], indent=1) + "\n```"
    return text


def other_load(thr, lat, results_runs=None):
    """The range of CPU used by other work during the throughput runs: the noise (in the
    latency runs the producer and the poller count there too, so they are left out)."""
    others = [r["other_cores"] for rs in (results_runs or {}).values() for r in rs] or \
        [r["cores"]["other"] for r in thr.values() if r.get("cores", {}).get("other") is not None]
    if not others:
        return "not recorded"
    return f"{min(others):.2f}–{max(others):.2f} cores (mean {sum(others) / len(others):.2f})"


def _mmm(values, digits=0):
    """min / median / max of the values, or '–'."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return "–"
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return " / ".join(fmt(v, digits) for v in (values[0], median, values[-1]))


def _median(values):
    """The median of the values that are there, or None."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def runs_table(results):
    """Every throughput round of each engine: min / median / max of records/s, of CPU µs per
    record of the engine alone and of the whole stack (engine + Kafka + Cassandra), and of the
    other load on the machine meanwhile."""
    runs = results.get("throughput_runs") or {}
    if not runs:
        return ""
    n = max(len(r) for r in runs.values())
    lines = [f"All {n} rounds (each engine once per round, interleaved; min / median / max):", "",
             "| engine | records/s | records/s once warm | engine CPU µs/record | Kafka CPU "
             "µs/record | Cassandra CPU µs/record | engine + Kafka + Cassandra µs/record | "
             "other load (cores) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for engine, rs in runs.items():
        col = lambda k, d=0: _mmm([r.get(k) for r in rs], d)
        lines.append(f"| {NAMES[engine]} | {col('records_per_s')} | {col('warm_records_per_s')} | "
                     f"{col('engine_us_per_record', 1)} | {col('kafka_us_per_record', 1)} | "
                     f"{col('cassandra_us_per_record', 1)} | {col('machine_us_per_record', 1)} | "
                     f"{col('other_cores', 2)} |")
    return "\n".join(lines)


def headline(results):
    """The measured ratios in a few bullets, against the issue's aims (>= 10x Spark's
    throughput, p99 under one second), met or not."""
    thr, lat, c = results["throughput"], results["latency"], results["correctness"]
    out = []
    runs = results.get("throughput_runs") or {}
    if "mysimbdp" in runs and "spark" in runs:
        a, b = runs["mysimbdp"], runs["spark"]
        ours = _median([r["records_per_s"] for r in a])
        cold = _median([r["records_per_s"] for r in b])
        warm = _median([r.get("warm_records_per_s") or r["records_per_s"] for r in b])
        r = ours / warm
        out.append(
            f"- **Throughput against warm Spark** (input already in Kafka, until all of it is in "
            f"Cassandra; medians of {len(a)} and {len(b)} rounds): mysimbdp {ours:,.0f} records/s, "
            f"Spark {warm:,.0f} once its JVM is warm: **{r:.1f}×** (against Spark's whole run, "
            f"cold first micro-batch included, {cold:,.0f}: {ours / cold:.1f}×). The ≥ 10× aim is "
            f"**{'met' if r >= 10 else 'not met'}**.")
        eng = lambda rs, k: _median([x[k] for x in rs])
        out.append(
            f"- **CPU per record** (medians): the engine alone {eng(a, 'engine_us_per_record'):.1f} µs "
            f"against Spark's {eng(b, 'engine_us_per_record'):.1f} µs "
            f"({eng(b, 'engine_us_per_record') / eng(a, 'engine_us_per_record'):.1f}× less); the whole "
            f"machine's work (engine + Kafka + Cassandra) {eng(a, 'machine_us_per_record'):.1f} µs "
            f"against {eng(b, 'machine_us_per_record'):.1f} µs "
            f"({eng(b, 'machine_us_per_record') / eng(a, 'machine_us_per_record'):.1f}× less), of which "
            f"Cassandra {eng(a, 'cassandra_us_per_record'):.1f} µs against "
            f"{eng(b, 'cassandra_us_per_record'):.1f} µs.")
        cores = results["meta"].get("cores") or 2
        machine = eng(a, "machine_us_per_record")
        cassandra = eng(a, "cassandra_us_per_record")
        ceiling = cores / machine * 1e6
        alone = cores / cassandra * 1e6
        out.append(
            f"- **The machine's ceiling** at these costs: {cores} cores carry at most "
            f"{ceiling:,.0f} records/s for the engine, Kafka and Cassandra together "
            f"({ceiling / warm:.1f}× warm Spark); mysimbdp reached {100 * ours / ceiling:.0f}% of "
            f"it. Cassandra's own {cassandra:.1f} µs a record would allow {alone:,.0f} records/s "
            f"({alone / warm:.1f}× warm Spark) only if the engine and Kafka cost nothing. "
            f"`bench-cassandra` measures Cassandra alone with our own writer (see "
            f"`bench/write-path.md`).")
    if "mysimbdp" in thr and "spark" in thr:
        a, b = thr["mysimbdp"], thr["spark"]
        out.append(
            f"- **Memory** (median round): peak {a['peak_rss_mib']:,.0f} MiB against "
            f"{b['peak_rss_mib']:,.0f} MiB (Spark's driver JVM and its Python process).")
    ours = [r for r in lat if r["engine"] == "mysimbdp"]
    spark = [r for r in lat if r["engine"] == "spark"]
    if ours and spark:
        def span(runs, name):
            """min–max of a quantile over the rates, and the largest bound where not kept up."""
            known = [r[f"{name}_s"] for r in runs if r[f"{name}_s"] is not None]
            over = [r[f"{name}_over_s"] for r in runs if r[f"{name}_s"] is None
                    and r.get(f"{name}_over_s") is not None]
            text = f"{min(known):.2f}–{max(known):.2f}" if known else ""
            if over:
                text += f"{' and ' if text else ''}> {max(over):.0f} (not kept up)"
            return text or "–"
        under = [r for r in ours if r["p99_s"] is not None and r["p99_s"] < 1.0]
        out.append(
            f"- **Latency** (produce → first update in Cassandra) at "
            f"{', '.join(f'{r:,}' for r in sorted({r['rate'] for r in lat}))} records/s: "
            f"mysimbdp p50 {span(ours, 'p50')} s, p99 {span(ours, 'p99')} s; Spark p50 "
            f"{span(spark, 'p50')} s, p99 {span(spark, 'p99')} s. p99 under one second: "
            f"{len(under)} of {len(ours)} rates for mysimbdp.")
    if c:
        out.append(f"- **Same results**: {'yes' if c['equal'] else 'NO'} — {c['left_rows']:,} "
                   f"daily aggregates compared row by row.")
    return "\n".join(out)


def render(results, figures, tenants=None):
    """The whole report as markdown; `tenants` is bench-tenants' JSON, when there is one."""
    meta, thr, lat = results["meta"], results["throughput"], results["latency"]
    template = (HERE / "report_template.md").read_text()
    return template.format(
        date=meta["date"], run_id=meta["id"], rows=f"{meta['rows']:,}",
        days=f"{max(3, meta['rows'] * 730 // 300_000):,}",
        rates=", ".join(f"{r:,}" for r in meta["rates"]), seconds=f"{meta['seconds']:.0f}",
        cores=meta["cores"], mem=meta["mem_gib"], cpu=meta["cpu_model"], java=meta["java"],
        git=meta["git"], load=", ".join(f"{x:.1f}" for x in meta["load_at_start"]),
        max_offsets=f"{meta['spark_max_offsets']:,}",
        throughput_table=throughput_table(thr), warm_note=warm_note(thr),
        runs_table=runs_table(results),
        latency_figures="\n\n".join(
            f"![{alt}](figures/{name}.png)" for alt, name in
            (("latency against input rate", "latency"), ("lag over time", "lag"),
             ("CPU against input rate", "cpu"))) if lat else "",
        runs_note=(f"{max(len(r) for r in results['throughput_runs'].values())} throughput "
                   "rounds of each engine (min / median / max above), one latency run per rate"
                   if results.get("throughput_runs") else "One run of each"),
        cores_table=cores_table(thr), spark_batch_table=spark_batch_table(thr, lat),
        other_load=other_load(thr, lat, results.get("throughput_runs")), headline=headline(results), correctness=correctness_text(results["correctness"]),
        latency_table=latency_table(lat), latency_ratios=latency_ratios(lat),
        figures=figures,
        tenants_section=(tenants_section.render(tenants, figures) if tenants else
                         "_No `bench/tenants.json`: run `bench-tenants` with "
                         "`BENCH_TENANTS_JSON=bench/tenants.json`._"),
    )


def main():
    """Reads the results, draws the figures and writes the report."""
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    results = json.loads(source.read_text())
    figures = HERE / "figures"
    figures.mkdir(exist_ok=True)
    if results["throughput"]:
        plot_throughput(results["throughput"], figures / "throughput.png")
    if results["latency"]:
        plot_latency(results["latency"], figures / "latency.png")
        plot_lag(results["latency"], figures / "lag.png")
        plot_cpu(results["latency"], results["throughput"], figures / "cpu.png")
    tenants_file = HERE / "tenants.json"
    tenants = json.loads(tenants_file.read_text()) if tenants_file.exists() else None
    if tenants:
        tenants_section.plot_idle(tenants, figures / "tenants-idle.png")
        tenants_section.plot_busy(tenants, figures / "tenants-busy.png")
    (HERE / "report.md").write_text(render(results, "figures", tenants))
    print(f"report: wrote {HERE / 'report.md'} and {figures}/*.png")


if __name__ == "__main__":
    main()
