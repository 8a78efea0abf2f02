"""Throughput: 1:1 traffic from ingest to stored and synced, with real worker processes.

For each worker count: ``imstream worker`` processes (every agent) on the
scenario's own topics and database, one direct conversation per pair of users,
then messages through the producer SDK for ``throughput_duration_s``, as fast
as the pipeline absorbs them: the offered rate follows the pipeline's
completion rate, steered to hold the workers' total lag (their /health) near
``throughput_lag_target`` (see :class:`Offer`). Every second the bench
records sent, stored (``messages`` rows) and synced (``sync_timeline`` rows,
two per 1:1 message) and the lag per agent. Rates are taken over the window
after the warm-up; then sending stops and the bench waits until every message
is stored and synced, and checks the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

from bench import stats
from bench.context import Context
from bench.isolation import isolated
from bench.load import (
    COUNT_MESSAGES,
    COUNT_SYNC,
    Pair,
    Sampler,
    body,
    direct_created,
    pairs,
    publish,
    scalar,
    stored_counts,
    wait_for,
)
from bench.procs import Monitor, per_unit
from bench.profiler import Recording
from bench.services import Services, services
from pipeline.errors import StoreUnavailableError
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse

LAG_POLL_S = 0.25
LAG_SMOOTHING = 4
START_RATE = 1_000.0
MIN_RATE = 100.0
GAIN = 0.15
DAMPING = 3.0
IDLE_S = 5.0
CONTROL_S = 1.0
TICK_S = 0.02
MAX_IN_FLIGHT = 8
SETUP_TIMEOUT_S = 90.0
SYNC_PER_MESSAGE = 2  # 1:1: the receiver and the sender's other devices


@dataclass
class LagWatch:
    """The workers' lag, polled in the background; senders read the latest."""

    services: Services
    latest: dict[str, int] = field(default_factory=dict)
    recent: list[int] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    @property
    def smoothed(self) -> float:
        """The mean total lag over the last second (batches make it a sawtooth)."""
        return sum(self.recent) / len(self.recent) if self.recent else 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.latest = await self.services.lag()
            self.recent = [*self.recent, sum(self.latest.values())][-LAG_SMOOTHING:]
            await asyncio.sleep(LAG_POLL_S)

    async def current(self) -> dict[str, int]:
        return dict(self.latest)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class Offer:
    """Paced sends whose rate is steered to hold the workers' lag at a target.

    Every CONTROL_S the rate is multiplied by ``1 + GAIN * (error - DAMPING * trend)``
    (clipped to [-1, 1]), where ``error`` is how far the lag is under its target
    and ``trend`` how fast it grew over the last period, both relative to the
    target: while the lag is under the target the offered load climbs, over it
    it backs off, and it stops climbing early when the lag shoots up (a backlog
    building downstream shows up late), so it settles where the pipeline absorbs
    it with the lag bounded. Sends go out in chunks through the SDK, at most
    MAX_IN_FLIGHT chunks awaiting their acks.
    """

    producer: Producer
    conversations: list[Pair]
    body_bytes: int
    chunk: int
    lag_target: int
    lag: LagWatch
    rate: float = START_RATE
    sent: int = 0
    queued: int = 0
    rates: list[float] = field(default_factory=list)
    _last_lag: float = 0.0

    async def run(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        in_flight: set[asyncio.Task[None]] = set()
        budget, last = 0.0, loop.time()
        control_at = last + CONTROL_S
        while last < until:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            budget = min(budget + self.rate * (now - last), self.rate * CONTROL_S)
            last = now
            if now >= control_at:
                self._control()
                control_at += CONTROL_S
            while budget >= 1 and len(in_flight) < MAX_IN_FLIGHT:
                count = min(int(budget), self.chunk)
                task = asyncio.create_task(self._publish(count))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                budget -= count
        await asyncio.gather(*in_flight)

    def _control(self) -> None:
        lag = self.lag.smoothed
        error = (self.lag_target - lag) / self.lag_target
        trend = (lag - self._last_lag) / self.lag_target
        self._last_lag = lag
        step = GAIN * max(-1.0, min(1.0, error - DAMPING * trend))
        self.rate = max(MIN_RATE, self.rate * (1 + step))
        self.rates.append(round(self.rate, 1))

    async def _publish(self, count: int) -> None:
        text = body(self.body_bytes)
        n = len(self.conversations)
        commands = []
        for j in range(self.queued, self.queued + count):
            pair = self.conversations[j % n]
            sender = pair.a if (j // n) % 2 == 0 else pair.b
            commands.append(message(pair.conversation_id, sender, text))
        self.queued += count
        await self.producer.publish_many(commands)
        self.sent += count


async def run(ctx: Context) -> dict[str, Any]:
    variants = []
    for workers in ctx.profile.throughput_workers:
        variants.append(await variant(ctx, workers))
        if workers in ctx.profile.throughput_metrics_off:
            variants.append(await variant(ctx, workers, metrics=False))
    return {"sync_entries_per_message": SYNC_PER_MESSAGE, "variants": variants}


async def variant(ctx: Context, workers: int, metrics: bool = True) -> dict[str, Any]:
    report: list[dict[str, Any]] = []
    base = ctx.settings.replace(metrics=replace(ctx.settings.metrics, enabled=metrics))
    try:
        async with (
            isolated(base, "thr", keep=ctx.keep) as settings,
            services(settings, ctx.logs, report) as svc,
        ):
            for _ in range(workers):
                svc.start_worker()
            await svc.assigned()
            result = await measure(ctx, settings, svc)
    except Exception as exc:  # noqa: BLE001 - a failed variant stays in the results
        result = {"error": repr(exc)}
    return {"workers": workers, "metrics": metrics, **result, "processes": report}


async def measure(ctx: Context, settings: Settings, svc: Services) -> dict[str, Any]:
    profile = ctx.profile
    store = ClickHouse(settings, size=2)
    conversations = pairs(profile.throughput_pairs)
    created = SYNC_PER_MESSAGE * len(conversations)
    lag = LagWatch(svc)
    try:
        async with Producer(settings) as producer:
            await publish(producer, [direct_created(p) for p in conversations])
            if not await wait_for(lambda: _at_least(store, COUNT_SYNC, created), SETUP_TIMEOUT_S):
                raise TimeoutError("the conversations were not synced within the setup time")
            idle = await _idle_usage(ctx, svc)
            lag.start()
            offer = Offer(
                producer,
                conversations,
                profile.body_bytes,
                profile.throughput_chunk,
                profile.throughput_lag_target,
                lag,
            )
            sampler = Sampler(store, sent=lambda: offer.sent, lag=lag.current)
            result = await _offer_and_drain(ctx, store, svc, offer, sampler, created=created)
            return {**result, "idle_usage": idle}
    finally:
        await lag.stop()
        store.close()


async def _idle_usage(ctx: Context, svc: Services) -> dict[str, Any]:
    """What the processes cost with no traffic at all (polling, heartbeats)."""
    monitor = Monitor([*ctx.base_procs(), *(w.as_proc() for w in svc.workers)])
    monitor.start()
    await asyncio.sleep(IDLE_S)
    return await monitor.stop()


async def _offer_and_drain(
    ctx: Context, store: ClickHouse, svc: Services, offer: Offer, sampler: Sampler, *, created: int
) -> dict[str, Any]:
    profile = ctx.profile
    monitor = Monitor([*ctx.base_procs(), *(w.as_proc() for w in svc.workers)])
    recording = _recording(ctx, svc, len(svc.workers))
    t0 = time.monotonic()
    monitor.start()
    sampler.start(t0)
    if recording is not None:
        asyncio.get_running_loop().call_later(profile.throughput_warmup_s, recording.start)
    await offer.run(t0 + profile.throughput_duration_s)
    sent_s = time.monotonic() - t0
    drained = await wait_for(
        lambda: _done(store, offer.sent, created), profile.drain_timeout_s, every_s=0.5
    )
    drained_s = time.monotonic() - t0
    series = await sampler.stop()
    usage = await monitor.stop()
    counts = await stored_counts(store)
    return {
        "sent": offer.sent,
        "sending_s": round(sent_s, 2),
        "offered_rate_per_s": offer.rates,
        "drained": drained,
        "drained_after_s": round(drained_s, 2),
        "expected": {
            "messages": offer.sent,
            "sync_entries": created + SYNC_PER_MESSAGE * offer.sent,
        },
        "counts": counts,
        **_rates(series, (profile.throughput_warmup_s, sent_s), offer.sent, drained_s, drained),
        "lag": _lag(series, profile.throughput_warmup_s, sent_s),
        "series": series,
        "usage": usage,
        "cpu_per_message": per_unit(usage, offer.sent, "message"),
        "profile": None if recording is None else await recording.finish(),
    }


def _recording(ctx: Context, svc: Services, workers: int) -> Recording | None:
    if ctx.profile_process != "worker":
        return None
    output = ctx.results / f"profile-throughput-{workers}w-worker0.speedscope.json"
    window = ctx.profile.throughput_duration_s - ctx.profile.throughput_warmup_s
    return Recording(svc.workers[0].pid, output, window, ctx.profile_rate)


def _rates(
    series: list[dict[str, Any]],
    window: tuple[float, float],
    sent: int,
    drained_s: float,
    drained: bool,
) -> dict[str, Any]:
    start, end = window
    sent_rate = stats.rate(series, "sent", start, end)
    stored = stats.rate(series, "stored", start, end)
    synced = stats.rate(series, "synced", start, end)
    synced_msgs = None if synced is None else synced / SYNC_PER_MESSAGE
    sustained = (
        drained
        and sent_rate is not None
        and stored is not None
        and synced_msgs is not None
        and min(stored, synced_msgs) >= 0.9 * sent_rate
    )
    return {
        "window_s": [start, round(end, 2)],
        "sent_msgs_per_s": stats.rounded(sent_rate),
        "stored_msgs_per_s": stats.rounded(stored),
        "synced_entries_per_s": stats.rounded(synced),
        "synced_msgs_per_s": stats.rounded(synced_msgs),
        "overall_msgs_per_s": round(sent / drained_s, 1) if drained else None,
        "sustained": sustained,
    }


def _lag(series: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    window = [s["lag"] for s in series if start <= s["t"] <= end and "lag" in s]
    if not window:
        return {}
    return {
        "max": max(window),
        "mean": round(sum(window) / len(window), 1),
        "last": window[-1],
    }


async def _at_least(store: ClickHouse, sql: str, count: int) -> bool:
    with contextlib.suppress(StoreUnavailableError):
        return await scalar(store, sql) >= count
    return False


async def _done(store: ClickHouse, sent: int, created: int) -> bool:
    return await _at_least(store, COUNT_MESSAGES, sent) and await _at_least(
        store, COUNT_SYNC, created + SYNC_PER_MESSAGE * sent
    )
