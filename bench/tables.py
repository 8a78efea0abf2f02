"""Markdown tables for the report, and the cross-scenario cost and memory tables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Document = dict[str, Any]
NOISY = 0.10
PROFILE_TOP = 10


class Table:
    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.rows: list[list[str]] = []

    def add(self, *cells: str) -> None:
        self.rows.append([c.replace("|", "\\|").replace("\n", " ") for c in cells])

    def lines(self) -> list[str]:
        if not self.rows:
            return ["(no data)"]
        return [
            "| " + " | ".join(self.header) + " |",
            "|" + "|".join("---" for _ in self.header) + "|",
            *("| " + " | ".join(row) + " |" for row in self.rows),
        ]


def num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def other_load(usage: dict[str, Any] | None) -> str:
    """CPU used by processes the bench did not watch, as a share of the machine."""
    if not usage:
        return "-"
    machine = usage["machine"]
    capacity = usage["wall_s"] * (machine.get("cpus") or 1)
    share = max(0.0, machine["unaccounted_cpu_s"] / capacity) if capacity else 0.0
    return f"{share:.0%}" + (" (noisy)" if share > NOISY else "")


def cpu_table(throughput: Document | None) -> list[str]:
    variants = [v for v in (throughput or {}).get("result", {}).get("variants", []) if "usage" in v]
    if not variants:
        return []
    table = Table(["workers", "process", "CPU µs / message", "share", "cores busy"])
    for v in variants:
        rows = {r["role"]: r["cpu_us_per_message"] for r in v["cpu_per_message"]}
        total = sum(x or 0 for x in rows.values())
        for p in v["usage"]["processes"]:
            cost = rows.get(p["role"])
            table.add(
                str(v["workers"]),
                p["role"] + (" (shared)" if p["shared"] else ""),
                num(cost, 1),
                f"{(cost or 0) / total:.0%}" if total else "-",
                num(p["cpu_util"], 2),
            )
    idle = [
        f"{v['workers']} worker(s): "
        + ", ".join(f"{p['role']} {num(p['cpu_util'], 2)}" for p in v["idle_usage"]["processes"])
        for v in variants
        if "idle_usage" in v
    ]
    return [
        "### CPU per message, 1:1 throughput run",
        "",
        "utime+stime of each process from the start of sending until everything was stored "
        "and synced, divided by the messages sent. Kafka and ClickHouse are shared with "
        "whatever else ran on the machine at the time (see *other load* above).",
        "",
        *table.lines(),
        "",
        *(
            ["With no traffic at all (5 s before sending), cores busy: " + "; ".join(idle), ""]
            if idle
            else []
        ),
    ]


def profile_lines(throughput: Document | None) -> list[str]:
    out = []
    for v in (throughput or {}).get("result", {}).get("variants", []):
        prof = v.get("profile")
        if not prof:
            continue
        if "error" in prof:
            out += [f"py-spy with {v['workers']} worker(s) failed: `{prof['error'][:200]}`", ""]
            continue
        files = ", ".join(f"{f['file']} {f['pct']}%" for f in prof["self_by_file"][:PROFILE_TOP])
        functions = ", ".join(f"`{f['frame']}` {f['pct']}%" for f in prof["self"][:PROFILE_TOP])
        out += [
            f"### py-spy on worker0 ({v['workers']} worker(s), {prof['samples']:,} samples "
            f"at {prof['rate_hz']} Hz, "
            f"`bench/results/{prof['file']}`)",
            "",
            f"- **Self time by file:** {files}",
            f"- **Self time by function:** {functions}",
            "",
        ]
    return out


def _usages(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("processes"), list) and "wall_s" in node:
            yield node
        for value in node.values():
            yield from _usages(value)
    elif isinstance(node, list):
        for item in node:
            yield from _usages(item)


def memory_table(docs: dict[str, Document]) -> list[str]:
    peaks: dict[str, dict[str, float]] = {}
    for name, doc in docs.items():
        for usage in _usages(doc.get("result", {})):
            for p in usage["processes"]:
                role = "worker" if p["role"].startswith("worker") else p["role"]
                role = "copy loop" if role.startswith("copy loop") else role
                role = "gateway" if role.startswith("gateway") else role
                column = peaks.setdefault(role, {})
                column[name] = max(column.get(name, 0.0), p["rss_peak_mib"] or 0.0)
    if not peaks:
        return []
    scenarios = [n for n in docs if any(n in col for col in peaks.values())]
    table = Table(["process", *scenarios])
    for role in sorted(peaks):
        table.add(
            role, *(num(peaks[role].get(s), 0) if s in peaks[role] else "" for s in scenarios)
        )
    return [
        *table.lines(),
        "",
        "Workers: the largest of the worker processes. Kafka's heap is capped by the stack "
        "(`-Xmx`), so its RSS says more about that setting than about the load.",
        "",
    ]
