"""The sync stage's read markers: a batch's markers of a conversation become one
entry, the highest, after the batch's other entries; one behind the user's none."""

from __future__ import annotations

import orjson
from aiokafka import ConsumerRecord

from agents.runtime.transactional import Output
from agents.sync import SyncProcessor
from pipeline.log.topics import catalogue
from pipeline.model.events import (
    Delivery,
    MessageSent,
    TimelineEvent,
    encode_delivery,
    encode_user_event,
)
from pipeline.model.state import StateStore
from pipeline.sdk.producer import user_event
from pipeline.settings import Settings

SETTINGS = Settings.from_env({})


def _record(offset: int, user: str, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        "im.sync", 0, offset, 0, 0, user.encode(), value, None, len(user), len(value), ()
    )


def _message(seq: int) -> bytes:
    command = MessageSent(
        f"00000000-0000-4000-8000-{seq:012d}", "g", "alice", f"m{seq}", "t", "hi", 1
    )
    return encode_delivery(Delivery("bob", TimelineEvent(command, seq + 1, seq, 1)))


def _batch(processor: SyncProcessor, values: list[bytes]) -> list[dict[str, object]]:
    out = Output()
    for offset, value in enumerate(values):
        processor.process(_record(offset, "bob", value), out)
    processor.end_batch(0, out)
    return [orjson.loads(value) for _, _, value, _ in out.records if value]


def test_a_batchs_markers_of_a_conversation_become_one_entry() -> None:
    processor = SyncProcessor(SETTINGS, catalogue(SETTINGS), StateStore())
    mark = [
        encode_user_event(user_event("g", "bob", "read", seq=s, device="pc")) for s in range(1, 5)
    ]
    other = encode_user_event(user_event("h", "bob", "read", seq=7, device="pc"))
    entries = _batch(processor, [mark[1], _message(1), mark[3], other, mark[0], _message(2)])
    shown = [(e["sync_seq"], e["event"].get("kind", "message"), e["event"]["seq"]) for e in entries]  # type: ignore[union-attr, index]
    assert shown == [(1, "message", 1), (2, "message", 2), (3, "read", 4), (4, "read", 7)]
    # the next batch: a marker behind the user's makes no entry; one past it does
    entries = _batch(processor, [mark[2], _message(3)])
    assert [e["event"].get("kind", "message") for e in entries] == ["message"]  # type: ignore[union-attr]
    later = encode_user_event(user_event("g", "bob", "read", seq=9, device="phone"))
    (entry,) = _batch(processor, [later])
    assert (entry["sync_seq"], entry["event"]["seq"]) == (6, 9)  # type: ignore[index]


def test_read_markers_do_not_push_timeline_events_out_of_the_cache() -> None:
    processor = SyncProcessor(SETTINGS, catalogue(SETTINGS), StateStore())
    group_message = _message(1)
    _batch(processor, [group_message])
    marks = [encode_user_event(user_event("g", "bob", "read", seq=s)) for s in range(1, 5000)]
    _batch(processor, marks)  # more markers than the cache holds
    hits = processor.events.hits
    _batch(processor, [group_message])  # the next receiver's delivery of the same event
    assert processor.events.hits == hits + 1
