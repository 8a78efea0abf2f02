"""Kafka-to-ClickHouse sinks: batch, write idempotently, then commit offsets.

A sink reads one topic in a consumer group (``read_committed``), turns each
batch into rows, writes them, and only then commits the batch's offsets. A
crash between the write and the commit replays the batch, which writes the
same rows again: every table a sink writes is a ReplacingMergeTree keyed by
deterministic ids, and every read folds the copies. While ClickHouse cannot be
reached, or refuses the write (for now, or until someone fixes a table), the
sink stops consuming and retries with backoff (it never commits past rows it
did not write, and never stops the process's other agents); when a rebalance
takes partitions away meanwhile, the batch is left to their next owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from pipeline.errors import EventError, StoreUnavailableError
from pipeline.log import kafka
from pipeline.log.deadletter import dead_letter_headers
from pipeline.log.topics import TopicSpec
from pipeline.model import hops
from pipeline.observe.sensor import Sensor
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse

log = logging.getLogger(__name__)
IDLE_POLL_MS = 20

R = TypeVar("R")
Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]


class ClickHouseSink(Generic[R]):
    """``decode`` turns one record into an item (or raises EventError → dead letter);
    ``write`` stores a batch of items; ``stamps`` gives a record's hop stamps
    (pipeline/model/hops.py; by default its ``imstream.t`` header) for the
    send → stored latency."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        topic: TopicSpec,
        dead_letter: TopicSpec,
        decode: Callable[[bytes | None], R],
        write: Callable[[ClickHouse, list[R]], Awaitable[None]],
        sensor: Sensor | None = None,
        stamps: Callable[[ConsumerRecord[Any, Any], R], bytes] | None = None,
    ) -> None:
        self.settings = settings
        self.sensor = sensor or Sensor()
        self.stamps = stamps or _header_stamps
        self.name = name
        self.topic = topic
        self.dead_letter = dead_letter
        self.decode = decode
        self.write = write
        self.group_id = f"{settings.topics.prefix}imstream.{name}"
        self.store = ClickHouse(settings)
        self._consumer: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._revoking = False
        self.written = 0
        self.outage_s = 0.0
        self.stalled: str | None = None
        """Why the last write failed, while the sink retries it."""

    async def run(self, stopping: asyncio.Event) -> None:
        consumer = kafka.consumer(
            self.settings,
            group_id=self.group_id,
            max_poll_records=self.settings.pipeline.sink_batch_max_records,
        )
        consumer.subscribe([self.topic.name], listener=_Listener(self))
        self._consumer = consumer
        producer = kafka.producer(self.settings)
        await producer.start()
        await consumer.start()
        try:
            while not stopping.is_set():
                # poll outside the lock: a rebalance runs its callbacks between polls
                batch = await self._collect(consumer)
                async with self._lock:
                    # a rebalance during the polls may have taken partitions away (their
                    # records are their next owner's now), or given them back: then the
                    # consumer reads them again from their committed offsets, and what
                    # this batch commits must not be written a second time
                    batch = self._not_yet_committed(consumer, batch)
                    if batch:
                        await self._handle(consumer, producer, batch, stopping)
                    else:
                        await self._commit_idle(consumer)
        finally:
            await consumer.stop()
            await producer.stop()
            self.store.close()

    def _not_yet_committed(self, consumer: AIOKafkaConsumer, batch: Batch) -> Batch:
        """The batch's records of partitions still assigned, past the committed offset."""
        assigned = consumer.assignment()
        kept = {}
        for tp, records in batch.items():
            if tp in assigned:
                done = self._committed.get(tp, 0)
                fresh = [r for r in records if r.offset >= done]
                if fresh:
                    kept[tp] = fresh
        return kept

    async def _collect(self, consumer: AIOKafkaConsumer) -> Batch:
        """Records for one write. While records keep coming, polls on until
        ``sink_batch_max_records`` or ``sink_linger_ms``: few large inserts are what
        ClickHouse wants (each insert makes a part that merges must fold later). When
        the topic goes quiet (a poll finds nothing for IDLE_POLL_MS) it writes at
        once, so at low load the store trails the log by milliseconds, not a linger."""
        pipeline = self.settings.pipeline
        batch: Batch = await consumer.getmany(
            timeout_ms=200, max_records=pipeline.sink_batch_max_records
        )
        count = sum(len(r) for r in batch.values())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pipeline.sink_linger_ms / 1000
        while batch and count < pipeline.sink_batch_max_records:
            left_ms = int((deadline - loop.time()) * 1000)
            if left_ms <= 0:
                break
            more = await consumer.getmany(
                timeout_ms=min(left_ms, IDLE_POLL_MS),
                max_records=pipeline.sink_batch_max_records - count,
            )
            if not more:
                break
            for tp, records in more.items():
                batch.setdefault(tp, []).extend(records)
                count += len(records)
        return batch

    def status(self) -> dict[str, Any]:
        """Assigned partitions, items written, lag, and seconds spent waiting for ClickHouse."""
        lags = self.partition_lag()
        return {
            "partitions": sorted(lags),
            "written": self.written,
            "lag": sum(lags.values()),
            "outage_s": round(self.outage_s, 1),
            "stalled": self.stalled,
        }

    def partition_lag(self) -> dict[int, int]:
        """Committed records not written yet, per assigned partition."""
        lags = {}
        if self._consumer is not None:
            for tp in self._consumer.assignment():
                stable = self._consumer.last_stable_offset(tp)
                done = self._committed.get(tp, 0)
                lags[tp.partition] = max(0, stable - done) if stable is not None else 0
        return lags

    async def _handle(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: Batch,
        stopping: asyncio.Event,
    ) -> None:
        decoded: list[tuple[ConsumerRecord[Any, Any], R]] = []
        rejected = []
        for records in batch.values():
            for record in records:
                try:
                    decoded.append((record, self.decode(record.value)))
                except EventError as exc:
                    rejected.append((record, str(exc), exc.kind))
        if rejected and not await self._dead_letter(producer, rejected, stopping):
            return  # stopping with the broker away: the batch is redone from its offsets
        items = [item for _, item in decoded]
        if not await self._write_until_done(consumer, batch, items, stopping):
            return
        self.written += len(items)
        if self.sensor.enabled:
            stamps = (self.stamps(record, item) for record, item in decoded)
            self.sensor.on_stored(self.name, stamps, hops.now_ms())
        if rejected:
            self.sensor.on_dead_letters(self.name, [kind for _, _, kind in rejected])
        await self._commit(consumer, {tp: recs[-1].offset + 1 for tp, recs in batch.items()})

    async def _dead_letter(
        self,
        producer: AIOKafkaProducer,
        rejected: list[tuple[Any, str, str]],
        stopping: asyncio.Event,
    ) -> bool:
        """Send refused records to the dead-letter topic, retrying while the broker is
        away (they must be there before the batch's offsets are committed)."""
        writer = kafka.BatchWriter(producer, {self.dead_letter.name: self.dead_letter.partitions})
        delay = 0.2
        while True:
            for record, reason, kind in rejected:
                headers = dead_letter_headers(record, self.name, reason, kind)
                writer.add(self.dead_letter.name, record.key, record.value or b"", headers)
            try:
                await writer.flush()
            except KafkaError as exc:
                if stopping.is_set():
                    return False
                log.warning("%s: dead-letter topic unavailable, retrying: %r", self.name, exc)
                writer = kafka.BatchWriter(producer, writer.partitions)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.pipeline.sink_retry_max_s)
            else:
                return True

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        """Commit offsets of rows already written. If the group has moved on (a rebalance,
        or this member's session ran out while the broker was away), the partitions'
        owner replays from the last commit and writes the same rows again."""
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning(
                "%s: offsets not committed, the rows will be written again: %s", self.name, exc
            )
        else:
            self._committed.update(offsets)

    async def _commit_idle(self, consumer: AIOKafkaConsumer) -> None:
        """Commit up to the position of idle partitions. Past the last record of a
        transactional topic lies the marker of its last transaction, which a
        read_committed consumer steps over but never receives: without this the
        committed offset (and the lag) would stay one short of the end for good."""
        offsets = {}
        for tp in consumer.assignment():
            stable = consumer.last_stable_offset(tp)
            committed = self._committed.get(tp)
            if stable is None or committed is None or stable <= committed:
                continue
            position = await consumer.position(tp)
            if position > committed:
                offsets[tp] = position
        if offsets:
            await self._commit(consumer, offsets)

    async def _write_until_done(
        self, consumer: AIOKafkaConsumer, batch: Batch, items: Sequence[R], stopping: asyncio.Event
    ) -> bool:
        """Write, retrying with backoff until it works; False if the batch was given
        up (stopping, or its partitions are being taken away). ClickHouse away or
        refusing for now (StoreUnavailableError) is retried; so is any other failure
        (a table gone, a bug): it is logged with its trace, and the sink shows it as
        ``stalled`` in /health while the other agents of the process go on."""
        delay = 0.2
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            attempt = time.perf_counter()
            try:
                await self.write(self.store, list(items))
            except Exception as exc:  # every failure is retried (see the docstring)
                self.sensor.on_insert_retry(self.name)
                self.stalled = f"{type(exc).__name__}: {exc}"[:500]
                if stopping.is_set() or self._revoking:
                    log.warning("%s: leaving a batch to the next owner (%s)", self.name, exc)
                    for tp, recs in batch.items():
                        if tp in consumer.assignment():
                            consumer.seek(tp, recs[0].offset)
                    return False
                if delay == 0.2 and isinstance(exc, StoreUnavailableError):
                    log.warning("%s: ClickHouse unavailable, retrying: %s", self.name, exc)
                elif delay == 0.2:
                    log.exception("%s: writing failed, retrying until it works", self.name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.pipeline.sink_retry_max_s)
            else:
                self.stalled = None
                self.sensor.on_insert(self.name, len(items), time.perf_counter() - attempt)
                if delay > 0.2:
                    self.outage_s += loop.time() - started
                    log.warning(
                        "%s: ClickHouse is back after %.1fs", self.name, loop.time() - started
                    )
                return True

    async def assigned(self, tps: list[TopicPartition]) -> None:
        if self._consumer is not None:
            for tp in tps:
                self._committed[tp] = await self._consumer.committed(tp) or 0

    async def revoked(self, tps: list[TopicPartition]) -> None:
        self._revoking = True
        try:
            async with self._lock:
                pass
        finally:
            self._revoking = False


def _header_stamps(record: ConsumerRecord[Any, Any], item: object) -> bytes:
    return hops.find(record.headers)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: ClickHouseSink[Any]) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.sink.revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.sink.assigned(list(assigned))
