"""Analytics over a large stored history: ``python -m bench.analytics [--rows N]``.

Fills its own database, ``bench_analytics``, through the write path the sinks
use (columnar INSERTs into messages, conversations, membership and
sync_timeline, so the materialized views build the rollups as they do live),
drops the sync days older than the sync lifetime as retention does, and lets
background merges settle. Then it times each built-in report
(pipeline/ops/reports.py, last 30 days) and each query of docs/analytics.md,
several runs each, and writes bench/results/analytics.json.

A database already holding the same history (same rows and days, ending
today) is reused; ``--keep`` leaves it in place afterwards, otherwise it is
dropped. The history is described in bench/synthetic.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bench.synthetic import DAYS, ROWS, History, Shape
from pipeline.ops import reports
from pipeline.ops.output import Table
from pipeline.ops.progress import Progress
from pipeline.read import sync_timeline
from pipeline.settings import Settings
from pipeline.store import clickhouse, queries, schema
from pipeline.store.clickhouse import ClickHouse

DATABASE = "bench_analytics"
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "analytics.md"
RESULTS = ROOT / "bench" / "results" / "analytics.json"
SETTLE_POLL_S = 10.0


def documented_queries() -> dict[str, str]:
    """The ```sql blocks of docs/analytics.md, by the name in their first line."""
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text("utf-8"), flags=re.DOTALL)
    return {block.splitlines()[0][3:].split(":")[0]: block for block in blocks}


def tables(settings: Settings) -> dict[str, dict[str, int]]:
    conn = clickhouse.client(settings, "default")
    try:
        rows = conn.execute(queries.ROWS_IN, {"database": settings.clickhouse.database})
    finally:
        conn.disconnect()
    return {table: {"rows": int(n), "parts": int(p)} for table, n, p in rows}


def populated(settings: Settings, shape: Shape, until: date) -> bool:
    """Whether the database already holds this history (same size, ending ``until``)."""
    if tables(settings).get("messages", {}).get("rows") != shape.rows:
        return False
    store = ClickHouse(settings, size=1)
    try:
        period = reports.Period.ending(until, shape.days)
        days = store.execute_sync(queries.REPORT_DAILY_VOLUME, period.params())
    finally:
        store.close()
    return len(days) == shape.days and days[-1][0] == until


def populate(settings: Settings, shape: Shape, until: date) -> float:
    database = settings.clickhouse.database
    clickhouse.drop_database(settings, database)
    schema.migrate(settings, database)
    started = time.monotonic()
    conn = clickhouse.client(settings, database, timeout_s=600)
    progress = Progress(sys.stderr)
    progress.start(f"filling {database}: days", shape.days)
    try:
        for i, day in enumerate(History(shape, until).days(), start=1):
            for insert, columns in (
                (queries.INSERT_CONVERSATIONS, day.conversations),
                (queries.INSERT_MEMBERSHIP, day.membership),
                (queries.INSERT_MESSAGES, day.messages),
                (queries.INSERT_SYNC_TIMELINE, day.sync),
            ):
                if columns[0]:
                    conn.execute(insert.sql, columns, columnar=True)
            progress.update(i)
        progress.finish()
    finally:
        conn.disconnect()
    store = ClickHouse(settings, size=1)
    days = settings.pipeline.sync_retention_days
    asyncio.run(sync_timeline.drop_expired(store, days, time.time()))
    store.close()
    return time.monotonic() - started


def settle(settings: Settings, within_s: float) -> None:
    """Wait until background merges stop changing the parts (at most ``within_s``)."""
    deadline = time.monotonic() + within_s
    last = tables(settings)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        now = tables(settings)
        if now == last:
            return
        last = now


def timed(run: Callable[[], Any], runs: int) -> dict[str, Any]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = run()
        seconds.append(time.perf_counter() - started)
    rows = answer.rows if isinstance(answer, Table) else answer
    return {
        "median_ms": round(1000 * statistics.median(seconds), 1),
        "max_ms": round(1000 * max(seconds), 1),
        "result_rows": len(rows),
    }


NOT_TIMED = {"read-latency"}
"""Reports of rollups this history has no rows for: read latency is rolled up from
read markers (the readstate scenario times its roll-up over 12,500 of them)."""


def measure(settings: Settings, until: date, runs: int) -> list[dict[str, Any]]:
    store = ClickHouse(settings, size=1)
    period = reports.Period.ending(until)
    results = []
    try:
        for name, report in reports.REPORTS.items():
            if name in NOT_TIMED:
                continue
            run = partial(report, store, period, reports.DEFAULT_TOP)
            results.append({"name": f"stats {name}", "kind": "report", **timed(run, runs)})
        for name, sql in documented_queries().items():
            run = partial(store.execute_sync, sql)
            results.append({"name": name, "kind": "docs query", **timed(run, runs)})
    finally:
        store.close()
    return results


def machine(settings: Settings) -> dict[str, Any]:
    with Path("/proc/meminfo").open() as meminfo:
        kib = int(meminfo.readline().split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(kib / 2**20, 1),
        "clickhouse": clickhouse.ping(settings),
        "python": platform.python_version(),
    }


def markdown(result: dict[str, Any] | list[dict[str, Any]]) -> str:
    """The BENCHMARKS.md section: how it was measured, then every query's timing."""
    timings = result if isinstance(result, list) else result["timings"]
    lines = []
    if isinstance(result, dict):
        shape, load = result.get("shape", {}), result.get("load_average_1min", {})
        slowest = max((t["max_ms"] for t in timings), default=0.0)
        lines += [
            f"The built-in reports (`imstream stats`) and every query of docs/analytics.md over "
            f"**{shape.get('rows', 0):,} stored messages** ({shape.get('days')} days, "
            f"{shape.get('users', 0):,} users, {shape.get('conversations', 0):,} "
            f"conversations; bench/synthetic.py), written through the sinks' insert path so "
            f"the materialized views built the rollups. Command: `{result.get('command')}`; "
            f"{result.get('runs')} runs per query; ClickHouse "
            f"{result.get('machine', {}).get('clickhouse')}; load average {load.get('before')} "
            f"before and {load.get('after')} after the timed runs.",
            "",
            f"Target: every one under 1 s. Slowest run of any: {slowest:,.0f} ms — "
            f"**{'met' if slowest < 1000 else 'not met'}**.",
            "",
        ]
    lines += ["| query | kind | median ms | max ms | rows |", "|---|---|--:|--:|--:|"]
    lines += [
        f"| {t['name']} | {t['kind']} | {t['median_ms']} | {t['max_ms']} | {t['result_rows']} |"
        for t in timings
    ]
    return "\n".join(lines)


def benchmark(
    settings: Settings,
    shape: Shape,
    runs: int,
    output: Path,
    *,
    keep: bool,
    settle_s: float = 600.0,
    command: str = "python -m bench.analytics",
) -> dict[str, Any]:
    """Fill (or reuse) the database of ``settings``, time every report and documented
    query ``runs`` times, write ``output``; drop the database unless ``keep``."""
    until = datetime.now(UTC).date()
    reused = populated(settings, shape, until)
    populate_s = None if reused else round(populate(settings, shape, until), 1)
    settle(settings, settle_s)
    load_before = os.getloadavg()[0]
    timings = measure(settings, until, runs)
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    result = {
        "command": command,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(settings),
        "load_average_1min": load,  # the machine is shared: other work skews the figures
        "shape": {**asdict(shape), "users": shape.users, "conversations": shape.conversations},
        "tables": tables(settings),
        "populate_s": populate_s,
        "runs": runs,
        "timings": timings,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    if not keep:
        clickhouse.drop_database(settings, settings.clickhouse.database)
    return result


QUICK_ROWS = 20_000


def run(settings: Settings, profile: str, results: Path) -> dict[str, Any]:
    """The analytics scenario of ``python -m bench``: 10 million messages in the full
    profile, a small history in the quick one; always in its own database."""
    full = profile == "full"
    own = settings.replace(clickhouse=replace(settings.clickhouse, database=DATABASE))
    shape = Shape(rows=ROWS if full else QUICK_ROWS, days=DAYS if full else 7)
    return benchmark(
        own,
        shape,
        runs=5 if full else 1,
        output=results / "analytics.json",
        keep=False,
        settle_s=600.0 if full else 5.0,
        command=f"python -m bench --profile {profile} --only analytics",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS, help="messages to store")
    parser.add_argument("--days", type=int, default=DAYS, help="days of history")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each query")
    parser.add_argument(
        "--settle-s", type=float, default=600.0, help="longest wait for merges to settle"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database for the next run")
    parser.add_argument("--database", default=DATABASE, help="a database of its own")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    base = Settings.from_env()
    settings = base.replace(clickhouse=replace(base.clickhouse, database=args.database))
    result = benchmark(
        settings,
        Shape(rows=args.rows, days=args.days),
        args.runs,
        args.output,
        keep=args.keep,
        settle_s=args.settle_s,
        command=" ".join(["python -m bench.analytics", *(argv or sys.argv[1:])]),
    )
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
