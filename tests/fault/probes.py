"""Looking at topics from the outside: how far they are, how many records they hold."""

from __future__ import annotations

from aiokafka import TopicPartition

from pipeline.log import kafka
from pipeline.log.topics import TopicSpec
from pipeline.settings import Settings


async def stable_end(settings: Settings, topic: TopicSpec) -> int:
    """Sum of the partitions' last stable offsets: grows as transactions commit."""
    consumer = kafka.consumer(settings)
    tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum(ends.values())


async def committed_records(settings: Settings, topic: TopicSpec) -> int:
    """How many committed records ``topic`` holds (offsets also count transaction markers)."""
    consumer = kafka.consumer(settings)
    tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(tps)
    await consumer.start()
    count = 0
    try:
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            count += sum(len(records) for records in batch.values())
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return count
