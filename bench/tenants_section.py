"""The many-tenants section of bench/report.md, from `bench-tenants`'s bench/tenants.json: what an
idle app costs as the number of apps grows, where an idle host's CPU goes, start-up, and how evenly
50 busy tenants are served (the report's Part 3, question 4), and one host against two. Every measure is over
`BENCH_RUNS` runs: tables give the median, and min–max where it matters. Used by report.py."""

import statistics

import matplotlib.pyplot as plt

MEASURES = ("startup_s", "restart_s", "rss_mib", "threads", "sockets", "idle_cores")


def _layout(row):
    return f"{row['tenants']} × {row['apps_per_tenant']}"


def _apps(row):
    return row["tenants"] * row["apps_per_tenant"]


def _median(values):
    return statistics.median_low(values) if values else 0.0


def _of(row, key):
    """One measure of an idle layout over its runs."""
    return [run[key] for run in row["runs"]]


def _med(row, key):
    return _median(_of(row, key))


def _range(values, digits):
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def plot_idle(tenants, path):
    """Resident memory, threads and start-up against the number of idle apps (medians)."""
    idle = sorted(tenants["idle"], key=_apps)
    one_app = [r for r in idle if r["apps_per_tenant"] == 1]
    five = [r for r in idle if r["apps_per_tenant"] > 1]
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
    for ax, key, label in ((axes[0], "rss_mib", "resident MiB"),
                           (axes[1], "threads", "threads"),
                           (axes[2], "startup_s", "first start-up (s)")):
        ax.plot([_apps(r) for r in one_app], [_med(r, key) for r in one_app], "o-",
                label="tenants × 1 app")
        if five:
            ax.plot([_apps(r) for r in five], [_med(r, key) for r in five], "s",
                    label="10 tenants × 5 apps")
        if key != "startup_s" and all(_asleep(r, key) for r in one_app):
            ax.plot([_apps(r) for r in one_app], [_median(_asleep(r, key)) for r in one_app],
                    "o:", label="hibernated")
        if key == "startup_s":
            ax.plot([_apps(r) for r in one_app], [_med(r, "restart_s") for r in one_app],
                    "o--", label="restart")
        ax.set_xlabel("idle apps on the host")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _median_busy(tenants):
    """The busy run whose slowest tenant is the median of the runs'."""
    runs = sorted(tenants["busy"], key=lambda b: max(b["seconds_per_tenant"]))
    return runs[(len(runs) - 1) // 2]


def plot_busy(tenants, path):
    """Each busy tenant's time from the platform's launch to drained, sorted (the median run)."""
    busy = _median_busy(tenants)
    times = sorted(busy["seconds_per_tenant"])
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(range(1, len(times) + 1), times, color="tab:blue")
    ax.axhline(busy["all_started_s"], color="tab:gray", linestyle="--",
               label="every app started")
    ax.set_xlabel("tenant (sorted by time)")
    ax.set_ylabel("launch → drained (s)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _idle_table(idle):
    base = next((r for r in idle if _apps(r) == 1), None)
    lines = [
        "| tenants × apps | first start-up (s) | restart (s) | start-up CPU (s): first; restart "
        "| resident MiB | threads | sockets "
        "| idle CPU (cores), median (min–max) | per app beyond the first: MiB / threads / "
        "sockets / % of a core |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in idle:
        per = "–"
        if base and _apps(r) > 1:
            n = _apps(r) - 1
            per = (f"{(_med(r, 'rss_mib') - _med(base, 'rss_mib')) / n:.2f} / "
                   f"{(_med(r, 'threads') - _med(base, 'threads')) / n:.1f} / "
                   f"{(_med(r, 'sockets') - _med(base, 'sockets')) / n:.1f} / "
                   f"{100 * (_med(r, 'idle_cores') - _med(base, 'idle_cores')) / n:.4f}")
        cores = _of(r, "idle_cores")
        lines.append(f"| {_layout(r)} | {_med(r, 'startup_s'):.1f} | {_med(r, 'restart_s'):.1f} | "
                     f"{_cpu(r)} | {_med(r, 'rss_mib'):.1f} | {_med(r, 'threads'):.0f} | "
                     f"{_med(r, 'sockets'):.0f} | {_median(cores):.4f} ({_range(cores, 4)}) | "
                     f"{per} |")
    return lines


def _cpu(row):
    """The platform's CPU seconds to start every app, first and again (runs before it was
    measured have none)."""
    if not all("startup_cpu_s" in run for run in row["runs"]):
        return "–"
    return f"{_med(row, 'startup_cpu_s'):.2f}; {_med(row, 'restart_cpu_s'):.2f}"


def _asleep(row, key):
    """One measure of an idle layout once its apps hibernated, over its runs."""
    return [run["asleep"].get(key) for run in row["runs"] if run.get("asleep")]


def _kafka(values):
    values = [v for v in values if v is not None]
    return f"{_median(values):.4f}" if values else "–"


def _asleep_table(idle):
    """The idle layouts awake and hibernated side by side (medians)."""
    if not all(_asleep(r, "threads") for r in idle):
        return []
    lines = [
        "| tenants × apps | hibernated apps | resident MiB awake → asleep | threads | sockets "
        "| platform's CPU (cores) | Kafka's CPU (cores) | record → read by a hibernating app (s), "
        "median (min–max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in idle:
        wake = _asleep(r, "wake_s")
        lines.append(
            f"| {_layout(r)} | {_median(_asleep(r, 'hibernated')):.0f} of {_apps(r)} | "
            f"{_med(r, 'rss_mib'):.1f} → {_median(_asleep(r, 'rss_mib')):.1f} | "
            f"{_med(r, 'threads'):.0f} → {_median(_asleep(r, 'threads')):.0f} | "
            f"{_med(r, 'sockets'):.0f} → {_median(_asleep(r, 'sockets')):.0f} | "
            f"{_med(r, 'idle_cores'):.4f} → {_median(_asleep(r, 'idle_cores')):.4f} | "
            f"{_kafka([run.get('kafka_cores') for run in r['runs']])} → "
            f"{_kafka(_asleep(r, 'kafka_cores'))} | "
            f"{_median(wake):.2f} ({_range(wake, 2)}) |")
    return lines


def _asleep_threads(idle):
    """Where the largest one-app-per-tenant layout's CPU goes once hibernated, for the host."""
    one_app = [r for r in idle if r["apps_per_tenant"] == 1 and _apps(r) > 1]
    if not one_app or not all(run.get("asleep", {}).get("by_thread") for run in one_app[-1]["runs"]):
        return None, []
    row = one_app[-1]
    kinds = sorted({k for run in row["runs"] for k in run["asleep"]["by_thread"]})
    lines = ["| thread | cores (whole host) | times on a core per second (whole host) |",
             "|---|---:|---:|"]
    for kind in kinds:
        used = [run["asleep"]["by_thread"].get(kind, {}).get("cores", 0.0) for run in row["runs"]]
        woken = [run["asleep"]["by_thread"].get(kind, {}).get("woken_per_s", 0.0)
                 for run in row["runs"]]
        if _median(used) < 0.000005 and _median(woken) < 0.005:
            continue
        lines.append(f"| {kind} | {_median(used):.5f} | {_median(woken):.2f} |")
    return row, lines


def _threads_table(idle):
    """Where the largest one-app-per-tenant layout's idle CPU goes, per app."""
    one_app = [r for r in idle if r["apps_per_tenant"] == 1 and _apps(r) > 1]
    if not one_app or "by_thread" not in one_app[-1]["runs"][0]:
        return None, []
    row = one_app[-1]
    apps = _apps(row)
    kinds = sorted({k for run in row["runs"] for k in run["by_thread"]})
    lines = [
        "| thread | % of a core per app | times on a core per app per second |",
        "|---|---:|---:|",
    ]
    for kind in kinds:
        used = [run["by_thread"].get(kind, {}).get("cores", 0.0) for run in row["runs"]]
        woken = [run["by_thread"].get(kind, {}).get("woken_per_s", 0.0) for run in row["runs"]]
        if _median(used) * 100 / apps < 0.00005 and _median(woken) / apps < 0.005:
            continue
        lines.append(f"| {kind} | {100 * _median(used) / apps:.4f} | "
                     f"{_median(woken) / apps:.2f} |")
    return row, lines


def render(tenants, figures):
    """The section's markdown."""
    idle = sorted(tenants["idle"], key=lambda r: (_apps(r), r["apps_per_tenant"]))
    runs = tenants.get("runs", 1)
    window = tenants.get("idle_window_s", 20)
    busy_runs = tenants["busy"]
    busy = _median_busy(tenants)
    times = sorted(busy["seconds_per_tenant"])
    median = _median(times)
    shares = [100 * _median(b["seconds_per_tenant"]) / max(b["seconds_per_tenant"])
              for b in busy_runs]
    total_records = busy["tenants"] * tenants["reviews_per_tenant"]
    after_start = busy["total_s"] - busy["all_started_s"]
    thread_row, thread_lines = _threads_table(idle)
    text = [
        f"_From `bench-tenants` (run {tenants.get('date', '?')}, mysimbdp at "
        f"{tenants.get('git', '?')}; `BENCH_RUNS={runs} BENCH_TENANTS_JSON=bench/tenants.json "
        f"cargo run --release -p mysimbdp-tests --bin bench-tenants`), {runs} runs, on the same "
        f"machine and services; medians unless a range is given._",
        "",
        "Idle: every app on its own empty 4-partition topic, exactly-once; resident memory, "
        f"threads and sockets 5 s after every app answered, CPU over the next {window} s (the "
        "process's ticks), then a second start on the same config (keyspaces and tables exist).",
        "",
        *_idle_table(idle),
        "",
    ]
    if thread_row:
        text += [
            f"Where an idle {_layout(thread_row)} host's CPU goes, per app (each thread's "
            "`schedstat`, summed by kind):",
            "",
            *thread_lines,
            "",
            "An app's worker sleeps until records arrive, its consumer has an event, an operator "
            "asks something, or one of its timers is due (an update, a partition going idle, a "
            "checkpoint of what it read); it asks Kafka for the lag only while it is behind or "
            "held. What remains while it is awake is librdkafka's floor: each app has a consumer and a "
            "transactional producer, and every librdkafka broker thread wakes at least once a "
            "second (`rd_kafka_max_block_ms`, fixed in librdkafka), with the consumer's "
            "long-poll fetch every 500 ms and each client's 1 s timers on `rdk:main`.",
            "",
        ]
    asleep = _asleep_table(idle)
    if asleep:
        text += [
            "**Hibernation.** An app with nothing to do for `runner.hibernate_after_ms` (60 s by "
            "default), caught up on every partition of its input and with everything saved, "
            "gives its partitions up after its checkpoint and closes its consumer and producer; "
            "one watch for the whole host (one Kafka client, one ListOffsets question every "
            "500 ms for every hibernating app's partitions) wakes it when its input moves, and "
            "an operator's request wakes it too. The same layouts, awake (above) and once their "
            f"apps hibernated (over another {window} s), and the time from one record sent to a "
            "hibernating app (from the call that sends it, the sender's own client start included) "
            "until its status counts it read (the watch's round, new clients, "
            "the group's assignment, the checkpoint loaded, the fetch):",
            "",
            *asleep,
            "",
        ]
        asleep_row, asleep_lines = _asleep_threads(idle)
        if asleep_row:
            text += [
                f"Where the hibernated {_layout(asleep_row)} host's CPU goes (not per app: "
                "the app workers wait on their wake-up, looking once a minute; what is left is the host's watch and "
                "its one Kafka client, the producers' delivery poller and the async runtime):",
                "",
                *asleep_lines,
                "",
            ]
    text += [
        f"![idle apps](figures/tenants-idle.png)",
        "",
        f"Busy: {busy['tenants']} tenants with {tenants['reviews_per_tenant']:,} reviews each "
        f"({total_records:,} in all) already in Kafka, every app asked to drain as soon as it "
        f"answers. **The slowest tenant ran at {_range(shares, 0)}% of the median one's rate** "
        f"over the {len(busy_runs)} runs. In the median run (plotted), every app was started "
        f"{busy['all_started_s']:.1f} s after the launch and all were drained {after_start:.1f} s "
        f"later; per tenant, launch to drained: fastest {times[0]:.1f} s, median {median:.1f} s, "
        f"slowest {times[-1]:.1f} s. Peak resident {busy['peak_rss_mib']:.0f} MiB, "
        f"{busy['peak_threads']} threads, {busy['peak_sockets']} sockets.",
        "",
        f"![busy tenants](figures/tenants-busy.png)",
        "",
    ]
    text += _hosts(tenants.get("hosts"))
    return "\n".join(text)


def _hosts(hosts):
    """One host against two, side by side, when bench-tenants measured it."""
    if not hosts:
        return ["Not measured: a second host (`BENCH_TENANTS_HOSTS=0`)."]
    all_records = hosts["tenants"] * hosts["reviews_per_tenant"]
    lines = [
        f"**One host against two** (run {hosts.get('date', '?')}, mysimbdp at "
        f"{hosts.get('git', '?')}): the same {hosts['tenants']} tenants, "
        f"{hosts['reviews_per_tenant']:,} reviews each on {hosts['partitions']} partitions, read "
        "by one platform process and by two sharing every app's consumer group, interleaved run "
        "by run. Each run waits until every app's partitions are shared out, pauses every app, "
        "writes the input, and times from the resume until each tenant's reviews were "
        "processed, and until a checkpoint committed them (their rows written, their offsets "
        "committed; the hosts' counts summed), so no partition moves while it is timed. Both "
        "hosts run on this machine's two cores: this shows what a second host costs and how "
        "the work splits, not added capacity.",
        "",
        "| hosts | processed: records/s | processed: slowest tenant (% of the median's rate) | "
        "committed: records/s | committed: slowest tenant (%) | platform CPU µs a record "
        "(all hosts) | peak resident MiB per host | partitions per host |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def rate_and_share(runs, field):
        timed = [r[field] for r in runs if r.get(field)]
        if not timed:
            return "not measured", "not measured"
        rates = [all_records / max(t) for t in timed]
        shares = [100 * _median(t) / max(t) for t in timed]
        return (f"{_median(rates):,.0f} ({_range(rates, 0)})",
                f"{_median(shares):.0f} ({_range(shares, 0)})")

    for row in hosts["by_hosts"]:
        runs = row["runs"]
        processed_rate, processed_share = rate_and_share(runs, "seconds_per_tenant")
        committed_rate, committed_share = rate_and_share(runs, "committed_per_tenant")
        cpu = [1e6 * sum(r["cpu_s"]) / all_records for r in runs]
        rss = [" + ".join(f"{m:.0f}" for m in r["peak_rss_mib"]) for r in runs]
        parts = sorted({" + ".join(str(p) for p in r["partitions"]) for r in runs})
        lines.append(
            f"| {row['hosts']} | {processed_rate} | {processed_share} | {committed_rate} | "
            f"{committed_share} | {_median(cpu):.2f} ({_range(cpu, 2)}) | {'; '.join(rss)} | "
            f"{'; '.join(parts)} |")
    return lines
