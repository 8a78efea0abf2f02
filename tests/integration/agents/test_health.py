"""The worker's /ready and /health: readiness follows assignment, lag drains to zero."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer

from agents.worker import Worker
from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from pipeline.store import clickhouse, schema
from tests.conftest import isolated, unique_name
from tests.support import eventually, running_worker

KAFKA_AGENTS = {
    "sequencer": "messages",
    "sync": "sync",
    "store": "timeline",
    "sync-store": "inbox",
    "push": "inbox",
}


@pytest.fixture
async def one_partition(stack: Settings) -> AsyncIterator[Settings]:
    """Like ``settings``, with one partition per topic: one consumer per group gets work."""
    name = unique_name()
    base = isolated(stack, name)
    settings = base.replace(
        topics=replace(base.topics, conversation_partitions=1, user_partitions=1)
    )
    topics = catalogue(settings).all()
    await kafka.ensure_topics(settings, topics)
    schema.migrate(settings)
    yield settings
    await kafka.delete_topics(settings, [t.name for t in topics])
    clickhouse.drop_database(settings, name)


async def get(worker: Worker, path: str) -> tuple[int, dict[str, Any]]:
    assert worker.health_port is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{worker.health_port}{path}") as response,
    ):
        return response.status, await response.json()


async def started(worker: Worker) -> int:
    return worker.health_port or 0


async def holders(settings: Settings) -> list[AIOKafkaConsumer]:
    """A consumer in every agent's group that wins the one partition: the round-robin
    assignor gives it to the smallest member id, and "a-..." sorts before "aiokafka-..."."""
    topics = catalogue(settings)
    consumers = []
    for agent, topic in KAFKA_AGENTS.items():
        consumer = kafka.consumer(
            settings,
            getattr(topics, topic).name,
            group_id=f"{settings.topics.prefix}imstream.{agent}",
            client_id="a",
        )
        await consumer.start()
        consumers.append(consumer)
    for consumer in consumers:
        await eventually(lambda c=consumer: _assigned(c), bool, within=30, every=0.1)
    return consumers


async def _assigned(consumer: AIOKafkaConsumer) -> bool:
    return bool(consumer.assignment())


async def test_ready_follows_assignment(one_partition: Settings) -> None:
    others = await holders(one_partition)
    try:
        async with running_worker(one_partition) as worker:
            await eventually(lambda: started(worker), bool, within=30, every=0.1)
            # joined and rebalanced, but every partition went to the holders
            await eventually(
                lambda: get(worker, "/health"),
                lambda r: all(r[1]["agents"][a]["partitions"] == [] for a in KAFKA_AGENTS),
                within=30,
            )
            for _ in range(3):
                status, body = await get(worker, "/ready")
                assert status == 503
                assert sorted(body["waiting_for_assignment"]) == sorted(KAFKA_AGENTS)
                await asyncio.sleep(0.5)
            for consumer in others:
                await consumer.stop()
            others = []
            status, body = await eventually(
                lambda: get(worker, "/ready"), lambda r: r[0] == 200, within=60
            )
            assert (status, body) == (200, {"ready": True, "waiting_for_assignment": []})
    finally:
        for consumer in others:
            await consumer.stop()


async def test_lag_is_reported_and_drains_to_zero(settings: Settings) -> None:
    topics = catalogue(settings)
    async with running_worker(settings) as worker, Producer(settings) as producer:
        await eventually(lambda: started(worker), bool, within=30, every=0.1)
        await producer.create_conversation("g", "alice", ["bob", "carol"])
        for i in range(200):
            await producer.send_message("g", "alice", f"m{i}")
        # 1 creation + 200 messages, 3 members: 603 deliveries
        expected = {
            "sequencer": 201,
            "sync": 603,
            "store": 201,
            "sync-store": 603,
        }

        def drained(r: tuple[int, dict[str, Any]]) -> bool:
            agents = r[1]["agents"]
            done = {a: agents[a].get("processed", agents[a].get("written")) for a in expected}
            return done == expected and all(agents[a]["lag"] == 0 for a in expected)

        status, body = await eventually(lambda: get(worker, "/health"), drained, within=60)
    assert status == 200
    agents = body["agents"]
    assert drained((status, body)), agents
    for agent, topic in KAFKA_AGENTS.items():
        spec = getattr(topics, topic)
        assert agents[agent]["partitions"] == list(range(spec.partitions)), agent
