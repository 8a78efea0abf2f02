"""kafka.BatchWriter on the real broker: where it says each record went is where the
broker put it, on both of its paths (own batches, shared ``send()``), in order."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.settings import Settings


async def _read(settings: Settings, topic: str, partitions: int, count: int) -> dict:  # type: ignore[type-arg]
    consumer = kafka.consumer(settings)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.start()
    found = {}
    try:
        await consumer.seek_to_beginning(*tps)
        async with asyncio.timeout(30):
            while len(found) < count:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    found.update({(tp.partition, r.offset): r.value for r in records})
    finally:
        await consumer.stop()
    return found


async def test_placements_match_the_log_on_both_paths(settings: Settings) -> None:
    spec = catalogue(settings).messages
    producer = kafka.producer(settings)
    await producer.start()
    try:
        writer = kafka.BatchWriter(producer, {spec.name: spec.partitions})
        values = []
        for i in range(3_000):  # "busy" gets its own batches (several: they fill up)
            values.append(f"busy {i} ".encode() + b"x" * 200)
            writer.add(spec.name, b"busy", values[-1])
        for i in range(3):  # "quiet" goes through the producer's shared batches
            values.append(f"quiet {i}".encode())
            writer.add(spec.name, b"quiet", values[-1])
        assert len(writer) == 3_003
        placed = await writer.send()
        assert len(writer) == 0
    finally:
        await producer.stop()

    assert len(placed) == len(values)
    log = await _read(settings, spec.name, spec.partitions, len(values))
    assert [log[(p.partition, p.offset)] for p in placed] == values
    for key in (b"busy", b"quiet"):
        mine = [p for p, v in zip(placed, values, strict=True) if v.startswith(key)]
        assert {p.partition for p in mine} == {kafka.partition_for(key, spec.partitions)}
        assert [p.offset for p in mine] == sorted(p.offset for p in mine)


async def test_concurrent_one_record_calls_each_learn_their_place(settings: Settings) -> None:
    """Many one-record calls at once, as the SDK and the gateway make them: they go
    through the producer's shared batches and each still learns its own offset."""
    spec = catalogue(settings).messages
    producer = kafka.producer(settings)
    await producer.start()
    try:

        async def one(i: int) -> kafka.Placed:
            writer = kafka.BatchWriter(producer, {spec.name: spec.partitions})
            writer.add(spec.name, f"conversation {i % 3}".encode(), f"m{i}".encode())
            (placed,) = await writer.send()
            return placed

        placed = await asyncio.gather(*(one(i) for i in range(600)))
    finally:
        await producer.stop()
    log = await _read(settings, spec.name, spec.partitions, 600)
    assert [log[(p.partition, p.offset)] for p in placed] == [f"m{i}".encode() for i in range(600)]
    assert len({(p.partition, p.offset) for p in placed}) == 600
