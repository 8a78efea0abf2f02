"""Helpers for integration tests: workers (in-process or real processes), waiting,
reading topics back."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import aiohttp
from aiokafka import TopicPartition

from agents.worker import AGENTS, Worker
from bench.services import ROOT, free_port, spawn
from pipeline.gateway import auth
from pipeline.log import kafka
from pipeline.log.deadletter import DeadLetter
from pipeline.log.topics import TopicSpec, catalogue
from pipeline.observe.scrape import Scrape, parse
from pipeline.ops import checker
from pipeline.settings import Settings

T = TypeVar("T")


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


def imstream(
    settings: Settings, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``imstream <args>`` to completion as a real process; capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=ROOT,
        env=settings.child_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def token(settings: Settings, user: str, device: str, ttl: int = 3600) -> str:
    """A token for ``user``'s ``device``, signed with the gateway's secret."""
    return auth.issue(settings.gateway.auth_secret, user, device, ttl)


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


def other_stack(base: Settings, home: Path, **stack: object) -> Settings:
    """A second stack on free ports in ``home``, sharing only the jar cache."""
    return base.replace(
        kafka=replace(base.kafka, bootstrap=f"127.0.0.1:{free_port()}"),
        clickhouse=replace(base.clickhouse, port=free_port(), http_port=free_port()),
        stack=replace(base.stack, dir=home, kafka_controller_port=free_port(), **stack),
    )


@dataclass(frozen=True)
class GatewayProcess:
    url: str
    settings: Settings
    pid: int

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) * 1024


@asynccontextmanager
async def gateway_process(settings: Settings, log: Path) -> AsyncIterator[GatewayProcess]:
    """``imstream gateway`` as a real process on a free port."""
    port = free_port()
    settings = settings.replace(gateway=replace(settings.gateway, port=port, id=f"gw{port}"))
    proc = spawn(settings, "gateway", log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                try:  # this gateway, not whatever else took the port
                    async with http.get(url + "/health") as response:
                        return (
                            response.status == 200
                            and (await response.json()).get("gateway") == settings.gateway.id
                        )
                except (aiohttp.ClientError, ValueError):
                    return proc.poll() is not None

            await eventually(healthy, bool, within=60, every=0.2)
        assert proc.poll() is None, log.read_text()[-3000:]
        yield GatewayProcess(url, settings, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)


@dataclass(frozen=True)
class WorkerProcess:
    url: str
    proc: subprocess.Popen[bytes]


@asynccontextmanager
async def worker_process(settings: Settings, log: Path) -> AsyncIterator[WorkerProcess]:
    """``imstream worker`` as a real process, health (and metrics) on a free port; yields
    once every agent holds its partitions, stops it with SIGTERM on exit."""
    port = free_port()
    settings = settings.replace(worker=replace(settings.worker, health_port=port))
    proc = spawn(settings, "worker", log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> int:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    async with http.get(url + "/ready") as response:
                        return response.status
                except aiohttp.ClientError:
                    return 0

            status = await eventually(ready, lambda s: s == 200, within=90, every=0.3)
        assert status == 200, log.read_text()[-3000:]
        yield WorkerProcess(url, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 60)


async def scrape(url: str) -> Scrape:
    """The ``/metrics`` of a running process, parsed."""
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as response:
        assert response.status == 200, await response.text()
        return parse(await response.text())
