"""``python -m bench``: run the scenarios, write bench/results/*.json, BENCHMARKS.md, plots.

    python -m bench                                 quick profile, every scenario
    python -m bench --profile full                  the figures for BENCHMARKS.md
    python -m bench --only latency,reads            some scenarios
    python -m bench --profile-process worker        py-spy on a worker while measuring

Each scenario runs on its own topics and database on the running stack and
removes them afterwards (``--keep`` leaves them). A scenario that fails is
written with its error, never dropped; the exit code is then 1. The
throughput scenario brings the baseline with it: their ratio only means
something when both were measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import (
    analytics,
    baseline,
    fanout,
    flood,
    latency,
    live,
    machine,
    reads,
    readstate,
    report,
    restore,
    throughput,
)
from bench.context import Context
from bench.profiles import PROFILES, Profile
from pipeline.errors import ImstreamError
from pipeline.log import kafka
from pipeline.settings import Settings
from pipeline.store import clickhouse

log = logging.getLogger("bench")

Scenario = Callable[[Context], Awaitable[dict[str, Any]]]


async def _analytics(ctx: Context) -> dict[str, Any]:
    """bench/analytics.py is synchronous (clickhouse-driver) and writes its own
    bench/results/analytics.json; it runs in a thread, off this event loop."""
    return await asyncio.to_thread(analytics.run, ctx.settings, ctx.profile.name, ctx.results)


SCENARIOS: dict[str, Scenario] = {
    "baseline": baseline.run,
    "throughput": throughput.run,
    "fanout": fanout.run,
    "latency": latency.run,
    "reads": reads.run,
    "restore": restore.run,
    "live": live.run,
    "flood": flood.run,
    "readstate": readstate.run,
    "analytics": _analytics,
}
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MARKDOWN = ROOT / "BENCHMARKS.md"
STACK_TIMEOUT_S = 10.0


def selected(only: str | None) -> list[str]:
    known = list(SCENARIOS)
    if not only:
        return known
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if "throughput" in wanted and "baseline" not in wanted:
        wanted.insert(0, "baseline")
    return [name for name in known if name in wanted]


async def run(
    settings: Settings,
    profile: Profile,
    names: Sequence[str],
    *,
    results: Path = RESULTS,
    markdown: Path | None = MARKDOWN,
    logs: Path | None = None,
    keep: bool = False,
    profile_process: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``names`` in order; write each result, then the report. Returns the results."""
    await kafka.wait_for_kafka(settings, STACK_TIMEOUT_S)
    await asyncio.to_thread(clickhouse.wait_for_clickhouse, settings, STACK_TIMEOUT_S)
    logs = logs or Path(tempfile.mkdtemp(prefix="imstream-bench-"))
    for directory in (results, logs):
        directory.mkdir(parents=True, exist_ok=True)
    servers = machine.servers(settings)
    ctx = Context(settings, profile, results, logs, servers, keep, profile_process)
    facts = await asyncio.to_thread(machine.facts, settings, servers)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    log.info("run %s, profile %s, logs in %s", run_id, profile.name, logs)
    written = {}
    for name in names:
        log.info("scenario %s ...", name)
        document = await _scenario(ctx, name, run_id, facts)
        if name != "analytics" or document["status"] != "ok":
            _write(results / f"{name}.json", document)  # analytics writes its own when it ran
        written[name] = document
        log.info("scenario %s: %s in %.0fs", name, document["status"], document["duration_s"])
    if markdown is not None:
        report.write(results, markdown)
    return written


async def _scenario(ctx: Context, name: str, run_id: str, facts: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    document: dict[str, Any] = {
        "scenario": name,
        "run_id": run_id,
        "profile": ctx.profile.name,
        "parameters": ctx.profile.parameters(),
        "profile_process": ctx.profile_process,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    try:
        document["result"] = await SCENARIOS[name](ctx)
        document["status"] = "ok"
    except Exception as exc:
        log.exception("scenario %s failed", name)
        document["status"] = "failed"
        document["error"] = repr(exc)
        document["traceback"] = traceback.format_exc()[-4000:]
    document["duration_s"] = round(time.monotonic() - started, 1)
    document["machine"] = {
        **facts,
        "loadavg_start": loadavg_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    return document


def _write(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    temporary.replace(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--markdown", type=Path, default=MARKDOWN, help="the report to write")
    parser.add_argument("--logs", type=Path, help="worker/gateway logs (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep topics and databases")
    parser.add_argument(
        "--profile-process",
        choices=("worker", "gateway"),
        help="record this process with py-spy while measuring (throughput: worker, "
        "latency: gateway); the speedscope file goes next to the results",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a profile parameter (bench/profiles.py), e.g. fanout_sizes=10,100",
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite the report only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    if args.report_only:
        report.write(args.results, args.markdown)
        return 0
    try:
        written = asyncio.run(
            run(
                Settings.from_env(),
                PROFILES[args.profile].override(args.set),
                selected(args.only),
                results=args.results,
                markdown=args.markdown,
                logs=args.logs,
                keep=args.keep,
                profile_process=args.profile_process,
            )
        )
    except ImstreamError as exc:
        log.error("error: %s (is the stack up? `make up`)", exc)  # noqa: TRY400
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if all(d["status"] == "ok" for d in written.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
