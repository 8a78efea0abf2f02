"""``imstream live`` on the real broker: its per-minute figures equal ClickHouse's
minute rollups, a record of an aborted transaction is never counted, and a kill -9
in the middle of traffic counts nothing twice and loses nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.log import kafka
from pipeline.log.topics import catalogue
from pipeline.model.events import TimelineEvent, encode_command, encode_timeline
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from tests.integration.live.process import LiveProcess, per_minute, rollup_minutes
from tests.support import converged, eventually, running_worker


@pytest.fixture
async def live(settings: Settings, tmp_path: Path) -> AsyncIterator[LiveProcess]:
    process = LiveProcess(settings, tmp_path / "live.log")
    try:
        yield process
    finally:
        await process.remove()


async def until_counted(live: LiveProcess, expected: int) -> None:
    counted = await eventually(live.messages, lambda n: n >= expected, within=60, every=0.5)
    assert counted == expected, live.tail()


def ghost(conversation: str, seq: int) -> bytes:
    command = message(conversation, "ghost-sender", "never happened")
    return encode_timeline(TimelineEvent(command, event_no=seq + 1, seq=seq, ts_ms=command.ts_ms))


async def write_aborted(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    """Write ``records`` to im.timeline in a transaction, then abort it."""
    producer = kafka.transactional_producer(settings, f"{settings.topics.prefix}aborter")
    await producer.start()
    try:
        await producer.begin_transaction()
        for key, value in records:
            await producer.send_and_wait(catalogue(settings).timeline.name, value, key=key)
        await producer.abort_transaction()
    finally:
        await producer.stop()


async def in_the_log(settings: Settings, key: bytes) -> int:
    """Records under ``key`` that a read_uncommitted reader (faust's default) sees."""
    topic = catalogue(settings).timeline
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap, isolation_level="read_uncommitted"
    )
    tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(tps)
    await consumer.start()
    seen = 0
    try:
        await consumer.seek_to_beginning(*tps)
        batch = await consumer.getmany(timeout_ms=3000)
        seen = sum(r.key == key for records in batch.values() for r in records)
    finally:
        await consumer.stop()
    return seen


async def test_live_views_match_the_rollups_and_skip_aborted_records(
    settings: Settings, live: LiveProcess
) -> None:
    await live.start()
    acked: list[str] = []
    async with running_worker(settings), Producer(settings) as producer:
        for g in ("g1", "g2", "g3"):
            await producer.create_conversation(g, "alice", ["bob", "carol", "dan"])
        for i in range(30):
            g, sender = f"g{i % 3 + 1}", ("alice", "bob", "carol")[i % 2]
            acked.append((await producer.send_message(g, sender, f"m{i}")).event_id)
        # an aborted transaction: a message of g1 far ahead of its real seqs, by a
        # sender nobody has seen, and a conversation that does not exist
        await write_aborted(settings, [(b"g1", ghost("g1", 10_000)), (b"ghost", ghost("ghost", 1))])
        assert await in_the_log(settings, b"ghost") == 1  # a read_uncommitted reader sees it
        for i in range(30, 45):  # after the aborted records in g1's partition
            g = f"g{i % 3 + 1}"
            acked.append((await producer.send_message(g, "dan", f"m{i}")).event_id)
        raw = kafka.producer(settings)
        await raw.start()
        try:  # refused by the sequencer: dead letters, counted by kind
            await raw.send_and_wait(catalogue(settings).messages.name, b"not json", key=b"g1")
            junk = encode_command(message("nowhere", "alice", "x"))
            await raw.send_and_wait(catalogue(settings).messages.name, junk, key=b"nowhere")
        finally:
            await raw.stop()
        report = await converged(settings, acked)
    assert report.ok, report.summary()
    await until_counted(live, 45)

    found = await live.minutes()
    assert per_minute(found) == rollup_minutes(settings)
    assert all(m["latency_ms"]["count"] == m["messages"] for m in found)
    conversations = {t["conversation_id"] for m in found for t in m["top"]}
    assert conversations == {"g1", "g2", "g3"}, "the aborted ghost was counted"
    assert sum(m["senders"] for m in found) <= 4 * len(found)  # alice..dan, never ghost-sender
    letters = await eventually(
        live.minutes,
        lambda ms: sum(sum(m["dead_letters"].values()) for m in ms) >= 2,
        within=30,
    )
    by_kind: dict[str, int] = {}
    for m in letters:
        for kind, n in m["dead_letters"].items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    assert by_kind == {"undecodable": 1, "rejected": 1}, by_kind


async def test_kill_9_mid_traffic_counts_nothing_twice(
    settings: Settings, live: LiveProcess
) -> None:
    await live.start()
    rng = random.Random()
    acked: list[str] = []
    async with running_worker(settings), Producer(settings) as producer:
        groups = [f"k{i}" for i in range(8)]
        for g in groups:
            await producer.create_conversation(g, "u0", [f"u{j}" for j in range(1, 6)])

        async def traffic(count: int) -> None:
            for i in range(count):
                g, sender = rng.choice(groups), f"u{rng.randrange(6)}"
                acked.append((await producer.send_message(g, sender, f"m{i}")).event_id)
                await asyncio.sleep(0.01)

        sending = asyncio.create_task(traffic(600))
        await eventually(live.messages, lambda n: n >= 100, within=60)
        live.kill()  # mid-stream: uncommitted offsets, changelog records maybe unflushed
        await asyncio.sleep(1)
        await live.start()
        await sending
        report = await converged(settings, acked)
    assert report.ok, report.summary()
    await until_counted(live, 600)

    found = await live.minutes()
    assert per_minute(found) == rollup_minutes(settings)
    # each message's latency sample was taken once, though some events were read twice
    assert all(m["latency_ms"]["count"] == m["messages"] for m in found)
