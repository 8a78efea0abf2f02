"""The push agent: new sync entries to the gateways that hold their users online.

It follows ``im.presence`` (all of it: who is online where) and reads
``im.inbox`` in a consumer group from where the group left off (the newest
entries on its first start); each entry whose user has devices on a gateway is
copied, as it is, to that gateway's ``im.push.<gateway>``. Push is the fast
path and best effort: the agent never waits on a gateway, and a device that
misses an entry notices the gap in ``sync_seq`` and pulls.

A gap is only noticed when a later entry arrives, so a handover must not skip
entries: the last entry of a quiet conversation would wait for the next one.
Two rules keep every entry pushed at least once while a gateway is live:

- a partition the group has never committed is anchored (its position, the
  newest entry, committed at once), so the next owner after a kill -9 resumes
  from the group's offset, never from "the newest" again;
- the agent reads no entry before it has read presence to the end, so a
  restarted agent does not mistake "not loaded yet" for "no one online" (which
  skips to the end of the topic).

Large groups (read diffusion) have no sync entries for their messages: the
agent also reads ``im.timeline`` (its own consumer group, from the newest
records) and copies every event of a large group, in log order, to every live
gateway, with the header ``imstream.kind: timeline``. Each gateway knows which
of its connected users are members (pipeline/gateway/groups.py) and pushes the
messages to them only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.log import kafka
from pipeline.log.topics import PUSH_KIND_HEADER, PUSH_KIND_TIMELINE, catalogue
from pipeline.model import hops
from pipeline.model.presence import PresenceTable
from pipeline.observe.sensor import Sensor
from pipeline.observe.tasks import Supervisor
from pipeline.settings import Settings

log = logging.getLogger(__name__)
TOPIC_RECHECK_S = 10.0
# orjson writes the flag exactly so, and only as the key of a large event (inside a
# string a quote is escaped); a false positive would only cost the gateway a decode
LARGE_MARK = b'"large":true'


def is_large(value: bytes | None) -> bool:
    """Whether a timeline record is an event of a large group (without decoding it)."""
    return value is not None and LARGE_MARK in value


class PushAgent:
    def __init__(self, settings: Settings, sensor: Sensor | None = None) -> None:
        self.settings = settings
        self.sensor = sensor or Sensor()
        self.stamp = settings.metrics.enabled
        self.topics = catalogue(settings)
        self.group_id = f"{settings.topics.prefix}imstream.push"
        self.presence = PresenceTable()
        self.presence_loaded = asyncio.Event()
        self.tasks = Supervisor("push", self.sensor.on_task_death)
        self.pushed = 0
        self._partitions: list[int] = []
        self._broadcast_partitions: list[int] = []
        self._topic_ok: dict[str, tuple[bool, float]] = {}
        self._idle: dict[str, bool] = {}

    def status(self) -> dict[str, Any]:
        live = self.presence.live(_now_ms())
        return {
            "partitions": self._partitions,
            "broadcast_partitions": self._broadcast_partitions,
            "pushed": self.pushed,
            "gateways": live,
            "idle": all(self._idle.values()) if self._idle else False,
            "tasks": self.tasks.status(),
        }

    async def run(self, stopping: asyncio.Event) -> None:
        # presence is followed for as long as the agent runs: restarted if it ends
        self.tasks.start("presence", self._follow_presence)
        loops = [
            asyncio.create_task(self._push(stopping)),
            asyncio.create_task(self._broadcast(stopping)),
        ]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a loop that failed fails the agent
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.tasks.stop()

    async def _follow_presence(self) -> None:
        spec = self.topics.presence
        tps = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        consumer = kafka.consumer(self.settings)
        consumer.assign(tps)
        await consumer.start()
        try:
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        self.presence.apply(record.key or b"", record.value)
                if not self.presence_loaded.is_set() and all(
                    [await consumer.position(tp) >= end for tp, end in ends.items()]
                ):
                    self.presence_loaded.set()
        finally:
            await consumer.stop()

    async def _anchor(self, consumer: AIOKafkaConsumer, anchored: set[TopicPartition]) -> None:
        """Commit the position of every newly assigned partition the group has never
        committed (see the module docstring); ``anchored`` remembers what was checked."""
        anchored &= consumer.assignment()
        for tp in consumer.assignment() - anchored:
            try:
                if await consumer.committed(tp) is None:
                    await consumer.commit({tp: await consumer.position(tp)})
            except KafkaError as exc:  # a rebalance under way: checked again next time
                log.info("push: anchoring %s deferred: %r", tp, exc)
                return
            anchored.add(tp)

    async def _presence_loaded(self, stopping: asyncio.Event) -> bool:
        """Wait until presence is read to its end (or the agent stops): False if stopping."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self.presence_loaded, stopping)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return not stopping.is_set()

    async def _push(self, stopping: asyncio.Event) -> None:
        """New entries to the gateways of their users, read *before* the sync stage's
        transaction commits (``read_uncommitted``): push does not wait for that
        commit. This is safe because the sync stage is deterministic on replay: it
        reads committed deliveries in log order and restores its state from the
        changelog at its committed offset, so an aborted batch is redone with the
        very same entry at every ``sync_seq``. A device may get an entry twice (once
        from the aborted batch, once from its redo): it applies only ``cursor + 1``,
        and the repeat is the same entry. (The sequencer is not replayed this way:
        where its dedupe window ends depends on batch boundaries, which is why the
        large-group broadcast below reads ``im.timeline`` committed.)"""
        # clients are made after the wait: one made and never started is reported unclosed
        if not await self._presence_loaded(stopping):
            return
        consumer = kafka.consumer(
            self.settings,
            self.topics.inbox.name,
            group_id=self.group_id,
            enable_auto_commit=True,
            auto_offset_reset="latest",
            isolation_level="read_uncommitted",
        )
        producer = kafka.producer(self.settings, acks=1, enable_idempotence=False, linger_ms=0)
        await producer.start()
        await consumer.start()
        anchored: set[TopicPartition] = set()
        try:
            while not stopping.is_set():
                await self._idle_unless_someone_is_online("inbox", consumer)
                batch = await consumer.getmany(timeout_ms=200, max_records=2_000)
                await self._anchor(consumer, anchored)
                self._partitions = sorted(tp.partition for tp in consumer.assignment())
                writer = kafka.BatchWriter(producer, {})
                now = _now_ms()
                for records in batch.values():
                    for record in records:
                        user = (record.key or b"").decode("utf-8", "replace")
                        gateways = self.presence.gateways_of(user, now)
                        if not gateways:
                            continue
                        headers = self._stamped(record.headers, now)
                        for gateway in gateways:
                            topic = self.topics.push(gateway).name
                            if await self._topic_exists(producer, topic):
                                writer.add(topic, record.key, record.value, headers, partition=0)
                await self._send(writer, "entry")
        finally:
            await consumer.stop()
            await producer.stop()

    async def _broadcast(self, stopping: asyncio.Event) -> None:
        """Every event of a large group, in log order, to every live gateway."""
        # clients are made after the wait: one made and never started is reported unclosed
        if not await self._presence_loaded(stopping):
            return
        consumer = kafka.consumer(
            self.settings,
            self.topics.timeline.name,
            group_id=self.group_id + "-groups",
            enable_auto_commit=True,
            auto_offset_reset="latest",
        )
        producer = kafka.producer(self.settings, acks=1, enable_idempotence=False, linger_ms=0)
        await producer.start()
        await consumer.start()
        kind = [(PUSH_KIND_HEADER, PUSH_KIND_TIMELINE)]
        anchored: set[TopicPartition] = set()
        try:
            while not stopping.is_set():
                await self._idle_unless_someone_is_online("timeline", consumer)
                batch = await consumer.getmany(timeout_ms=200, max_records=2_000)
                await self._anchor(consumer, anchored)
                self._broadcast_partitions = sorted(tp.partition for tp in consumer.assignment())
                large = [r for records in batch.values() for r in records if is_large(r.value)]
                if not large:
                    continue
                topics = [self.topics.push(g).name for g in self.presence.live(_now_ms())]
                topics = [t for t in topics if await self._topic_exists(producer, t)]
                writer = kafka.BatchWriter(producer, {})
                now = _now_ms()
                for record in large:
                    # the sequencer's record: its timestamp is when it was sequenced
                    # (the gateway fills in the send and log times from the event)
                    sequenced = [(hops.HEADER, b",,%d" % record.timestamp)]
                    headers = kind + (self._stamped(sequenced, now) or [])
                    for topic in topics:
                        writer.add(topic, record.key, record.value, headers, partition=0)
                await self._send(writer, "timeline")
        finally:
            await consumer.stop()
            await producer.stop()

    async def _idle_unless_someone_is_online(self, name: str, consumer: AIOKafkaConsumer) -> None:
        """With no gateway online there is no one to push to: stop reading (it costs a
        decode per record for nothing) and skip to the end of the topic on waking."""
        assigned = consumer.assignment()
        if not self.presence.any_live(_now_ms()):
            consumer.pause(*assigned)
            self._idle[name] = True
        elif self._idle.get(name) and assigned:
            await consumer.seek_to_end(*assigned)
            consumer.resume(*assigned)
            self._idle[name] = False

    def _stamped(self, headers: hops.Headers | None, now: int) -> list[tuple[str, bytes]] | None:
        return hops.restamp(headers, hops.PUSHED, now) if self.stamp else None

    async def _send(self, writer: kafka.BatchWriter, kind: str) -> None:
        if not len(writer):
            return
        try:
            sent = await writer.flush()
            self.pushed += sent
            self.sensor.on_pushed(kind, sent)
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


def _now_ms() -> int:
    return int(time.time() * 1000)
