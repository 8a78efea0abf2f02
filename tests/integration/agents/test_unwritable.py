"""What a stage can never write goes to the dead-letter topic, and the partition
moves on: a message whose timeline record would be over the record limit. A join
never comes near it: members are changelogged one record each, so a group of any
size fits (it used to be one list, refused past the limit). And a creation's
deliveries are bounded: they do not carry the member list
(pipeline/model/events.py, delivery_view)."""

from __future__ import annotations

from dataclasses import replace

import orjson

from pipeline.log.topics import catalogue
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from tests.support import converged, dead_letters, eventually, read_topic, running_worker

LIMIT = 20_000
# as one JSON list (131 bytes per 128-char id) at most 152 members fit under LIMIT:
# 100 created and 80 joining would have had the last 28 joins refused
JOINS = 80


def long_id(n: int) -> str:
    return f"u{n:05d}".ljust(128, "x")


async def test_unwritable_records_are_dead_lettered_and_the_partition_goes_on(
    settings: Settings,
) -> None:
    settings = settings.replace(
        pipeline=replace(settings.pipeline, max_record_bytes=LIMIT, transaction_max_records=50)
    )
    members = [long_id(n) for n in range(100)]  # ~13 KB of member list
    creator = members[0]
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("big", creator, members)
        acked = []
        for n in range(100, 100 + JOINS):
            await producer.join("big", creator, long_id(n))
        acked.append((await producer.send_message("big", creator, "after the joins")).event_id)
        await producer.send_message("big", creator, "y" * 8_000)  # 32 KB as UTF-8 bound: fine
        await producer.send_message("big", creator, "€" * 8_000)  # 24 KB of UTF-8
        acked.append((await producer.send_message("big", creator, "the next one")).event_id)
        letters = await dead_letters(settings, expected=1)
        report = await converged(settings, acked)
    assert report.ok, report.summary()
    assert len(letters) == 1, [d.reason for d in letters]
    assert letters[0].stage == "sequencer"
    assert "its output to" in letters[0].reason
    assert "im.timeline would be a 2" in letters[0].reason
    assert "limit 20,000" in letters[0].reason
    # every join went through, each a small changelog record; the message after too
    raw = await read_topic(settings, catalogue(settings).timeline)
    timeline = [orjson.loads(v)["command"] for v in raw]
    joined = [e for e in timeline if e["type"] == "member.joined"]
    assert len(joined) == JOINS
    changelog = await read_topic(settings, catalogue(settings).sequencer_state)
    assert max(len(v or b"") for v in changelog) < 200
    bodies = [e["body"] for e in timeline if e["type"] == "message.sent"]
    assert bodies[0] == "after the joins"
    assert bodies[-1] == "the next one"
    assert len(bodies) == 3


async def test_a_large_creation_writes_bounded_deliveries(settings: Settings) -> None:
    """2,000 members with 128-character ids (through the SDK: over HTTP the 64 KiB
    body holds about 1,660 of them) and a 256-character title."""
    members = [long_id(n) for n in range(2_000)]
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("huge", members[0], members, title="t" * 256)
        ack = await producer.send_message("huge", members[0], "hello all")
        report = await converged(settings, [ack.event_id], within=120)
        deliveries = await eventually(
            lambda: read_topic(settings, catalogue(settings).sync),
            lambda v: len(v) >= 2 * 2_000,
            within=60,
        )
    assert report.ok, report.summary()
    sizes = sorted(len(v) for v in deliveries)
    # the creation (~262 KB of members) once per receiver would be 1 GB
    assert sum(sizes) < 2 * 2_000 * 1_000, sum(sizes)
    assert sizes[-1] < 1_000, sizes[-1]
    # and the members went to the changelog one small record each
    changelog = await read_topic(settings, catalogue(settings).sequencer_state)
    assert len(changelog) >= 2_000
    assert max(len(v or b"") for v in changelog) < 200
