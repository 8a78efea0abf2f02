"""Kafka clients configured one way for the whole project, and topic bootstrap."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.producer import sender

from pipeline.errors import ConfigError, StartTimeoutError
from pipeline.log.topics import TopicSpec
from pipeline.settings import Settings

log = logging.getLogger(__name__)
DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config_source of a topic's own override

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
    quicken_transaction_retry(settings.kafka.txn_retry_backoff_ms / 1000)
    return producer(
        settings,
        transactional_id=transactional_id,
        transaction_timeout_ms=settings.kafka.transaction_timeout_ms,
        linger_ms=0,  # a stage hands over its whole batch before it waits: nothing to linger for
    )


def quicken_transaction_retry(backoff_s: float) -> None:
    """Set how long aiokafka waits before it asks again to add a partition to a new
    transaction while the broker is still writing the markers of the previous one
    (the broker answers CONCURRENT_TRANSACTIONS, KAFKA-5477). aiokafka hard-codes
    20 ms for that (``BACKOFF_OVERRIDE``, producer/sender.py in 0.14.0) and a stage
    meets it on every commit that held input offsets: measured on the 2-core machine,
    one-record transactions took 26 ms at 20 ms, 5.6 ms at 2 ms and 3.5 ms at 0.5 ms,
    the markers being done within a millisecond or two. A test checks the constant is
    still there (an aiokafka upgrade that drops it must be looked at)."""
    sender.BACKOFF_OVERRIDE = backoff_s


def consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that sees only committed records and never auto-commits."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka.bootstrap,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "request_timeout_ms": settings.kafka.request_timeout_ms,
        "max_partition_fetch_bytes": PRODUCER_MAX_BYTES,
        "fetch_max_wait_ms": settings.kafka.fetch_max_wait_ms,
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
    """Create the topics that are missing; return the names created. An existing
    topic gets the catalogue's configs (cleanup, retention, segments) where it
    differs; its other overrides are kept.

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
        await _align_configs(client, [wanted[n] for n in existing])
        missing = [wanted[n] for n in wanted if n not in existing]
        if missing:
            replicas = settings.topics.replication_factor
            insync = {"min.insync.replicas": str(settings.topics.min_insync_replicas)}
            response = await client.create_topics(
                [
                    NewTopic(s.name, s.partitions, replicas, topic_configs=s.config() | insync)
                    for s in missing
                ]
            )
            for name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise ConfigError(f"creating topic {name} failed with Kafka error {code}")
            await _wait_for_leaders(client, [s.name for s in missing])
        return [s.name for s in missing]


async def _align_configs(client: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    """Set the catalogue's configs on existing topics where they differ (e.g. the
    segment settings compacted topics got later: without them compaction never
    reaches the active segment). AlterConfigs replaces a topic's whole set of
    overrides, so the current ones are read first and kept."""
    if not specs:
        return
    described = await client.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    )
    overrides = {
        name: entries
        for response in described
        for name, entries in topic_overrides(response).items()
    }
    changes = []
    for spec in specs:
        current = overrides.get(spec.name, {})
        wanted = spec.config()
        if all(current.get(k) == v for k, v in wanted.items()):
            continue
        diff = {k: f"{current.get(k)} -> {v}" for k, v in wanted.items() if current.get(k) != v}
        log.warning("topic %s: configs set to the catalogue's: %s", spec.name, diff)
        changes.append(
            ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=current | wanted)
        )
    if not changes:
        return
    for response in await client.alter_configs(changes):
        for code, message, _, name in response.resources:
            if code != 0:
                raise ConfigError(f"setting the configs of topic {name} failed: {code} {message}")


def topic_overrides(response: Any) -> dict[str, dict[str, str]]:
    """topic → its configs set on the topic itself, from a DescribeConfigs response
    (version 0 flags defaults; later versions give each entry's source)."""
    found = {}
    for code, message, _, name, entries in response.resources:
        if code != 0:
            raise ConfigError(f"reading the configs of topic {name} failed: {code} {message}")
        if response.API_VERSION == 0:
            found[name] = {e[0]: e[1] for e in entries if not e[3]}
        else:
            found[name] = {e[0]: e[1] for e in entries if e[3] == DYNAMIC_TOPIC_CONFIG}
    return found


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


_PARTITION_OF: dict[tuple[bytes, int], int] = {}  # murmur2 is pure Python: remember it


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java client (and aiokafka's default partitioner) picks for ``key``."""
    found = _PARTITION_OF.get((key, partitions))
    if found is None:
        if len(_PARTITION_OF) > 500_000:
            _PARTITION_OF.clear()
        found = _PARTITION_OF[(key, partitions)] = (murmur2(key) & 0x7FFFFFFF) % partitions
    return found


@dataclass(frozen=True, slots=True)
class Placed:
    """Where the broker put a record."""

    topic: str
    partition: int
    offset: int


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]  # key, value, headers
Sent = tuple["asyncio.Future[Any]", Sequence[int]]  # a send's future, offsets of its records


class BatchWriter:
    """Records grouped by partition, then sent: a partition's records as batches of
    their own (about a third of the CPU of one ``producer.send()`` per record), or, for a
    few records, through ``producer.send()``. The producer keeps one request in flight
    per broker, and a request carries one batch per partition: a batch of one record
    per call would cap a producer serving many small calls (the SDK, the gateway) at a
    few records per round trip, where ``send()`` lets concurrent calls share batches.
    Keys choose partitions as the default partitioner does, from the partition counts
    of the catalogue."""

    SHARED_BELOW = 8
    """A partition's records go through ``producer.send()`` when fewer than this."""

    def __init__(self, producer: AIOKafkaProducer, partitions: dict[str, int]) -> None:
        self.producer = producer
        self.partitions = partitions
        self._records: dict[tuple[str, int], list[Record]] = {}
        self._placed: list[tuple[tuple[str, int], int]] = []  # (partition, index in it)
        self.last_offsets: dict[tuple[str, int], int] = {}
        """After ``flush``: (topic, partition) → the offset of its last record."""

    def __len__(self) -> int:
        return len(self._placed)

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        if partition is None:
            partition = 0 if key is None else partition_for(key, self.partitions[topic])
        records = self._records.setdefault((topic, partition), [])
        self._placed.append(((topic, partition), len(records)))
        records.append((key, value, headers))

    async def send(self) -> list[Placed]:
        """Send every record; once the broker has them all, where each one went."""
        sent = await self._send_all()
        offsets: dict[tuple[str, int], list[int]] = {}
        for tp, entries in sent.items():
            found = offsets[tp] = []
            for future, relative in entries:
                base = (await future).offset
                found += [base + r for r in relative]
        placed = [Placed(tp[0], tp[1], offsets[tp][i]) for tp, i in self._placed]
        self._records, self._placed = {}, []
        return placed

    async def flush(self) -> int:
        """Send every record and wait until the broker has them all; how many. Like
        ``send`` without saying where each went (a stage's hot path never asks)."""
        count = len(self._placed)
        sent = await self._send_all()
        self.last_offsets = {}
        for tp, entries in sent.items():
            for future, _ in entries:
                meta = await future
            self.last_offsets[tp] = meta.offset + entries[-1][1][-1]
        self._records, self._placed = {}, []
        return count

    async def _send_all(self) -> dict[tuple[str, int], list[Sent]]:
        sent: dict[tuple[str, int], list[Sent]] = {}
        for (topic, partition), records in self._records.items():
            if len(records) < self.SHARED_BELOW:
                sent[(topic, partition)] = [
                    (await self.producer.send(topic, v, k, partition=partition, headers=h), (0,))
                    for k, v, h in records
                ]
            else:
                sent[(topic, partition)] = await self._send_batches(topic, partition, records)
        return sent

    async def _send_batches(self, topic: str, partition: int, records: list[Record]) -> list[Sent]:
        """The records as full batches, each with the records' offsets within it."""
        sent: list[Sent] = []
        relative: list[int] = []
        batch = self.producer.create_batch()
        for key, value, headers in records:
            meta = batch.append(key=key, value=value, timestamp=None, headers=headers)
            if meta is None:  # full: send it, start another one
                batch.close()
                sent.append(
                    (await self.producer.send_batch(batch, topic, partition=partition), relative)
                )
                batch, relative = self.producer.create_batch(), []
                meta = batch.append(key=key, value=value, timestamp=None, headers=headers)
                if meta is None:
                    raise ValueError(f"a record of {len(value or b'')} bytes does not fit a batch")
            relative.append(meta.offset)
        batch.close()
        sent.append((await self.producer.send_batch(batch, topic, partition=partition), relative))
        return sent
