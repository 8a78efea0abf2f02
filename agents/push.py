"""The push agent: new sync entries to the gateways that hold their users online.

It follows ``im.presence`` (all of it: who is online where) and reads
``im.inbox`` in a consumer group from where the group left off (the newest
entries on its first start); each entry whose user has devices on a gateway is
copied, as it is, to that gateway's ``im.push.<gateway>``. Push is the fast
path and best effort: the agent never waits on a gateway, and a device that
misses an entry notices the gap in ``sync_seq`` and pulls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from pipeline import kafka
from pipeline.presence import PresenceTable
from pipeline.settings import Settings
from pipeline.topics import catalogue

log = logging.getLogger(__name__)
TOPIC_RECHECK_S = 10.0


class PushAgent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = catalogue(settings)
        self.group_id = f"{settings.topics.prefix}imstream.push"
        self.presence = PresenceTable()
        self.pushed = 0
        self._partitions: list[int] = []
        self._topic_ok: dict[str, tuple[bool, float]] = {}
        self._idle = False

    def status(self) -> dict[str, Any]:
        live = self.presence.live_gateways(int(time.time() * 1000))
        return {
            "partitions": self._partitions,
            "pushed": self.pushed,
            "gateways": live,
            "idle": self._idle,
        }

    async def run(self, stopping: asyncio.Event) -> None:
        follow = asyncio.create_task(self._follow_presence(stopping))
        try:
            await self._push(stopping)
        finally:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)

    async def _follow_presence(self, stopping: asyncio.Event) -> None:
        spec = self.topics.presence
        tps = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer = kafka.consumer(self.settings)
        consumer.assign(tps)
        await consumer.start()
        try:
            await consumer.seek_to_beginning(*tps)
            while not stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        self.presence.apply(record.key or b"", record.value)
        finally:
            await consumer.stop()

    async def _push(self, stopping: asyncio.Event) -> None:
        consumer = kafka.consumer(
            self.settings,
            self.topics.inbox.name,
            group_id=self.group_id,
            enable_auto_commit=True,
            auto_offset_reset="latest",
        )
        producer = kafka.producer(self.settings, acks=1, enable_idempotence=False, linger_ms=0)
        await producer.start()
        await consumer.start()
        try:
            while not stopping.is_set():
                await self._idle_unless_someone_is_online(consumer)
                batch = await consumer.getmany(timeout_ms=200, max_records=2_000)
                self._partitions = sorted(tp.partition for tp in consumer.assignment())
                if batch:
                    await self._route(producer, batch)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _idle_unless_someone_is_online(self, consumer: AIOKafkaConsumer) -> None:
        """With no gateway online there is no one to push to: stop reading im.inbox
        (it costs a decode per entry for nothing) and skip to its end on waking."""
        assigned = consumer.assignment()
        if not self.presence.any_live(int(time.time() * 1000)):
            consumer.pause(*assigned)
            self._idle = True
        elif self._idle:
            await consumer.seek_to_end(*assigned)
            consumer.resume(*assigned)
            self._idle = False

    async def _route(self, producer: AIOKafkaProducer, batch: dict[Any, list[Any]]) -> None:
        writer = kafka.BatchWriter(producer, {})
        now = int(time.time() * 1000)
        for records in batch.values():
            for record in records:
                user = (record.key or b"").decode("utf-8", "replace")
                for gateway in self.presence.gateways_of(user, now):
                    topic = self.topics.push(gateway).name
                    if await self._topic_exists(producer, topic):
                        writer.add(topic, record.key, record.value, partition=0)
        try:
            self.pushed += len(await writer.send())
        except KafkaError as exc:
            log.warning("push: a batch of pushes failed (best effort): %r", exc)

    async def _topic_exists(self, producer: AIOKafkaProducer, topic: str) -> bool:
        """Whether a gateway's push topic exists (cached; a gone gateway never blocks us)."""
        known = self._topic_ok.get(topic)
        now = time.monotonic()
        if known is not None and (known[0] or now - known[1] < TOPIC_RECHECK_S):
            return known[0]
        try:
            exists = bool(await asyncio.wait_for(producer.partitions_for(topic), 2.0))
        except (TimeoutError, OSError, KafkaError):
            exists = False
        self._topic_ok[topic] = (exists, now)
        return exists
