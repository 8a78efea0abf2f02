"""Baseline: how fast one Python process can copy records through this broker.

The input topic is filled with the records a 1:1 send puts on ``im.messages``
(same body size, same encoding, same partition count); then a copy loop
(bench/copyloop.py, a process of its own) copies them to another topic, once
plain and once transactional as a pipeline stage does. The slower pipeline
stages do more per record than this, so its rate is a ceiling for each of them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson

from bench.context import Context
from bench.isolation import isolated
from bench.load import body
from bench.procs import Monitor, Proc
from bench.services import ROOT
from pipeline.log import kafka
from pipeline.log.topics import TopicSpec
from pipeline.model.events import encode_command
from pipeline.model.naming import direct_conversation_id
from pipeline.sdk.producer import message
from pipeline.settings import Settings

CONVERSATIONS = 1_000
SEND_WINDOW = 10_000


def records(count: int, body_bytes: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` 1:1 sends over CONVERSATIONS conversations."""
    text = body(body_bytes)
    ids = [direct_conversation_id(f"u{2 * i}", f"u{2 * i + 1}") for i in range(CONVERSATIONS)]
    out = []
    for i in range(count):
        cid = ids[i % CONVERSATIONS]
        raw = encode_command(message(cid, f"u{2 * (i % CONVERSATIONS)}", text))
        # a copy: each bytes orjson returns holds a ~4 KiB buffer (4 GB for 1M records)
        out.append((cid.encode(), bytes(memoryview(raw))))
    return out


async def run(ctx: Context) -> dict[str, Any]:
    profile = ctx.profile
    async with isolated(ctx.settings, "base", keep=ctx.keep, pipeline_topics=False) as settings:
        prefix, parts = settings.topics.prefix, settings.topics.conversation_partitions
        source = TopicSpec(f"{prefix}copy.in", "conversation_id", parts)
        sinks = {
            m: TopicSpec(f"{prefix}copy.{m}", "conversation_id", parts)
            for m in profile.baseline_modes
        }
        await kafka.ensure_topics(settings, [source, *sinks.values()])
        data = records(profile.baseline_records, profile.body_bytes)
        produced = await prefill(ctx, settings, source.name, data)
        modes = [
            await copy(ctx, settings, source.name, sinks[mode].name, mode=mode, count=len(data))
            for mode in profile.baseline_modes
        ]
    return {
        "records": len(data),
        "record_bytes": len(data[0][1]),
        "partitions": parts,
        "batch_max_records": settings.pipeline.batch_max_records,
        "produce": produced,
        "modes": modes,
    }


async def prefill(
    ctx: Context, settings: Settings, topic: str, data: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    """Fill ``topic`` with a raw idempotent acks=all producer, as fast as it goes."""
    producer = kafka.producer(settings)
    await producer.start()
    monitor = Monitor(ctx.base_procs())
    monitor.start()
    started = time.monotonic()
    try:
        for first in range(0, len(data), SEND_WINDOW):
            futures = [
                await producer.send(topic, value, key=key)
                for key, value in data[first : first + SEND_WINDOW]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    elapsed = time.monotonic() - started
    return {
        "records": len(data),
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(len(data) / elapsed, 1),
        "usage": await monitor.stop(),
    }


async def copy(
    ctx: Context, settings: Settings, source: str, sink: str, *, mode: str, count: int
) -> dict[str, Any]:
    group = f"{settings.topics.prefix}copy.{mode}"
    argv = [sys.executable, "-m", "bench.copyloop", "--mode", mode, source, sink, group, str(count)]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=settings.child_env(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    monitor = Monitor([*ctx.base_procs(), Proc(f"copy loop ({mode})", proc.pid)])
    monitor.start()
    timeout = ctx.profile.drain_timeout_s + count / 1_000
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    except TimeoutError:
        line = b""
    usage = await monitor.stop()
    if line:
        proc.stdin.close()
    else:
        proc.kill()
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        _, err = await proc.communicate()
    if not line:
        return {
            "mode": mode,
            "error": f"did not copy {count} records within {timeout:.0f}s "
            f"(exit {proc.returncode}): {err.decode(errors='replace')[-2000:]}",
            "usage": usage,
        }
    result: dict[str, Any] = orjson.loads(line)
    elapsed = result["elapsed_s"]
    return {
        "mode": mode,
        "copied": result["copied"],
        "batches": result["batches"],
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(result["copied"] / elapsed, 1),
        "copy_cpu_s": round(result["cpu_s"], 3),
        "copy_cpu_util": round(result["cpu_s"] / elapsed, 3),
        "copy_cpu_us_per_record": round(1e6 * result["cpu_s"] / result["copied"], 1),
        "usage": usage,
    }
