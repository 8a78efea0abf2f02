"""Live views: does ``imstream live`` (faust-streaming) keep up with the pipeline?

Two measurements, each on the scenario's own topics and a fresh live app:

- **capacity**: ``live_events`` timeline events of ``live_conversations``
  conversations are written to ``im.timeline`` first (as the sequencer encodes
  them, a plain producer), then the live app starts and reads them all. Events
  per second from its first assignment to the last event counted, and its CPU
  per event: the rate above which it falls behind, with the whole machine to
  itself.
- **beside the pipeline**: one ``imstream worker`` and the live app, messages
  offered through the producer SDK at each of ``live_rates`` for
  ``live_duration_s``. Every second: messages stored in ClickHouse and counted by
  the live app; *behind* is stored minus counted (the live app and the store
  read the same timeline; negative: the live app is ahead of the store). After
  sending stops, the time until it has counted every message. CPU of the live
  app, the worker and the machine over the sending window.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from bench import stats
from bench.context import Context
from bench.isolation import isolated
from bench.load import COUNT_MESSAGES, body, direct_created, pairs, publish, scalar, wait_for
from bench.procs import Monitor, Proc, cpu_seconds
from bench.services import Service, free_port, services, spawn
from pipeline.live.app import app_id
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.model.events import TimelineEvent, encode_timeline
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse

READY_TIMEOUT_S = 90.0
ANSWER_TIMEOUT = aiohttp.ClientTimeout(total=10)
"""A page of the live app answers within this, or the probe counts as not yet."""
PACE_S = 0.05
WRITE_CHUNK = 5_000


async def run(ctx: Context) -> dict[str, Any]:
    profile = ctx.profile
    capacity = await _capacity(ctx, profile.live_events, profile.live_conversations)
    beside = [await _beside(ctx, rate) for rate in profile.live_rates]
    return {"capacity": capacity, "beside": beside}


# ------------------------------------------------------------------ the live app as a process


def _live(settings: Settings, logdir: Path) -> tuple[Service, Settings]:
    port = free_port()
    settings = settings.replace(live=replace(settings.live, port=port))
    log = logdir / f"{settings.topics.prefix}live.log"
    return Service("live", spawn(settings, "live", log=log), log, f"http://127.0.0.1:{port}"), (
        settings
    )


async def _ready(http: aiohttp.ClientSession, live: Service) -> None:
    async def answered() -> bool:
        if live.proc.poll() is not None:
            raise RuntimeError(f"imstream live exited: {live.log.read_text()[-2000:]}")
        try:
            async with http.get(live.url + "/live/ready") as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    if not await wait_for(answered, READY_TIMEOUT_S, 0.2):
        raise TimeoutError(f"imstream live not ready in {READY_TIMEOUT_S}s; its log: {_tail(live)}")


async def _counted(http: aiohttp.ClientSession, live: Service) -> int:
    async with http.get(live.url + "/live/minutes?minutes=30") as answer:
        return sum(m["messages"] for m in (await answer.json())["minutes"])


def _tail(live: Service) -> str:
    return live.log.read_text(errors="replace")[-3000:]


async def _stop(live: Service, settings: Settings) -> int:
    """Stop it and remove its data directory (its topics go with the scenario's)."""
    live.proc.terminate()
    code = await asyncio.to_thread(live.proc.wait, 60)
    shutil.rmtree(Path(settings.stack.dir) / "faust" / app_id(settings), ignore_errors=True)
    return code


# ------------------------------------------------------------------ capacity


async def _write_timeline(settings: Settings, events: int, conversations: int, text: str) -> None:
    """``events`` message events, round-robin over the conversations, seqs dense."""
    topic = catalogue(settings).timeline.name
    producer = kafka.producer(settings)
    await producer.start()
    try:
        seqs = [0] * conversations
        for start in range(0, events, WRITE_CHUNK):
            sends = []
            for i in range(start, min(events, start + WRITE_CHUNK)):
                c = i % conversations
                seqs[c] += 1
                # like a 1:1 conversation: two senders
                command = message(f"live{c:06d}", f"u{c}-{seqs[c] % 2}", text)
                event = TimelineEvent(
                    command, event_no=seqs[c] + 1, seq=seqs[c], ts_ms=command.ts_ms
                )
                sends.append(
                    await producer.send(
                        topic, encode_timeline(event), key=command.conversation_id.encode()
                    )
                )
            await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _capacity(ctx: Context, events: int, conversations: int) -> dict[str, Any]:
    async with isolated(ctx.settings, "live", keep=ctx.keep) as settings:
        await _write_timeline(settings, events, conversations, body(ctx.profile.body_bytes))
        live, _ = _live(settings, ctx.logs)
        try:
            async with aiohttp.ClientSession(timeout=ANSWER_TIMEOUT) as http:
                started = time.monotonic()
                await _ready(http, live)
                ready_s = time.monotonic() - started
                cpu_ready = cpu_seconds(live.proc.pid) or 0.0
                t_ready = time.monotonic()
                done = await wait_for(
                    lambda: _done(http, live, events), ctx.profile.drain_timeout_s, 0.5
                )
                elapsed = time.monotonic() - t_ready
                cpu = (cpu_seconds(live.proc.pid) or 0.0) - cpu_ready
                counted = await _counted(http, live)
                if not done:
                    raise TimeoutError(
                        f"imstream live counted {counted} of {events} events in "
                        f"{ctx.profile.drain_timeout_s}s; its log: {_tail(live)}"
                    )
        finally:
            exit_code = await _stop(live, settings)
    return {
        "events": events,
        "conversations": conversations,
        "counted": counted,
        "complete": done,
        "ready_s": round(ready_s, 2),
        "read_s": round(elapsed, 2),
        "events_per_s": round(events / elapsed, 1) if done and elapsed else None,
        "cpu_cores": round(cpu / elapsed, 2) if elapsed else None,
        "cpu_us_per_event": round(1e6 * cpu / events, 1) if events else None,
        "exit_code": exit_code,
    }


async def _done(http: aiohttp.ClientSession, live: Service, events: int) -> bool:
    if live.proc.poll() is not None:
        raise RuntimeError(f"imstream live exited: {_tail(live)}")
    try:
        return await _counted(http, live) >= events
    except (aiohttp.ClientError, TimeoutError):
        return False


# ------------------------------------------------------------------ beside the pipeline


async def _beside(ctx: Context, rate: int) -> dict[str, Any]:
    duration = ctx.profile.live_duration_s
    processes: list[Any] = []
    async with (
        isolated(ctx.settings, "live", keep=ctx.keep) as settings,
        services(settings, ctx.logs, processes) as running,
    ):
        worker = running.start_worker()
        await running.assigned()
        live, live_settings = _live(settings, ctx.logs)
        running.workers.append(live)  # stopped (SIGTERM) and reported with the worker
        store = ClickHouse(settings)
        async with (
            aiohttp.ClientSession(timeout=ANSWER_TIMEOUT) as http,
            Producer(settings) as producer,
        ):
            await _ready(http, live)
            conversations = pairs(ctx.profile.throughput_pairs, "lv")
            await publish(producer, [direct_created(p) for p in conversations])
            text = body(ctx.profile.body_bytes)
            sent = 0
            series: list[dict[str, Any]] = []
            monitor = Monitor([Proc("live", live.proc.pid), Proc("worker0", worker.proc.pid)])

            async def sample(t0: float) -> None:
                while True:
                    stored = await scalar(store, COUNT_MESSAGES)
                    try:
                        counted = await _counted(http, live)
                    except (aiohttp.ClientError, TimeoutError):
                        await asyncio.sleep(1.0)  # busy: this second is not sampled
                        continue
                    series.append(
                        {
                            "t": round(time.monotonic() - t0, 2),
                            "sent": sent,
                            "stored": stored,
                            "counted": counted,
                        }
                    )
                    await asyncio.sleep(1.0)

            t0 = time.monotonic()
            monitor.start()
            sampling = asyncio.create_task(sample(t0))
            total = int(rate * duration)  # the last tick sends what is still due
            while sent < total:
                now = time.monotonic() - t0
                due = min(total, int(rate * now)) - sent
                if due > 0:
                    batch = [
                        message(p.conversation_id, p.a, text)
                        for p in (
                            conversations[(sent + i) % len(conversations)] for i in range(due)
                        )
                    ]
                    await producer.publish_many(batch)
                    sent += due
                await asyncio.sleep(PACE_S)
            sending_s = time.monotonic() - t0
            usage = await monitor.stop()
            stopped = time.monotonic()
            caught_up = await wait_for(
                lambda: _done(http, live, sent), ctx.profile.drain_timeout_s, 0.25
            )
            catch_up_s = time.monotonic() - stopped
            trouble = None if caught_up else _tail(live)
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
        store.close()
        shutil.rmtree(Path(settings.stack.dir) / "faust" / app_id(settings), ignore_errors=True)
    behind = [p["stored"] - p["counted"] for p in series]
    cpu = {p["role"]: p["cpu_util"] for p in usage["processes"]}
    return {
        "offered_per_s": rate,
        "sent": sent,
        "sent_per_s": round(sent / sending_s, 1),
        "behind_max": max(behind, default=None),
        "behind_mean": round(sum(behind) / len(behind), 1) if behind else None,
        "caught_up": caught_up,
        "catch_up_s": round(catch_up_s, 2),
        "live_cpu_cores": cpu.get("live"),
        "worker_cpu_cores": cpu.get("worker0"),
        "machine_busy": usage["machine"]["busy_util"],
        "live_cpu_us_per_message": stats.rounded(
            1e6 * (cpu.get("live") or 0.0) * sending_s / sent if sent else None
        ),
        "series": series,
        "processes": processes,
        "live_port": live_settings.live.port,
        **({"live_log_tail": trouble} if trouble else {}),
    }
