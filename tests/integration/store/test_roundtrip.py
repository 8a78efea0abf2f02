"""Records through the real Kafka broker and rows through the real ClickHouse server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from aiokafka import TopicPartition

from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse


async def test_kafka_round_trip_into_clickhouse(settings: Settings) -> None:
    topic = catalogue(settings).messages
    sent = [(f"conv-{i % 3}", f"hello {i}") for i in range(30)]

    producer = kafka.producer(settings)
    await producer.start()
    try:
        for conversation, body in sent:
            await producer.send(topic.name, key=conversation.encode(), value=body.encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = kafka.consumer(settings, topic.name, group_id=f"{topic.name}.test")
    await consumer.start()
    received: list[tuple[str, str, int, int]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    received += [
                        (r.key.decode(), r.value.decode(), tp.partition, r.offset) for r in records
                    ]
    finally:
        await consumer.stop()

    assert sorted((c, b) for c, b, _, _ in received) == sorted(sent)
    # one key always lands on one partition, in the order it was sent
    for conversation in {c for c, _ in sent}:
        partitions = {p for c, _, p, _ in received if c == conversation}
        assert len(partitions) == 1
        in_order = [b for c, b, _, _ in sorted(received, key=lambda r: r[3]) if c == conversation]
        assert in_order == [b for c, b in sent if c == conversation]

    store = ClickHouse(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    seqs: dict[str, int] = {}
    for conversation, body, _, _ in sorted(received, key=lambda r: (r[2], r[3])):
        seqs[conversation] = seqs.get(conversation, 0) + 1
        rows.append(
            (
                conversation,
                seqs[conversation],
                seqs[conversation],
                uuid.uuid4(),
                "alice",
                f"c{len(rows)}",
                "text/plain",
                body,
                0,
                0,
                now,
            )
        )
    await store.insert(
        "INSERT INTO messages (conversation_id, seq, event_no, event_id, sender_id, client_msg_id,"
        " content_type, body, client_ts_ms, ts_ms, created_at) VALUES",
        rows,
    )
    stored = await store.execute(
        "SELECT conversation_id, count(), max(seq), groupArray(body) FROM messages"
        " GROUP BY conversation_id ORDER BY conversation_id"
    )
    store.close()
    assert [(c, n, m) for c, n, m, _ in stored] == [(c, seqs[c], seqs[c]) for c in sorted(seqs)]
    assert sorted(b for *_, bodies in stored for b in bodies) == sorted(b for _, b in sent)


async def test_topics_exist_with_catalogue_partitions(settings: Settings) -> None:
    specs = catalogue(settings).all()
    async with kafka.admin(settings) as admin:
        described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in specs])}
    for spec in specs:
        assert described[spec.name]["error_code"] == 0
        assert len(described[spec.name]["partitions"]) == spec.partitions


async def test_transactional_output_is_invisible_until_commit(settings: Settings) -> None:
    """The mechanism the agents rely on: read_committed never sees aborted records."""
    topic = catalogue(settings).timeline.name
    producer = kafka.transactional_producer(settings, f"{topic}.txn-test")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, key=b"k", value=b"kept", partition=0)
        await producer.begin_transaction()
        await producer.send(topic, key=b"k", value=b"aborted", partition=0)
        await producer.flush()
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, key=b"k", value=b"kept too", partition=0)
    finally:
        await producer.stop()
    consumer = kafka.consumer(settings)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.start()
    try:
        values: list[bytes] = []
        async with asyncio.timeout(20):
            while len(values) < 2:
                batch = await consumer.getmany(tp, timeout_ms=500)
                values += [r.value for r in batch.get(tp, [])]
    finally:
        await consumer.stop()
    assert values == [b"kept", b"kept too"]
