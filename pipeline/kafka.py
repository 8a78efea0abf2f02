"""Kafka clients configured one way for the whole project, and topic bootstrap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from pipeline.errors import ConfigError, StartTimeoutError
from pipeline.settings import Settings
from pipeline.topics import TopicSpec

TOPIC_ALREADY_EXISTS = 36
PRODUCER_MAX_BYTES = 1024 * 1024


def producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas (acks=all)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka.bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "max_request_size": PRODUCER_MAX_BYTES,
        "request_timeout_ms": settings.kafka.request_timeout_ms,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def transactional_producer(settings: Settings, transactional_id: str) -> AIOKafkaProducer:
    return producer(
        settings,
        transactional_id=transactional_id,
        transaction_timeout_ms=settings.kafka.transaction_timeout_ms,
    )


def consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that sees only committed records and never auto-commits."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka.bootstrap,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "request_timeout_ms": settings.kafka.request_timeout_ms,
        "max_partition_fetch_bytes": PRODUCER_MAX_BYTES,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


@asynccontextmanager
async def admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap,
        request_timeout_ms=settings.kafka.request_timeout_ms,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that are missing; return the names created.

    An existing topic with a different partition count is a ConfigError: keys
    would land on other partitions than the state that belongs to them.
    """
    wanted = {spec.name: spec for spec in specs}
    async with admin(settings) as client:
        existing = {
            t["topic"]: len(t["partitions"])
            for t in await client.describe_topics(list(wanted))
            if t["error_code"] == 0
        }
        for name, count in existing.items():
            if count != wanted[name].partitions:
                raise ConfigError(
                    f"topic {name} has {count} partitions, the catalogue says "
                    f"{wanted[name].partitions}; delete it or fix IMSTREAM_TOPICS_*_PARTITIONS"
                )
        missing = [wanted[n] for n in wanted if n not in existing]
        if missing:
            response = await client.create_topics(
                [NewTopic(s.name, s.partitions, 1, topic_configs=s.config()) for s in missing]
            )
            for name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise ConfigError(f"creating topic {name} failed with Kafka error {code}")
            await _wait_for_leaders(client, [s.name for s in missing])
        return [s.name for s in missing]


async def _wait_for_leaders(client: AIOKafkaAdminClient, names: list[str]) -> None:
    """Topic creation is asynchronous: wait until every partition has a leader."""
    for _ in range(100):
        described = await client.describe_topics(names)
        if all(
            t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 and p["error_code"] == 0 for p in t["partitions"])
            for t in described
        ):
            return
        await asyncio.sleep(0.1)
    raise StartTimeoutError(f"topics {names} got no partition leaders within 10s")


async def delete_topics(settings: Settings, names: Iterable[str]) -> None:
    async with admin(settings) as client:
        existing = set(await client.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await client.delete_topics(doomed)


async def wait_for_kafka(settings: Settings, timeout_s: float) -> None:
    """Return once the broker answers a metadata request, else StartTimeoutError."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with admin(settings) as client:
                await client.list_topics()
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.5)
        else:
            return
    raise StartTimeoutError(
        f"Kafka at {settings.kafka.bootstrap} did not answer within {timeout_s:.0f}s ({last})"
    )
