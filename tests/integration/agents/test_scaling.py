"""Two worker processes in one consumer group share the partitions."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp

from pipeline.log.topics import catalogue
from pipeline.sdk.producer import Ack, Producer
from pipeline.settings import Settings
from tests.support import converged, eventually, spawn

KAFKA_AGENTS = {
    "sequencer": "messages",
    "sync": "sync",
    "store": "timeline",
    "sync-store": "inbox",
}


async def health_port(log: Path) -> int:
    async def find() -> int:
        match = re.search(r"health endpoint on http://[\d.]+:(\d+)/health", log.read_text())
        return int(match[1]) if match else 0

    return await eventually(find, lambda port: port > 0, within=30)


async def statuses(ports: list[int]) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        out = []
        for port in ports:
            async with http.get(f"http://127.0.0.1:{port}/health") as response:
                out.append((await response.json())["agents"])
        return out


def shared(settings: Settings, workers: list[dict[str, Any]]) -> bool:
    """Every Kafka agent's partitions split between both workers, none twice, none left out."""
    topics = catalogue(settings)
    for agent, topic in KAFKA_AGENTS.items():
        held = [w[agent]["partitions"] for w in workers]
        every = sorted(p for partitions in held for p in partitions)
        if any(not partitions for partitions in held):
            return False
        if every != list(range(getattr(topics, topic).partitions)):
            return False
    return True


async def test_two_workers_share_partitions_and_invariants_hold(
    settings: Settings, tmp_path: Path
) -> None:
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [spawn(settings, "worker", log=log) for log in logs]
    try:
        ports = [await health_port(log) for log in logs]
        split = await eventually(lambda: statuses(ports), lambda s: shared(settings, s), 60)
        assert shared(settings, split), split
        acks: list[Ack] = []
        async with Producer(settings) as producer:
            users = [f"user{i}" for i in range(16)]
            for i in range(12):
                await producer.create_conversation(f"c{i}", users[i], users[i : i + 4])
            for round_ in range(15):
                for i in range(12):
                    sender = users[i + round_ % 4]
                    acks.append(await producer.send_message(f"c{i}", sender, f"r{round_}"))
        report = await converged(settings, [a.event_id for a in acks])
        assert report.ok, report.summary()
        assert report.messages == len(acks)
        done = await statuses(ports)
        # both workers did part of the work
        assert all(w["sequencer"]["processed"] > 0 for w in done), done
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            await asyncio.to_thread(worker.wait, 60)
    assert [w.returncode for w in workers] == [0, 0], [log.read_text()[-3000:] for log in logs]
