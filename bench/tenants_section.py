"""The many-tenants section of bench/report.md, from `bench-tenants`'s bench/tenants.json: what an
idle app costs as the number of apps grows, start-up, and how evenly 50 busy tenants are served
(the report's Part 3, question 4). Used by report.py."""

import matplotlib.pyplot as plt


def _layout(row):
    return f"{row['tenants']} × {row['apps_per_tenant']}"


def _apps(row):
    return row["tenants"] * row["apps_per_tenant"]


def plot_idle(tenants, path):
    """Resident memory, threads and start-up against the number of idle apps."""
    idle = sorted(tenants["idle"], key=_apps)
    one_app = [r for r in idle if r["apps_per_tenant"] == 1]
    five = [r for r in idle if r["apps_per_tenant"] > 1]
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
    for ax, key, label in ((axes[0], "rss_mib", "resident MiB"),
                           (axes[1], "threads", "threads"),
                           (axes[2], "startup_s", "first start-up (s)")):
        ax.plot([_apps(r) for r in one_app], [r[key] for r in one_app], "o-",
                label="tenants × 1 app")
        if five:
            ax.plot([_apps(r) for r in five], [r[key] for r in five], "s",
                    label="10 tenants × 5 apps")
        if key == "startup_s":
            ax.plot([_apps(r) for r in one_app], [r["restart_s"] for r in one_app], "o--",
                    label="restart")
        ax.set_xlabel("idle apps on the host")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_busy(tenants, path):
    """Each busy tenant's time from the platform's launch to drained, sorted."""
    busy = tenants["busy"]
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


def render(tenants, figures):
    """The section's markdown."""
    idle = sorted(tenants["idle"], key=lambda r: (_apps(r), r["apps_per_tenant"]))
    base = next((r for r in idle if _apps(r) == 1), None)
    lines = [
        "| tenants × apps | first start-up (s) | restart (s) | resident MiB | threads | sockets "
        "| idle CPU (cores) | per app beyond the first: MiB / threads / sockets / % of a core |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in idle:
        per = "–"
        if base and _apps(r) > 1:
            n = _apps(r) - 1
            per = (f"{(r['rss_mib'] - base['rss_mib']) / n:.2f} / "
                   f"{(r['threads'] - base['threads']) / n:.1f} / "
                   f"{(r['sockets'] - base['sockets']) / n:.1f} / "
                   f"{100 * (r['idle_cores'] - base['idle_cores']) / n:.3f}")
        lines.append(f"| {_layout(r)} | {r['startup_s']:.1f} | {r['restart_s']:.1f} | "
                     f"{r['rss_mib']:.1f} | {r['threads']} | {r['sockets']} | "
                     f"{r['idle_cores']:.3f} | {per} |")
    busy = tenants["busy"]
    times = sorted(busy["seconds_per_tenant"])
    median = times[len(times) // 2]
    total_records = busy["tenants"] * tenants["reviews_per_tenant"]
    after_start = busy["total_s"] - busy["all_started_s"]
    text = [
        f"_From `bench-tenants` (run {tenants.get('date', '?')}, mysimbdp at "
        f"{tenants.get('git', '?')}; `BENCH_TENANTS_JSON=bench/tenants.json cargo run --release "
        f"-p mysimbdp-tests --bin bench-tenants`), one run, on the same machine and services._",
        "",
        "Idle: every app on its own empty 4-partition topic, exactly-once; resident memory, "
        "threads and sockets 5 s after every app answered, CPU over the next 20 s, then a "
        "second start on the same config (keyspaces and tables exist).",
        "",
        *lines,
        "",
        f"![idle apps](figures/tenants-idle.png)",
        "",
        f"Busy: {busy['tenants']} tenants with {tenants['reviews_per_tenant']:,} reviews each "
        f"({total_records:,} in all) already in Kafka, every app asked to drain as soon as it "
        f"answers. Every app was started {busy['all_started_s']:.1f} s after the launch; all "
        f"were drained {after_start:.1f} s later. Per tenant, launch to drained: fastest "
        f"{times[0]:.1f} s, median {median:.1f} s, slowest {times[-1]:.1f} s: **the slowest "
        f"tenant ran at {100 * median / times[-1]:.0f}% of the median one's rate**. Peak "
        f"resident {busy['peak_rss_mib']:.0f} MiB, {busy['peak_threads']} threads, "
        f"{busy['peak_sockets']} sockets.",
        "",
        f"![busy tenants](figures/tenants-busy.png)",
        "",
        "Not measured: a second host. Two platform processes on this 2-core machine would share "
        "the same cores, so they would show the split of each app's partitions (the `scale_out` "
        "test proves it loses and duplicates nothing), not added capacity.",
    ]
    return "\n".join(text)
