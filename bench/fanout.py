"""Fan-out: sync entries/s for groups of 10, 100 and 1,000 members.

For each group size: worker processes on the scenario's own topics and
database, ``fanout_groups`` groups of that size (overlapping members drawn from
a population twice the group size), then enough messages for
``fanout_entries`` sync entries, published at once through the SDK. The rate
is the entries stored in ``sync_timeline`` divided by the time from the first
send to the last entry stored (and, less the ramp at both ends, between 10%
and 90% of them). Every message is one sync entry per member, the sender
included: these groups are written diffused (every size here is at or below
the read diffusion threshold, IMSTREAM_PIPELINE_READ_DIFFUSION_THRESHOLD, 2,000
by default; see docs/design.md).
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench import stats
from bench.context import Context
from bench.isolation import isolated
from bench.load import (
    COUNT_SYNC,
    Sampler,
    group_created,
    messages_for,
    publish,
    scalar,
    stored_counts,
    wait_for,
)
from bench.procs import Monitor, per_unit
from bench.services import Services, services
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse

SETUP_TIMEOUT_S = 120.0


async def run(ctx: Context) -> dict[str, Any]:
    sizes = [await one_size(ctx, size) for size in ctx.profile.fanout_sizes]
    return {"workers": ctx.profile.fanout_workers, "sizes": sizes}


async def one_size(ctx: Context, size: int) -> dict[str, Any]:
    report: list[dict[str, Any]] = []
    try:
        async with (
            isolated(ctx.settings, "fan", keep=ctx.keep) as settings,
            services(settings, ctx.logs, report) as svc,
        ):
            for _ in range(ctx.profile.fanout_workers):
                svc.start_worker()
            await svc.assigned()
            result = await measure(ctx, settings, svc, size)
    except Exception as exc:  # noqa: BLE001 - a failed size stays in the results
        result = {"error": repr(exc)}
    return {"group_size": size, **result, "processes": report}


def groups(count: int, size: int) -> dict[str, list[str]]:
    """``count`` groups of ``size`` members from a population of 2 x ``size`` users."""
    population = [f"m{i:06d}" for i in range(2 * size)]
    step = max(1, len(population) // count)
    return {
        f"g{k:03d}": [population[(k * step + j) % len(population)] for j in range(size)]
        for k in range(count)
    }


async def measure(ctx: Context, settings: Settings, svc: Services, size: int) -> dict[str, Any]:
    profile = ctx.profile
    members = groups(profile.fanout_groups, size)
    created = sum(len(m) for m in members.values())
    count = math.ceil(profile.fanout_entries / size)
    entries = count * size
    store = ClickHouse(settings, size=2)
    try:
        async with Producer(settings) as producer:
            await publish(producer, [group_created(g, m) for g, m in members.items()])
            if not await wait_for(lambda: _synced(store, created), SETUP_TIMEOUT_S):
                raise TimeoutError("the groups were not synced within the setup time")
            commands = messages_for(
                [(g, m[i % len(m)]) for i, (g, m) in enumerate(members.items())],
                count,
                profile.body_bytes,
            )
            monitor = Monitor([*ctx.base_procs(), *(w.as_proc() for w in svc.workers)])
            sent = 0
            sampler = Sampler(store, sent=lambda: sent, lag=svc.lag, every_s=0.5)
            t0 = time.monotonic()
            monitor.start()
            sampler.start(t0)
            await publish(producer, commands)
            sent = count
            published_s = time.monotonic() - t0
            done = await wait_for(
                lambda: _synced(store, created + entries), profile.drain_timeout_s, every_s=0.2
            )
            elapsed = time.monotonic() - t0
            series = await sampler.stop()
            usage = await monitor.stop()
        counts = await stored_counts(store)
    finally:
        store.close()
    return {
        "groups": len(members),
        "messages": count,
        "entries": entries,
        "published_s": round(published_s, 2),
        "completed": done,
        "elapsed_s": round(elapsed, 2),
        "entries_per_s": round(entries / elapsed, 1) if done else None,
        "messages_per_s": round(count / elapsed, 1) if done else None,
        "entries_per_s_10_90": stats.rounded(_middle_rate(series, created, entries)),
        "expected": {"messages": count, "sync_entries": created + entries},
        "counts": counts,
        "series": series,
        "usage": usage,
        "cpu_per_entry": per_unit(usage, entries, "entry"),
    }


def _middle_rate(series: list[dict[str, Any]], base: int, entries: int) -> float | None:
    """Entries/s between the samples where 10% and 90% of them were stored."""
    low = next((s for s in series if s["synced"] - base >= 0.1 * entries), None)
    high = next((s for s in series if s["synced"] - base >= 0.9 * entries), None)
    if low is None or high is None or high["t"] <= low["t"]:
        return None
    return float((high["synced"] - low["synced"]) / (high["t"] - low["t"]))


async def _synced(store: ClickHouse, count: int) -> bool:
    return await scalar(store, COUNT_SYNC) >= count
