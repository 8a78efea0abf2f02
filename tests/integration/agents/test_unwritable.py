"""What a stage can never write goes to the dead-letter topic, and the partition
moves on: a join that would take a state value past the record limit, a message
whose timeline record would be over it. And a creation's deliveries are bounded:
they do not carry the member list (pipeline/model/events.py, delivery_view)."""

from __future__ import annotations

from dataclasses import replace

import orjson

from pipeline.log.topics import catalogue
from pipeline.sdk.producer import Producer
from pipeline.settings import Settings
from tests.support import converged, dead_letters, eventually, read_topic, running_worker

LIMIT = 20_000
# the state value m/big is a JSON list of 131 bytes per 128-char id: "m/big" and
# [...] hold at most 152 members under LIMIT; 100 created + 52 joins fit
REFUSED_JOINS = 80 - ((LIMIT - len("m/big") - 1) // 131 - 100)


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
        for n in range(100, 180):
            await producer.join("big", creator, long_id(n))
        acked.append((await producer.send_message("big", creator, "after the joins")).event_id)
        await producer.send_message("big", creator, "y" * 8_000)  # 32 KB as UTF-8 bound: fine
        await producer.send_message("big", creator, "€" * 8_000)  # 24 KB of UTF-8
        acked.append((await producer.send_message("big", creator, "the next one")).event_id)
        letters = await dead_letters(settings, expected=REFUSED_JOINS + 1)
        report = await converged(settings, acked)
    assert report.ok, report.summary()
    state_letters = [d for d in letters if "its state 'm/big' would be" in d.reason]
    output_letters = [d for d in letters if "its output to" in d.reason]
    assert len(state_letters) == REFUSED_JOINS, [d.reason for d in letters]
    assert all(d.stage == "sequencer" for d in letters)
    assert "limit 20,000" in state_letters[0].reason
    assert len(output_letters) == 1
    assert "im.timeline would be a 2" in output_letters[0].reason
    # the joins that fit went through; the message after the refused ones too
    raw = await read_topic(settings, catalogue(settings).timeline)
    timeline = [orjson.loads(v)["command"] for v in raw]
    joined = [e for e in timeline if e["type"] == "member.joined"]
    assert len(joined) == 80 - REFUSED_JOINS
    bodies = [e["body"] for e in timeline if e["type"] == "message.sent"]
    assert bodies[0] == "after the joins"
    assert bodies[-1] == "the next one"
    assert len(bodies) == 3


async def test_a_large_creation_writes_bounded_deliveries(settings: Settings) -> None:
    members = [long_id(n) for n in range(1_660)]
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("huge", members[0], members, title="t" * 256)
        ack = await producer.send_message("huge", members[0], "hello all")
        report = await converged(settings, [ack.event_id], within=120)
        deliveries = await eventually(
            lambda: read_topic(settings, catalogue(settings).sync),
            lambda v: len(v) >= 2 * 1_660,
            within=60,
        )
    assert report.ok, report.summary()
    sizes = sorted(len(v) for v in deliveries)
    # the creation (~217 KB of members) once per receiver would be 360 MB
    assert sum(sizes) < 2 * 1_660 * 1_000, sum(sizes)
    assert sizes[-1] < 1_000, sizes[-1]
