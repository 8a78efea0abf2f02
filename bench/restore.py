"""Restore: how long a sequencer takes to open its partitions over a large state.

The scenario writes the sequencer's changelog for ``restore_conversations``
direct conversations as the sequencer writes it (per conversation ``c/<id>``
and one record per member, agents/sequencer.py), then starts the sequencer
three times on it, in this process, and times each until every partition is
open:

- ``memory``: state in memory only, every opening replays the whole changelog
  into memory (how every restart worked before local state);
- ``local, first``: local state empty: the whole changelog written to disk;
- ``local, restart``: the local store and its checkpoint: only what the
  changelog holds past the checkpoint (nothing here) is read from Kafka, and
  nothing is loaded (the state is read from disk through a cache).

Each figure is the wall time from the worker's start to the last partition
open (group join included; the local broker sets
``group.initial.rebalance.delay.ms`` to 0) and the slowest partition's own restore.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace
from typing import Any

import orjson

from agents.worker import Worker
from bench.context import Context
from bench.isolation import isolated
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.model.membership import members_key
from pipeline.model.state import ELEMENT
from pipeline.settings import Settings

CHUNK = 50_000


async def run(ctx: Context) -> dict[str, Any]:
    conversations = ctx.profile.restore_conversations
    async with isolated(ctx.settings, "restore", keep=ctx.keep) as settings:
        started = time.monotonic()
        records = await _write_changelog(settings, conversations)
        written_s = time.monotonic() - started
        root = ctx.logs / f"state-{settings.topics.prefix.rstrip('.')}"
        runs = {}
        try:
            memory = settings.replace(worker=replace(settings.worker, state_dir="memory"))
            runs["memory"] = await _open_all(memory)
            local = settings.replace(worker=replace(settings.worker, state_dir=str(root)))
            runs["local, first"] = await _open_all(local)
            runs["local, restart"] = await _open_all(local)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "conversations": conversations,
        "changelog_records": records,
        "changelog_written_s": round(written_s, 1),
        "runs": runs,
    }


async def _write_changelog(settings: Settings, conversations: int) -> int:
    """The sequencer's changelog of ``conversations`` direct conversations, each
    with one message sent (its dedupe entry long expired)."""
    topics = catalogue(settings)
    partitions = topics.messages.partitions
    producer = kafka.producer(settings, linger_ms=20)
    await producer.start()
    count = 0
    try:
        for first in range(0, conversations, CHUNK):
            writer = kafka.BatchWriter(producer, {})
            for n in range(first, min(first + CHUNK, conversations)):
                a, b = f"u{2 * n:08d}", f"u{2 * n + 1:08d}"
                conv = f"dm:{a}:{b}"
                partition = kafka.partition_for(conv.encode(), partitions)
                name = topics.sequencer_state.name
                state = orjson.dumps(["direct", 1, 2, 1_796_000_000_000, False])
                writer.add(name, f"c/{conv}".encode(), state, partition=partition)
                for member in (a, b):
                    key = f"{members_key(conv)}{ELEMENT}{member}".encode()
                    writer.add(name, key, b"1", partition=partition)
            count += await writer.flush()
    finally:
        await producer.stop()
    return count


async def _open_all(settings: Settings) -> dict[str, Any]:
    worker = Worker(settings, ["sequencer"])
    stage: Any = worker.agents["sequencer"]
    partitions = catalogue(settings).messages.partitions
    stopping = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(worker.run(stopping))
    try:
        while len(stage.status()["partitions"]) < partitions:
            if task.done():
                task.result()
                raise RuntimeError("the worker stopped before opening its partitions")
            await asyncio.sleep(0.05)
        wall = time.monotonic() - started
        restored = stage.status()["restored"]
    finally:
        stopping.set()
        await task
    return {
        "wall_s": round(wall, 2),
        "slowest_partition_s": round(max(r["seconds"] for r in restored.values()), 2),
        "from_local": sum(r["local"] for r in restored.values()),
        "from_changelog": sum(r["changelog"] for r in restored.values()),
    }
