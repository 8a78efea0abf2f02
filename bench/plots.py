"""PNG plots from the results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
from matplotlib import ticker

from bench import stats

Document = dict[str, Any]


def latency_cdf(latency: Document | None, reads: Document | None, path: Path) -> bool:
    runs = (latency or {}).get("result", {}).get("runs", [])
    reads_result = (reads or {}).get("result", {})
    if not runs and not reads_result:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
        points = run.get("push_latency_cdf") or []
        if points:
            label = f"{run['via']} {run['offered_per_s']}/s"
            if not run.get("sustained"):
                label += " (not sustained)"
            axes[0].plot([p[0] for p in points], [p[1] for p in points], label=label)
    axes[0].set_title("send → push received (WebSocket)")
    for name in ("history_page", "sync_pull"):
        points = reads_result.get(name, {}).get("cdf") or []
        if points:
            axes[1].plot([p[0] for p in points], [p[1] for p in points], label=name)
    rows = reads_result.get("store", {}).get("messages")
    axes[1].set_title(f"reads with {rows:,} messages stored" if rows else "reads")
    for ax in axes:
        ax.set_xscale("log")
        plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        low, high = ax.get_xlim()
        if low > 0 and high / low < 30:  # under ~1.5 decades: label the minor ticks too
            ax.xaxis.set_minor_formatter(plain)
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.grid(True, which="both", alpha=0.3)
        ax.axvline(100 if ax is axes[0] else 20, color="grey", linestyle="--", linewidth=0.8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def throughput_over_time(throughput: Document | None, path: Path) -> bool:
    variants = [
        v for v in (throughput or {}).get("result", {}).get("variants", []) if v.get("series")
    ]
    if not variants:
        return False
    fig, axes = plt.subplots(len(variants), 1, figsize=(11, 3.6 * len(variants)), squeeze=False)
    for ax, variant in zip(axes[:, 0], variants, strict=True):
        series = variant["series"]
        for key, label, scale in (
            ("sent", "sent", 1.0),
            ("stored", "stored (messages)", 1.0),
            ("synced", "synced (sync entries / 2)", 0.5),
        ):
            points = stats.per_second(series, key)
            ax.plot([p[0] for p in points], [p[1] * scale for p in points], label=label)
        start, end = variant.get("window_s", [0, 0])
        ax.axvspan(start, end, color="green", alpha=0.06, label="measured window")
        ax.set_ylabel("messages/s")
        ax.set_title(f"1:1 throughput, {variant['workers']} worker process(es)")
        lag_ax = ax.twinx()
        lag_ax.plot(
            [s["t"] for s in series],
            [s.get("lag", 0) for s in series],
            color="grey",
            linestyle=":",
            label="total lag (records)",
        )
        lag_ax.set_ylabel("lag (records)")
        lines, labels = ax.get_legend_handles_labels()
        lag_lines, lag_labels = lag_ax.get_legend_handles_labels()
        ax.legend(lines + lag_lines, labels + lag_labels, fontsize=8, loc="upper left")
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("seconds since sending started")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def fanout_cost(fanout: Document | None, path: Path) -> bool:
    sizes = [s for s in (fanout or {}).get("result", {}).get("sizes", []) if s.get("usage")]
    if not sizes:
        return False
    fig, (rate_ax, cpu_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    xs = [s["group_size"] for s in sizes]
    rate_ax.plot(xs, [s.get("entries_per_s") or 0 for s in sizes], marker="o", label="entries/s")
    rate_ax.plot(xs, [s.get("messages_per_s") or 0 for s in sizes], marker="s", label="messages/s")
    rate_ax.axhline(100_000, color="grey", linestyle="--", linewidth=0.8, label="target")
    rate_ax.set_yscale("log")
    rate_ax.set_title("fan-out throughput")
    roles = sorted({r["role"] for s in sizes for r in s["cpu_per_entry"]})
    for role in roles:
        ys = [
            next((r["cpu_us_per_entry"] for r in s["cpu_per_entry"] if r["role"] == role), None)
            for s in sizes
        ]
        cpu_ax.plot(xs, [y or 0 for y in ys], marker="o", label=role)
    cpu_ax.set_title("CPU per sync entry, by process")
    cpu_ax.set_ylabel("CPU µs per entry")
    rate_ax.set_ylabel("per second (log scale)")
    for ax in (rate_ax, cpu_ax):
        ax.set_xscale("log")
        ax.set_xlabel("group size (members)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
