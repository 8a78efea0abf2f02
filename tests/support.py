"""Helpers for integration tests: workers (in-process or real processes), waiting,
reading topics back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from aiokafka import TopicPartition

from agents.worker import AGENTS, Worker
from pipeline import checker, kafka
from pipeline.deadletter import DeadLetter
from pipeline.settings import Settings
from pipeline.topics import TopicSpec, catalogue

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def running_worker(
    settings: Settings, agents: Sequence[str] = AGENTS
) -> AsyncIterator[Worker]:
    """A worker on the test's topics, in this process; stopped (gracefully) on exit."""
    stopping = asyncio.Event()
    worker = Worker(settings, agents)
    task = asyncio.create_task(worker.run(stopping))
    try:
        yield worker
    finally:
        stopping.set()
        await task


def cli_env(settings: Settings) -> dict[str, str]:
    """This process's environment with ``settings`` as the only IMSTREAM_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMSTREAM_")}
    env.update(settings.to_env())
    return env


def imstream(
    settings: Settings, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``imstream <args>`` to completion as a real process; capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=ROOT,
        env=cli_env(settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(settings: Settings, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``imstream <args>`` as a real process with ``settings`` in its environment."""
    env = cli_env(settings)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "-v", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def eventually(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    within: float = 60.0,
    every: float = 0.5,
) -> T:
    """Call ``probe`` until ``ok`` holds for its result; return the last result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if ok(result) or loop.time() > deadline:
            return result
        await asyncio.sleep(every)


async def converged(
    settings: Settings, acknowledged: Sequence[str] = (), within: float = 90.0
) -> checker.Report:
    """The invariant report once it is clean, or the last one after ``within`` seconds."""
    return await eventually(
        lambda: checker.check(settings, acknowledged),
        lambda r: r.ok and r.messages > 0,
        within=within,
        every=1.0,
    )


async def read_topic(settings: Settings, topic: TopicSpec) -> list[bytes]:
    """Every committed record value of ``topic``, each partition in order."""
    consumer = kafka.consumer(settings)
    tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(tps)
    await consumer.start()
    values: list[bytes] = []
    try:
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                values += [r.value for r in batch.get(tp, [])]
    finally:
        await consumer.stop()
    return values


async def dead_letters(settings: Settings, expected: int, within: float = 30.0) -> list[DeadLetter]:
    topic = catalogue(settings).dead_letter.name
    consumer = kafka.consumer(settings)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        async with asyncio.timeout(within):
            while len(found) < expected:
                batch = await consumer.getmany(tp, timeout_ms=500)
                found += [DeadLetter.from_record(r) for r in batch.get(tp, [])]
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return found
