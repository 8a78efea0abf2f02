"""Bad records never stall a partition: they go to the dead-letter topic with a reason."""

from __future__ import annotations

import orjson

from pipeline import history, kafka
from pipeline.clickhouse import ClickHouse
from pipeline.events import encode_command
from pipeline.producer import Producer, message
from pipeline.settings import Settings
from pipeline.topics import catalogue
from tests.support import converged, dead_letters, running_worker

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
