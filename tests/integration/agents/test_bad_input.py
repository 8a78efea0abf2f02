"""Bad records never stall a partition: they go to the dead-letter topic with a reason."""

from __future__ import annotations

import json

import orjson
from jsonschema import Draft7Validator

from pipeline.log import kafka
from pipeline.log.deadletter import REASON, SOURCE, STAGE
from pipeline.log.schemas import schemas
from pipeline.log.topics import catalogue
from pipeline.model.events import TimelineEvent, encode_command, limits_from, timeline_dict
from pipeline.read import history
from pipeline.sdk.producer import Producer, message
from pipeline.settings import Settings
from pipeline.store.clickhouse import ClickHouse
from tests.support import converged, dead_letters, running_worker
from tests.unit.log.test_schemas import violations

BAD_RECORDS = [
    (b"not json at all", "not valid JSON"),
    (b'{"v": 1, "type": "message.sent", "body": "\xff\xfe"}', "not valid JSON"),
    (orjson.dumps({"v": 99, "type": "message.sent"}), "unsupported schema version 99"),
    (orjson.dumps({"v": 1, "type": "message.sent", "conversation_id": "g"}), "event_id"),
    (b"[1, 2, 3]", "must be a JSON object"),
    (b"", "not valid JSON"),
]


async def test_malformed_and_refused_records_are_dead_lettered(settings: Settings) -> None:
    topic = catalogue(settings).messages.name
    store = ClickHouse(settings)
    huge = message("g", "alice", "x" * (settings.pipeline.max_body_bytes + 1))
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob"])
        before = await producer.send_message("g", "alice", "before the junk")
        raw = kafka.producer(settings)
        await raw.start()
        try:
            # straight into the conversation's partition, past every SDK check
            for value, _ in BAD_RECORDS:
                await raw.send_and_wait(topic, value, key=b"g")
            await raw.send_and_wait(topic, encode_command(huge), key=b"g")
            await raw.send_and_wait(topic, encode_command(message("g", "alice", "x")), key=b"h")
        finally:
            await raw.stop()
        refused = await producer.send_message("g", "mallory", "let me in")
        after = await producer.send_message("g", "bob", "after the junk")
        report = await converged(settings, [before.event_id, after.event_id])
        letters = await dead_letters(settings, expected=len(BAD_RECORDS) + 3)
    assert report.ok, report.summary()
    page = await history.page(store, "g", "alice")
    assert [m.body for m in page.messages] == ["after the junk", "before the junk"]
    store.close()

    assert len(letters) == len(BAD_RECORDS) + 3, [d.reason for d in letters]
    # one source partition's rejects keep their order; the "h" record came from another
    from_g = [d for d in letters if d.key == b"g"]
    for (value, why), letter in zip(BAD_RECORDS, from_g, strict=False):
        assert why in letter.reason
        assert letter.value == value  # the original bytes, for inspection or replay
        assert letter.stage == "sequencer"
        assert letter.source.startswith(f"{topic}/")
    assert "larger than" in from_g[len(BAD_RECORDS)].reason
    assert from_g[-1].reason == "rejected: sender mallory is not a member of conversation g"
    assert orjson.loads(from_g[-1].value)["event_id"] == refused.event_id
    (from_h,) = [d for d in letters if d.key == b"h"]
    assert from_h.reason == "record key is not the event's conversation_id"


def garbage(topic: str) -> list[tuple[bytes | None, str]]:
    """Records for im.<topic> ("timeline", "sync" or "inbox") that are not what it
    holds, each with (part of) the reason it gets."""
    event = timeline_dict(TimelineEvent(message("g", "alice", "x"), 1, 1, 1))
    record = {
        "timeline": event,
        "sync": {"v": 1, "user_id": "bob", "event": event},
        "inbox": {"v": 1, "user_id": "bob", "sync_seq": 1, "ts_ms": 1, "event": event},
    }[topic]
    missing = "command" if topic == "timeline" else "event"
    far_future = {  # 2**63 ms: no DateTime can hold it
        "timeline": {**event, "ts_ms": 2**63},
        "sync": {**record, "event": {**event, "ts_ms": 2**63}},
        "inbox": {**record, "ts_ms": 2**63},
    }[topic]
    return [
        (None, "no value"),
        (b"\x00\xff garbage", "not valid JSON"),
        (b'{"v": 1, "body": "\xc3\x28"}', "not valid JSON"),  # invalid UTF-8
        (orjson.dumps({**record, "v": 2}), "unsupported schema version 2"),
        (orjson.dumps({k: v for k, v in record.items() if k != missing}), f"field '{missing}'"),
        (orjson.dumps(far_future), "'ts_ms' must be at most"),
        (b"[" * 900_000, "not valid JSON"),  # huge: just under the record size limit
    ]


async def test_garbage_in_every_topic_is_dead_lettered_and_flow_goes_on(
    settings: Settings,
) -> None:
    """Records written straight to im.timeline, im.sync and im.inbox (past the
    sequencer): the store (im.timeline), sync (im.sync) and sync store (im.inbox)
    dead-letter what they cannot read, and the partitions keep flowing."""
    topics = catalogue(settings)
    bad = {topic: garbage(topic) for topic in ("timeline", "sync", "inbox")}
    n = len(bad["timeline"])
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob"])
        before = await producer.send_message("g", "alice", "before the junk")
        await converged(settings, [before.event_id])
        raw = kafka.producer(settings)
        await raw.start()
        try:
            await raw.send_and_wait(topics.messages.name, None, key=b"g")
            for topic, key in (("timeline", b"g"), ("sync", b"bob"), ("inbox", b"bob")):
                for value, _ in bad[topic]:
                    await raw.send_and_wait(getattr(topics, topic).name, value, key=key)
        finally:
            await raw.stop()
        after = await producer.send_message("g", "bob", "after the junk")
        report = await converged(settings, [before.event_id, after.event_id])
        letters = await dead_letters(settings, expected=3 * n + 1)
    assert report.ok, report.summary()
    assert report.messages == 2
    assert len(letters) == 3 * n + 1, [(d.stage, d.reason[:60]) for d in letters]
    (tombstone,) = [d for d in letters if d.stage == "sequencer"]
    assert "no value" in tombstone.reason
    for stage, topic in (
        ("store", "timeline"),
        ("sync", "sync"),
        ("sync-store", "inbox"),
    ):
        got = [d for d in letters if d.stage == stage]
        assert len(got) == n, (stage, [d.reason for d in got])
        for (value, why), letter in zip(bad[topic], got, strict=True):
            assert why in letter.reason, (stage, why, letter.reason)
            assert letter.source.startswith(f"{getattr(topics, topic).name}/")
            assert letter.value == (value or b"")


async def test_records_that_break_the_published_schema_are_dead_lettered(
    settings: Settings,
) -> None:
    """Every kind of schema violation (tests/unit/log/test_schemas.py), written by a
    plain Kafka producer: each one is dead-lettered with a reason, its dead letter's
    headers follow their own schema, and the partition goes on."""
    limits = limits_from(settings.pipeline)
    published = schemas(limits)
    cases = violations(limits)
    for case, record in cases:
        assert not Draft7Validator(published["command"]).is_valid(record), case
    topic = catalogue(settings).messages.name
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob"])
        before = await producer.send_message("g", "alice", "before")
        raw = kafka.producer(settings)
        await raw.start()
        try:
            for _, record in cases:
                await raw.send_and_wait(topic, json.dumps(record).encode(), key=b"g")
        finally:
            await raw.stop()
        after = await producer.send_message("g", "bob", "after")
        report = await converged(settings, [before.event_id, after.event_id])
        letters = await dead_letters(settings, expected=len(cases))
    assert report.ok, report.summary()
    assert len(letters) == len(cases), [d.reason for d in letters]
    headers = Draft7Validator(published["dead-letter-headers"])
    for (case, record), letter in zip(cases, letters, strict=True):
        assert letter.reason, case
        assert json.loads(letter.value) == record, case
        assert headers.is_valid(
            {REASON: letter.reason, STAGE: letter.stage, SOURCE: letter.source}
        ), case


async def test_a_command_off_its_keys_partition_is_dead_lettered(settings: Settings) -> None:
    """A producer whose partitioner is not murmur2 (librdkafka's default, so kcat's)
    would split a conversation over two sequencer partitions: refused, with how to
    fix it, and the conversation goes on."""
    topics = catalogue(settings)
    home = kafka.partition_for(b"g", topics.messages.partitions)
    elsewhere = (home + 1) % topics.messages.partitions
    async with running_worker(settings), Producer(settings) as producer:
        await producer.create_conversation("g", "alice", ["bob"])
        stray = message("g", "alice", "from a crc32 partitioner")
        raw = kafka.producer(settings)
        await raw.start()
        try:
            await raw.send_and_wait(
                topics.messages.name, encode_command(stray), key=b"g", partition=elsewhere
            )
        finally:
            await raw.stop()
        after = await producer.send_message("g", "bob", "after")
        report = await converged(settings, [after.event_id])
        (letter,) = await dead_letters(settings, expected=1)
    assert report.ok, report.summary()
    assert f"record is on partition {elsewhere}, its key's is {home}" in letter.reason
    assert "murmur2" in letter.reason
    assert orjson.loads(letter.value)["event_id"] == stray.event_id
    store = ClickHouse(settings)
    page = await history.page(store, "g", "alice")
    store.close()
    assert [m.body for m in page.messages] == ["after"]
